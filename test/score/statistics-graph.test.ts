/**
 * The one-graph-per-batch calibration pass (score/ec-graph.ts run by onnxruntime-node) against
 * the GEMM-by-GEMM path with the pure-TS GEMM: two independent implementations of the same sums.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { withoutGraphs } from '../../src/gemm/gemm.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { ACTIVATION_KINDS, type Activation, type ActivationKind } from '../../src/model/activations.js';
import type { Mlp } from '../../src/model/mlp.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
import { type CalibrationStatistics, collectStatistics } from '../../src/score/statistics.js';
import { randomMatrix, randomMlp } from '../helpers/random.js';

const ort = await createOrtGemm();
after(() => ort.dispose?.());

function activation(kind: ActivationKind): Activation {
  if (kind === 'leaky_relu') return { kind, alpha: 0.1 };
  if (kind === 'elu') return { kind, alpha: 0.7 };
  return { kind } as Activation;
}

/** max |a - b| over an array, relative to max |b| (the layer's scale) */
function relativeGap(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const scale = maxAbs(b);
  let gap = 0;
  for (let i = 0; i < b.length; i++) gap = Math.max(gap, Math.abs(a[i] - b[i]));
  return scale === 0 ? gap : gap / scale;
}

function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]));
  return max;
}

/**
 * The raw sums Σ s a and Σ s a² from the shifted moments (m1 + c m0, m2 + 2c m1 + c² m0): free of
 * the shift c, which the two paths choose differently (the graph: the mean of the first 256
 * samples).
 */
function rawMoments(stats: CalibrationStatistics['layers'][number]) {
  const nIn = stats.shift.length;
  const first = new Float64Array(stats.m1.length);
  const second = new Float64Array(stats.m2.length);
  for (let k = 0; k < first.length; k++) {
    const [c, m0] = [stats.shift[k % nIn], stats.m0[Math.floor(k / nIn)]];
    first[k] = stats.m1[k] + c * m0;
    second[k] = stats.m2[k] + 2 * c * stats.m1[k] + c * c * m0;
  }
  return { first, second };
}

function assertSameStatistics(
  graph: CalibrationStatistics,
  reference: CalibrationStatistics,
  tolerance: number,
) {
  assert.equal(graph.samples, reference.samples);
  assert.equal(graph.layers.length, reference.layers.length);
  graph.layers.forEach((layer, l) => {
    const expected = reference.layers[l];
    const [raw, rawExpected] = [rawMoments(layer), rawMoments(expected)];
    const compared = {
      m0: [layer.m0, expected.m0],
      'Σ s a': [raw.first, rawExpected.first],
      'Σ s a²': [raw.second, rawExpected.second],
      lossGradient: [layer.lossGradient, expected.lossGradient],
    };
    for (const [key, [a, b]] of Object.entries(compared)) {
      assert.equal(a === undefined, b === undefined, `layer ${l} ${key} present in one only`);
      if (a === undefined || b === undefined) continue;
      const gap = relativeGap(a, b);
      assert.ok(gap <= tolerance, `layer ${l} ${key}: ${gap.toExponential(2)} > ${tolerance}`);
    }
  });
}

/** A network whose every layer (the output too) has `kind`, so the graph's output-layer branches run. */
function uniformMlp(sizes: number[], kind: ActivationKind, seed: number): Mlp {
  const mlp = randomMlp(sizes, activation(kind), seed);
  return { layers: mlp.layers.map((layer) => ({ ...layer, activation: activation(kind) })) };
}

describe('calibration statistics as one graph per batch', () => {
  const x = randomMatrix(203, 7, 1, 0.3, 1.5);
  const classes = Int32Array.from({ length: 203 }, (_, n) => (n * 7) % 4);
  const data = inMemoryDataset(x, { kind: 'classes', values: classes });

  for (const kind of ACTIVATION_KINDS) {
    for (const [name, mlp] of [
      ['identity output', randomMlp([7, 9, 6, 5, 4], activation(kind), 3)],
      ['same activation at the output', uniformMlp([7, 9, 6, 5, 4], kind, 4)],
    ] as const) {
      test(`${kind}, ${name}: moments and loss gradient agree with the GEMM path`, async () => {
        for (const loss of ['ce', 'mse'] as const) {
          const options = { batchSize: 50, lossGradient: loss } as const;
          const reference = await collectStatistics(mlp, data, { ...options, gemm: tsGemm });
          const graph = await collectStatistics(mlp, data, { ...options, gemm: ort });
          assertSameStatistics(graph, reference, 2e-5);
        }
      });
    }
  }

  test('one or two layers, one output, and a batch larger than the data', async () => {
    for (const sizes of [
      [7, 4],
      [7, 1],
      [7, 5, 1],
      [7, 3, 2],
    ]) {
      const mlp = uniformMlp(sizes, 'tanh', 5);
      for (const batchSize of [1, 64, 1000]) {
        const reference = await collectStatistics(mlp, data, { batchSize, gemm: tsGemm });
        const graph = await collectStatistics(mlp, data, { batchSize, gemm: ort });
        assertSameStatistics(graph, reference, 2e-5);
      }
    }
  });

  test('batches are run in row slices when the cotangent tensor would be large', async () => {
    // 12 outputs x 600 hidden: slices of 728 rows, so a batch of 1000 runs as 728 + 272
    const mlp = randomMlp([5, 600, 12], { kind: 'relu' }, 6);
    const wide = inMemoryDataset(randomMatrix(1500, 5, 7));
    const reference = await collectStatistics(mlp, wide, { batchSize: 1000, gemm: tsGemm });
    const graph = await collectStatistics(mlp, wide, { batchSize: 1000, gemm: ort });
    assertSameStatistics(graph, reference, 2e-5);
  });

  test('only the wanted layers are accumulated; the loss gradient alone needs no sensitivities', async () => {
    const mlp = randomMlp([7, 9, 6, 4], { kind: 'relu' }, 8);
    const graph = await collectStatistics(mlp, data, { gemm: ort, layers: [1] });
    assert.ok(graph.layers[1].m1.some((v) => v !== 0));
    assert.ok(graph.layers[0].m1.every((v) => v === 0) && graph.layers[2].m0.every((v) => v === 0));
    const gradientOnly = { sensitivity: false, lossGradient: 'ce' } as const;
    const reference = await collectStatistics(mlp, data, { ...gradientOnly, gemm: tsGemm });
    assertSameStatistics(await collectStatistics(mlp, data, { ...gradientOnly, gemm: ort }), reference, 2e-5);
  });

  test('the GEMM-by-GEMM path on onnxruntime itself (withoutGraphs) gives the same', async () => {
    const mlp = randomMlp([7, 9, 6, 4], { kind: 'gelu' }, 9);
    const gemmByGemm = await collectStatistics(mlp, data, { gemm: withoutGraphs(ort) });
    assertSameStatistics(await collectStatistics(mlp, data, { gemm: ort }), gemmByGemm, 2e-5);
  });

  test('labels out of range are refused on the graph path as on the other', async () => {
    const mlp = randomMlp([7, 9, 3], { kind: 'relu' }, 10);
    const message = /label 3 is out of range for 3 outputs/;
    await assert.rejects(collectStatistics(mlp, data, { gemm: ort, lossGradient: 'ce' }), message);
    await assert.rejects(collectStatistics(mlp, data, { gemm: tsGemm, lossGradient: 'ce' }), message);
  });
});
