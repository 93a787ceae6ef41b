import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { optimalBiasShift } from '../../src/compensate/delta.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { activate } from '../../src/model/activations.js';
import type { Matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
import { prune } from '../../src/pipeline/prune.js';
import { ecScore } from '../../src/score/ec.js';
import { METHOD_NAMES } from '../../src/score/methods.js';
import { collectStatistics, outputSensitivities } from '../../src/score/statistics.js';
import { randomMatrix, randomMlp } from '../helpers/random.js';
import { assertClose } from './helpers.js';

/** The network in plain float64 JavaScript numbers: an oracle independent of the GEMM code. */
function forward64(mlp: Mlp, x: number[], perturb?: { layer: number; neuron: number; dz: number }): number[] {
  let a = x;
  mlp.layers.forEach((layer, l) => {
    const { rows, cols, data } = layer.weight;
    const z = Array.from({ length: rows }, (_, i) => {
      let sum = layer.bias[i];
      for (let j = 0; j < cols; j++) sum += data[i * cols + j] * a[j];
      return perturb && perturb.layer === l && perturb.neuron === i ? sum + perturb.dz : sum;
    });
    a = z.map((v) => activate(layer.activation, v));
  });
  return a;
}

const tanhNet = randomMlp([5, 7, 6, 3], { kind: 'tanh' }, 1);
const x = randomMatrix(16, 5, 2);
const row = (m: Matrix, n: number) => Array.from(m.data.subarray(n * m.cols, (n + 1) * m.cols));

describe('sensitivities', () => {
  it('match central finite differences of the float64 network', async () => {
    const sensitivities = await outputSensitivities(tanhNet, x, tsGemm);
    const h = 1e-5;
    for (let n = 0; n < x.rows; n += 5) {
      tanhNet.layers.forEach((layer, l) => {
        for (let i = 0; i < layer.weight.rows; i++) {
          const plus = forward64(tanhNet, row(x, n), { layer: l, neuron: i, dz: h });
          const minus = forward64(tanhNet, row(x, n), { layer: l, neuron: i, dz: -h });
          const fd = plus.reduce((sum, p, k) => sum + ((p - minus[k]) / (2 * h)) ** 2, 0);
          const s = sensitivities[l].data[n * layer.weight.rows + i];
          assert.ok(
            Math.abs(s - fd) <= 1e-4 * Math.max(fd, 1e-3),
            `S[${l}][${n},${i}] = ${s}, finite differences ${fd}`,
          );
        }
      });
    }
  });
});

describe('optimal compensation', () => {
  it('delta* minimises and I is the minimum of the linearised objective', async () => {
    const statistics = await collectStatistics(tanhNet, inMemoryDataset(x), { gemm: tsGemm });
    const sensitivities = await outputSensitivities(tanhNet, x, tsGemm);
    const deltas = optimalBiasShift(tanhNet, statistics);
    const importance = ecScore(tanhNet, statistics, {});
    // inputs of every layer, from the float64 oracle
    const layerInputs = (n: number) => {
      const inputs = [row(x, n)];
      for (let l = 0; l < tanhNet.layers.length - 1; l++) {
        const prefix = { layers: tanhNet.layers.slice(0, l + 1) };
        inputs.push(forward64(prefix, row(x, n)));
      }
      return inputs;
    };
    const inputs = Array.from({ length: x.rows }, (_, n) => layerInputs(n));
    tanhNet.layers.forEach((layer, l) => {
      const { rows, cols, data } = layer.weight;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) {
          const w = data[i * cols + j];
          // (1/N) Σ_n s_i(x_n) (delta - w a_j(x_n))²
          const objective = (delta: number) =>
            inputs.reduce(
              (sum, a, n) => sum + sensitivities[l].data[n * rows + i] * (delta - w * a[l][j]) ** 2,
              0,
            ) / x.rows;
          const best = deltas[l][i * cols + j];
          const minimum = objective(best);
          assert.ok(
            Math.abs(minimum - importance[l][i * cols + j]) <= 1e-5 * Math.max(minimum, 1e-6),
            `I[${l}][${i},${j}]`,
          );
          for (const step of [1e-3, -1e-3, 0.1, -0.1]) {
            assert.ok(
              objective(best + step) >= minimum,
              `perturbing delta by ${step} lowers the objective at [${l}][${i},${j}]`,
            );
          }
        }
      }
    });
  });

  it('a weight on a constant input is fully absorbed: importance 0, outputs unchanged', async () => {
    const constantInput = randomMatrix(32, 5, 3);
    for (let n = 0; n < constantInput.rows; n++) constantInput.data[n * 5 + 2] = 0.75;
    const result = await prune(tanhNet, inMemoryDataset(constantInput), {
      method: 'ec',
      sparsity: 0,
      gemm: tsGemm,
    });
    for (let i = 0; i < tanhNet.layers[0].weight.rows; i++) assert.equal(result.importance[0][i * 5 + 2], 0);
  });

  it('the float32 cancellation case: large mean, tiny spread gives the right importance (TS loop and onnxruntime graph)', async () => {
    const net = randomMlp([3, 4, 2], { kind: 'relu' }, 4);
    const first = net.layers[0].weight.data;
    for (let i = 0; i < first.length; i++) first[i] = Math.abs(first[i]); // positive inputs: every hidden unit active
    const data = randomMatrix(2000, 3, 5, 1000, 1e-2); // mean 1000, std 0.01: mean²/var = 1e10
    const ort = await createOrtGemm();
    for (const gemm of [tsGemm, ort]) {
      const statistics = await collectStatistics(net, inMemoryDataset(data), { gemm, batchSize: 500 });
      await assertCancellationCase(net, data, ecScore(net, statistics, {}));
    }
    await ort.dispose?.();
  });
});

