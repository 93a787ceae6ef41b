import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { EcpruneError } from '../../src/errors.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { backpropagate, forward, forwardTrace } from '../../src/graph/run.js';
import { matrix } from '../../src/model/matrix.js';
import {
  collectStatistics,
  oneHotCotangents,
  outputSensitivities,
  sampleSensitivities,
} from '../../src/score/statistics.js';
import { assertClose } from '../core/helpers.js';
import { randomData, randomMlp } from './helpers.js';

const net = randomMlp([6, 8, 7, 5], { kind: 'tanh' }, 11);
const data = randomData(23, 6, 12, 5);
const K = 5;

async function inputs() {
  for await (const batch of data.batches(1000)) return batch.x;
  throw new Error('empty');
}

describe("sensitivity 'output'", () => {
  it('is the original statistics bit for bit (default, true, output; with reference and layers)', async () => {
    const base = await collectStatistics(net, data, { gemm: tsGemm, batchSize: 7 });
    for (const sensitivity of [true, 'output'] as const) {
      const again = await collectStatistics(net, data, { gemm: tsGemm, batchSize: 7, sensitivity });
      assert.deepEqual(again, base);
    }
    const onlyOne = await collectStatistics(net, data, {
      gemm: tsGemm,
      batchSize: 7,
      reference: net,
      layers: [1],
    });
    for (const key of ['shift', 'm0', 'm1', 'm2'] as const)
      assert.deepEqual(onlyOne.layers[1][key], base.layers[1][key]);
    assert.ok(
      onlyOne.layers[1].referenceGap!.every((g) => g === 0),
      'the gap to itself is 0',
    );
    assert.ok(
      onlyOne.layers[0].m0.every((v) => v === 0),
      'layers not asked for stay empty',
    );
  });
});

describe("sensitivity 'loss'", () => {
  it('mse: exactly 2/K times the output sensitivities', async () => {
    const x = await inputs();
    const output = await outputSensitivities(net, x, tsGemm);
    const loss = await sampleSensitivities(net, x, {
      gemm: tsGemm,
      sensitivity: 'loss',
      sensitivityLoss: 'mse',
    });
    output.forEach((s, l) => {
      assertClose(
        loss[l].data,
        Array.from(s.data, (v) => (2 / K) * v),
        `s[${l}]`,
        1e-6,
      );
    });
    const valueData = inMemoryDataset(x, { kind: 'values', values: matrix(x.rows, K) });
    const statsOut = await collectStatistics(net, valueData, { gemm: tsGemm });
    const statsLoss = await collectStatistics(net, valueData, { gemm: tsGemm, sensitivity: 'loss' }); // mse from the targets
    // compared as raw sums Σ s, Σ s a, Σ s a² (the centred m1 is rounding noise where a has one batch's mean)
    const raw = (layer: (typeof statsOut.layers)[number]) => {
      const nIn = layer.shift.length;
      const m0 = (flat: number) => layer.m0[Math.floor(flat / nIn)];
      const c = (flat: number) => layer.shift[flat % nIn];
      return {
        m0: layer.m0,
        m1: layer.m1.map((v, flat) => v + c(flat) * m0(flat)),
        m2: layer.m2.map((v, flat) => v + 2 * c(flat) * layer.m1[flat] + c(flat) ** 2 * m0(flat)),
      };
    };
    statsOut.layers.forEach((layer, l) => {
      const [expected, actual] = [raw(layer), raw(statsLoss.layers[l])];
      for (const key of ['m0', 'm1', 'm2'] as const) {
        assertClose(
          actual[key],
          Array.from(expected[key], (v) => (2 / K) * v),
          `${key}[${l}]`,
          1e-5,
        );
      }
    });
  });

  it('ce: J_iᵀ (diag(p) - p pᵀ) J_i from the explicit Jacobian, in float64', async () => {
    const x = await inputs();
    const loss = await sampleSensitivities(net, x, {
      gemm: tsGemm,
      sensitivity: 'loss',
      sensitivityLoss: 'ce',
    });
    const y = await forward(net, x, tsGemm);
    const trace = await forwardTrace(net, x, tsGemm);
    await backpropagate(net, trace, oneHotCotangents(x.rows, K), tsGemm, (l, jacobian) => {
      const width = jacobian.cols; // row (n, k) = d y_k / d z_l
      const expected: number[] = [];
      for (let n = 0; n < x.rows; n++) {
        const logits = Array.from(y.data.subarray(n * K, (n + 1) * K));
        const max = Math.max(...logits);
        const e = logits.map((v) => Math.exp(v - max));
        const p = e.map((v) => v / e.reduce((a, b) => a + b, 0));
        for (let i = 0; i < width; i++) {
          const J = Array.from({ length: K }, (_, k) => jacobian.data[(n * K + k) * width + i]);
          const pJ = J.reduce((sum, v, k) => sum + p[k] * v, 0);
          expected.push(J.reduce((sum, v, k) => sum + p[k] * v * v, 0) - pJ * pJ);
        }
      }
      assertClose(loss[l].data, expected, `s[${l}]`, 1e-4);
    });
  });

  it('ce needs no labels; without labels and without a loss it is a usage error', async () => {
    const x = await inputs();
    const unlabelled = inMemoryDataset(x);
    const stats = await collectStatistics(net, unlabelled, {
      gemm: tsGemm,
      sensitivity: 'loss',
      sensitivityLoss: 'ce',
    });
    assert.ok(stats.layers.every((layer) => layer.m0.every((v) => v > 0)));
    await assert.rejects(
      collectStatistics(net, unlabelled, { gemm: tsGemm, sensitivity: 'loss' }),
      (error) => error instanceof EcpruneError && error.code === 'usage',
    );
  });
});

