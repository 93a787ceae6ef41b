import { after, describe, it } from 'node:test';
import { outputError } from '../../src/compensate/refit.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { forward } from '../../src/graph/run.js';
import type { Matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
import { type PruneOptions, prune } from '../../src/pipeline/prune.js';
import { mnistDigits, randomMlp, trainClassifier } from './helpers.js';

/**
 * A measurement, not a check: a 784-64-10 ReLU classifier trained for a few epochs on 2,000 MNIST
 * digits, pruned by every variant; prints the calibration output error E = mean ||y - y_dense||²
 * (on 1,000 of the training digits) and the accuracy on 1,000 other digits.
 */
describe('MNIST 784-64-10: EC vs the variants (printed)', async () => {
  const gemm = await createOrtGemm(0);
  after(() => gemm.dispose?.());

  it('measures', async () => {
    const train = mnistDigits(2000);
    const test = mnistDigits(1000, 300);
    const mlp = randomMlp([784, 64, 10], { kind: 'relu' }, 1);
    await trainClassifier(mlp, train.x, train.y as { kind: 'classes'; values: Int32Array }, 6, gemm);
    const calibrationX: Matrix = { rows: 1000, cols: 784, data: train.x.data.subarray(0, 1000 * 784) };
    const calibration = inMemoryDataset(calibrationX, undefined, 'mnist-calibration');
    const accuracy = async (model: Mlp) => {
      const y = await forward(model, test.x, gemm);
      let correct = 0;
      for (let n = 0; n < y.rows; n++) {
        const row = Array.from(y.data.subarray(n * 10, n * 10 + 10));
        if (row.indexOf(Math.max(...row)) === (test.y.values as Int32Array)[n]) correct++;
      }
      return correct / y.rows;
    };
    console.log(`  dense: test accuracy ${(await accuracy(mlp)).toFixed(3)}`);
    const variants: [string, PruneOptions][] = [
      ['magnitude', { method: 'magnitude' }],
      ['ec (paper)', {}],
      ["ec, sensitivity 'loss' (ce)", { sensitivity: 'loss', loss: 'ce' }],
      ['ec, probes 3', { probes: 3, seed: 1 }],
      ['ec, sequential', { sequential: true }],
      ['ec, steps 3', { steps: 3 }],
      ['ec, refitBiases 5', { refitBiases: 5 }],
      ['ec, sequential + steps 3 + refit 5', { sequential: true, steps: 3, refitBiases: 5 }],
      ['obs (changes weights)', { obs: true }],
      ['magnitude 2:4', { method: 'magnitude', pattern: { n: 2, m: 4 } }],
      ['ec 2:4', { pattern: { n: 2, m: 4 } }],
      ['ec 1:4', { pattern: { n: 1, m: 4 } }],
      ['magnitude neurons 50 %', { method: 'magnitude', structure: 'neuron', sparsity: 0.5 }],
      ['ec neurons 50 %', { structure: 'neuron', sparsity: 0.5 }],
      ['ec neurons 50 % + refit 5', { structure: 'neuron', sparsity: 0.5, refitBiases: 5 }],
    ];
    for (const [name, options] of variants) {
      const start = performance.now();
      const result = await prune(mlp, calibration, { sparsity: 0.9, gemm, ...options });
      const seconds = (performance.now() - start) / 1000;
      const error = await outputError(result.model, mlp, calibration, { gemm });
      console.log(
        `  ${name.padEnd(36)} sparsity ${result.sparsity.toFixed(2)}  E ${error.toExponential(3)}  test acc ${(await accuracy(result.model)).toFixed(3)}  (${seconds.toFixed(2)} s)`,
      );
    }
  });
});