/** EC importance of layer 0 against a float64 two-pass computation (test above). */
async function assertCancellationCase(net: Mlp, data: Matrix, importance: Float64Array[]): Promise<void> {
  const sensitivities = await outputSensitivities(net, data, tsGemm);
  // float64 two-pass reference: w² Σ s (a - ā_s)² / N with ā_s the s-weighted mean
  const { rows, cols, data: w } = net.layers[0].weight;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let sumS = 0;
      let sumSA = 0;
      for (let n = 0; n < data.rows; n++) {
        const s = sensitivities[0].data[n * rows + i];
        sumS += s;
        sumSA += s * data.data[n * cols + j];
      }
      let variance = 0;
      for (let n = 0; n < data.rows; n++) {
        variance += sensitivities[0].data[n * rows + i] * (data.data[n * cols + j] - sumSA / sumS) ** 2;
      }
      const expected = (w[i * cols + j] ** 2 * variance) / data.rows;
      const actual = importance[0][i * cols + j];
      assert.ok(
        Math.abs(actual - expected) <= 1e-3 * expected,
        `I[0][${i},${j}] = ${actual}, expected ${expected}`,
      );
    }
  }
}

describe('selection', () => {
  it('prunes exactly k = min(floor(sparsity n + 0.5), n - 1) weights, globally and per layer', async () => {
    // never all n: a sparsity below 1 must leave a weight (0.99 of 35 rounds to 35)
    const k = (sparsity: number, n: number) => Math.min(Math.floor(sparsity * n + 0.5), n - 1);
    const data = inMemoryDataset(x, {
      kind: 'classes',
      values: Int32Array.from({ length: x.rows }, (_, n) => n % 3),
    });
    const total = tanhNet.layers.reduce((sum, l) => sum + l.weight.data.length, 0);
    for (const method of METHOD_NAMES) {
      for (const sparsity of [0, 0.1, 0.33, 0.5, 0.9, 0.99]) {
        const global = await prune(tanhNet, data, { method, sparsity, gemm: tsGemm });
        const pruned = global.keepMasks.reduce((sum, m) => sum + m.filter((k) => k === 0).length, 0);
        assert.equal(pruned, k(sparsity, total), `${method} global ${sparsity}`);
        const perLayer = await prune(tanhNet, data, { method, sparsity, scope: 'layer', gemm: tsGemm });
        perLayer.keepMasks.forEach((m, l) => {
          assert.equal(
            m.filter((k) => k === 0).length,
            k(sparsity, m.length),
            `${method} layer ${l} ${sparsity}`,
          );
        });
      }
    }
  });

  it('rejects a sparsity outside [0, 1) before any work', async () => {
    for (const sparsity of [-0.1, 1, 1.5, Number.NaN]) {
      await assert.rejects(prune(tanhNet, inMemoryDataset(x), { sparsity }), /sparsity must be in \[0, 1\)/);
    }
  });

  it('random is seeded: the same seed gives the same mask, another seed another', async () => {
    const masks = async (seed: number) =>
      (await prune(tanhNet, inMemoryDataset(x), { method: 'random', seed, sparsity: 0.5 })).keepMasks;
    assert.deepEqual(await masks(7), await masks(7));
    assert.notDeepEqual(await masks(7), await masks(8));
  });
});

describe('GEMM backends', () => {
  const ort = createOrtGemm(2, 0); // threshold 0: even tiny products go through onnxruntime
  after(async () => (await ort).dispose?.());

  it('onnxruntime-node and the TS loop give the same products for every transpose pair', async () => {
    const gemm = await ort;
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = randomMatrix(transA ? 37 : 23, transA ? 23 : 37, 10);
        const b = randomMatrix(transB ? 19 : 37, transB ? 37 : 19, 11);
        const fast = await gemm.matmul(a, b, { transA, transB });
        const { matmulTs } = await import('../../src/gemm/ts-gemm.js');
        assertClose(
          fast.data,
          matmulTs(a, b, { transA, transB }).data,
          `transA=${transA} transB=${transB}`,
          1e-5,
        );
      }
    }
  });

  it('EC statistics and pruning agree across backends and batch sizes', async () => {
    const gemm = await ort;
    const net = randomMlp([20, 16, 12, 4], { kind: 'relu' }, 12);
    const data = inMemoryDataset(randomMatrix(300, 20, 13));
    const reference = await prune(net, data, { method: 'ec', sparsity: 0.6, gemm: tsGemm, batchSize: 300 });
    for (const [backend, batchSize] of [
      [gemm, 300],
      [tsGemm, 7],
      [gemm, 64],
    ] as const) {
      const other = await prune(net, data, { method: 'ec', sparsity: 0.6, gemm: backend, batchSize });
      reference.importance.forEach((expected, l) => {
        assertClose(
          other.importance[l],
          expected,
          `importance[${l}] ${backend.name} batch ${batchSize}`,
          1e-4,
          1e-2,
        );
        assertClose(other.model.layers[l].bias, reference.model.layers[l].bias, `bias[${l}]`, 1e-4, 1e-2);
      });
    }
  });
});
