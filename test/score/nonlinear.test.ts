import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { optimalBiasShift } from '../../src/compensate/delta.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { createRandom } from '../../src/data/random.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import type { Activation } from '../../src/model/activations.js';
import { type Matrix, matrix, rowSlice } from '../../src/model/matrix.js';
import { type Mlp, weightCount } from '../../src/model/mlp.js';
import { ecScore } from '../../src/score/ec.js';
import { type NonlinearResult, nonlinearScore } from '../../src/score/nonlinear.js';
import { collectStatistics } from '../../src/score/statistics.js';
import { initMlp } from '../../src/train/train.js';
import { assertClose } from '../core/helpers.js';

// --- an independent float64 reference: the real network, plain numbers ---------------------------

const ACT: Record<string, (z: number) => number> = {
  identity: (z) => z,
  relu: (z) => Math.max(0, z),
  tanh: Math.tanh,
};

function output(
  mlp: Mlp,
  x: ArrayLike<number>,
  edit?: { l: number; i: number; j: number; delta: number },
): number[] {
  let a = Array.from(x);
  mlp.layers.forEach((layer, l) => {
    const { rows, cols, data } = layer.weight;
    a = Array.from({ length: rows }, (_, i) => {
      const edited = edit !== undefined && edit.l === l && edit.i === i;
      let z = layer.bias[i] + (edited ? edit.delta : 0);
      for (let j = 0; j < cols; j++) if (!(edited && j === edit.j)) z += data[i * cols + j] * a[j];
      return ACT[layer.activation.kind](z);
    });
  });
  return a;
}

/** F(δ): mean over samples of ||y(W_l[i,j] = 0, b_l[i] + δ) − y||², through the real network. */
function objective(mlp: Mlp, x: Matrix, l: number, i: number, j: number, delta: number): number {
  let sum = 0;
  for (let n = 0; n < x.rows; n++) {
    const sample = x.data.subarray(n * x.cols, (n + 1) * x.cols);
    const y = output(mlp, sample);
    const edited = output(mlp, sample, { l, i, j, delta });
    sum += edited.reduce((s, v, k) => s + (v - y[k]) ** 2, 0);
  }
  return sum / x.rows;
}

/**
 * Checks weight (l, i, j) against the reference: its score is F(δ*) and moving δ* either way by a
 * fraction of the weight's size does not lower F (a minimum). Returns F(δ*).
 */
function checkMinimum(mlp: Mlp, x: Matrix, result: NonlinearResult, l: number, i: number, j: number): number {
  const { cols, data } = mlp.layers[l].weight;
  const flat = i * cols + j;
  const best = result.deltaBias[l][flat];
  const atBest = objective(mlp, x, l, i, j, best);
  const where = `layer ${l} [${i},${j}]`;
  assert.ok(
    Math.abs(result.importance[l][flat] - atBest) <= 1e-5 * atBest + 1e-12,
    `${where}: score vs F(δ*) = ${atBest}`,
  );
  const step = 1e-3 * Math.abs(data[flat]);
  for (const moved of [best - step, best + step]) {
    assert.ok(
      objective(mlp, x, l, i, j, moved) >= atBest * (1 - 1e-6) - 1e-12,
      `${where}: δ* is not a minimum`,
    );
  }
  return atBest;
}

/** Inputs with a clear mean and spread, so that compensation matters. */
function inputs(rows: number, cols: number, seed: number): Matrix {
  const random = createRandom(seed);
  return matrix(
    rows,
    cols,
    Float32Array.from({ length: rows * cols }, (_, k) => 0.8 + (k % cols) * 0.3 + 0.6 * random.normal()),
  );
}

function network(sizes: number[], activation: Activation, seed: number): Mlp {
  return initMlp({ sizes, activation, seed });
}

// --- tests ----------------------------------------------------------------------------------------

describe('nonlinearScore', () => {
  it('equals EC (δ and score) when the network is linear: the linearisation is exact', async () => {
    const mlp = network([4, 6, 5, 3], { kind: 'identity' }, 11);
    const x = inputs(40, 4, 1);
    const statistics = await collectStatistics(mlp, inMemoryDataset(x), { gemm: tsGemm });
    const ecDelta = optimalBiasShift(mlp, statistics);
    const ec = ecScore(mlp, statistics, {});
    const result = await nonlinearScore(mlp, x, { gemm: tsGemm });
    mlp.layers.forEach((layer, l) => {
      assertClose(result.deltaBias[l], ecDelta[l], `delta[${l}]`, 1e-5);
      assertClose(result.importance[l], ec[l], `score[${l}]`, 1e-5, 1e-2);
      // and both are the true optimum: the score is F(δ*) through the network, a minimum
      const { rows, cols } = layer.weight;
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) checkMinimum(mlp, x, result, l, i, j);
    });
  });

  for (const activation of [{ kind: 'relu' }, { kind: 'tanh' }] as const) {
    it(`${activation.kind}: δ* is a minimum through the real network and never worse than EC's δ`, async (t) => {
      const mlp = network([3, 6, 5, 2], activation, 5);
      const x = inputs(32, 3, 2);
      const statistics = await collectStatistics(mlp, inMemoryDataset(x), { gemm: tsGemm });
      const ecDelta = optimalBiasShift(mlp, statistics);
      const result = await nonlinearScore(mlp, x, { gemm: tsGemm });
      let better = 0;
      let largestGain = 0;
      mlp.layers.forEach((layer, l) => {
        const { rows, cols } = layer.weight;
        for (let i = 0; i < rows; i++) {
          for (let j = 0; j < cols; j++) {
            const flat = i * cols + j;
            const atBest = checkMinimum(mlp, x, result, l, i, j);
            const atEc = objective(mlp, x, l, i, j, ecDelta[l][flat]);
            assert.ok(
              atBest <= atEc * (1 + 1e-6) + 1e-12,
              `layer ${l} [${i},${j}]: F(δ*) = ${atBest} > F(δ_EC) = ${atEc}`,
            );
            if (atBest < atEc * 0.99) better++;
            largestGain = Math.max(largestGain, atEc > 0 ? 1 - atBest / atEc : 0);
          }
        }
      });
      t.diagnostic(
        `${better} of ${weightCount(mlp)} weights ≥ 1 % better than EC's δ; largest gain ${(100 * largestGain).toFixed(1)} %`,
      );
      assert.ok(better > 0, 'the non-linear search should improve on the linearisation somewhere');
    });
  }

  it('reports progress per weight, uses the first maxSamples samples, scores zero weights 0', async () => {
    const mlp = network([3, 4, 2], { kind: 'tanh' }, 3);
    mlp.layers[0].weight.data[5] = 0;
    const x = inputs(20, 3, 4);
    const calls: [number, number][] = [];
    const limited = await nonlinearScore(mlp, x, {
      gemm: tsGemm,
      maxSamples: 8,
      onProgress: (d, n) => calls.push([d, n]),
    });
    assert.deepEqual(
      calls,
      Array.from({ length: 20 }, (_, k) => [k + 1, 20]),
    );
    const direct = await nonlinearScore(mlp, rowSlice(x, 0, 8), { gemm: tsGemm });
    assert.deepEqual(limited, direct);
    assert.equal(limited.importance[0][5], 0);
    assert.equal(limited.deltaBias[0][5], 0);
    await assert.rejects(nonlinearScore(mlp, inputs(5, 4, 1)), /features/);
  });
});