describe('probes', () => {
  /** the mean of `seeds` probe estimates is within z standard errors of the exact value, entry by entry */
  async function checkUnbiased(
    options: { sensitivity: 'output' | 'loss'; sensitivityLoss?: 'ce' },
    probes: number,
    seeds: number,
  ) {
    const x = await inputs();
    const exact = await sampleSensitivities(net, x, { gemm: tsGemm, ...options });
    const sums = exact.map((s) => new Float64Array(s.data.length));
    const squares = exact.map((s) => new Float64Array(s.data.length));
    for (let seed = 0; seed < seeds; seed++) {
      const estimate = await sampleSensitivities(net, x, {
        gemm: tsGemm,
        ...options,
        probes,
        probeSeed: seed,
      });
      estimate.forEach((s, l) => {
        s.data.forEach((v, p) => {
          sums[l][p] += v;
          squares[l][p] += v * v;
        });
      });
    }
    let worst = 0;
    let relativeBias = 0;
    let total = 0;
    exact.forEach((s, l) => {
      s.data.forEach((truth, p) => {
        const mean = sums[l][p] / seeds;
        const variance = (squares[l][p] / seeds - mean * mean) * (seeds / (seeds - 1));
        const standardError = Math.sqrt(Math.max(variance, 0) / seeds) + 1e-6 * truth;
        worst = Math.max(worst, Math.abs(mean - truth) / standardError);
        relativeBias += mean - truth;
        total += truth;
      });
    });
    console.log(
      `  probes=${probes} ${options.sensitivity}: worst |z| ${worst.toFixed(2)} over ${exact.reduce((a, s) => a + s.data.length, 0)} entries, relative bias of the total ${(relativeBias / total).toExponential(2)}`,
    );
    assert.ok(worst < 5.5, `worst z-score ${worst}`);
    assert.ok(Math.abs(relativeBias / total) < 0.02);
  }

  it('the output estimate is unbiased (mean over 300 seeds, m = 2)', async () =>
    checkUnbiased({ sensitivity: 'output' }, 2, 300));
  it('the ce-loss estimate is unbiased (mean over 300 seeds, m = 3)', async () =>
    checkUnbiased({ sensitivity: 'loss', sensitivityLoss: 'ce' }, 3, 300));

  it('approaches the exact S as m grows', async () => {
    const x = await inputs();
    const exact = await outputSensitivities(net, x, tsGemm);
    for (const probes of [16, 2048]) {
      const estimate = await sampleSensitivities(net, x, { gemm: tsGemm, probes, probeSeed: 3 });
      let error = 0;
      let norm = 0;
      exact.forEach((s, l) => {
        s.data.forEach((truth, p) => {
          error += (estimate[l].data[p] - truth) ** 2;
          norm += truth ** 2;
        });
      });
      const relative = Math.sqrt(error / norm);
      console.log(`  probes=${probes}: relative error ||Ŝ - S|| / ||S|| = ${relative.toFixed(4)}`);
      // Rademacher: Var ≤ 2 s²/m, so the relative error is about √(2/m) or less
      assert.ok(relative < 2 * Math.sqrt(2 / probes), `relative error ${relative}`);
    }
  });

  it('statistics with probes do not depend on the batch size (one probe stream in sample order)', async () => {
    const a = await collectStatistics(net, data, { gemm: tsGemm, probes: 3, probeSeed: 5, batchSize: 4 });
    const b = await collectStatistics(net, data, { gemm: tsGemm, probes: 3, probeSeed: 5, batchSize: 1000 });
    a.layers.forEach((layer, l) => {
      assertClose(layer.m0, b.layers[l].m0, `m0[${l}]`, 1e-5);
    });
  });
});
