import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { materialize } from '../../src/data/dataset.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { logSumExp } from '../../src/graph/loss.js';
import { asGraph } from '../../src/graph/mlp-graph.js';
import { forward } from '../../src/graph/run.js';
import type { Mlp } from '../../src/model/mlp.js';
import {
  DEFAULT_RECIPE,
  type PruneOptions,
  prune,
  resolveRecipe,
  taskLoss,
} from '../../src/pipeline/prune.js';
import { formatVariant, parseVariant } from '../../src/pipeline/variant-name.js';
import { magnitudeScore } from '../../src/score/magnitude.js';
import { prunedCounts, selectGlobal } from '../../src/select/select.js';
import { assertSameModel, randomData, randomMlp } from './helpers.js';

const base = { gemm: tsGemm, batchSize: 16 } as const;
const deep = randomMlp([6, 9, 8, 4], { kind: 'relu' }, 31);
const data = randomData(60, 6, 32);
/** One linear layer: EC's linearisation is exact, so the full shift is the optimal one. */
const linear = randomMlp([7, 5], { kind: 'identity' }, 33);
const linearData = randomData(50, 7, 34);

/** `linear` pruned to 60 % with EC and `variant`: asserted to be the paper's EC's model; the result. */
async function assertPaperEcOnLinear(variant: PruneOptions, what: string) {
  const paper = await prune(linear, linearData, { ...base, method: 'ec', sparsity: 0.6 });
  const result = await prune(linear, linearData, { ...base, method: 'ec', sparsity: 0.6, ...variant });
  assertSameModel(result.model, paper.model, what);
  return result;
}

/** Mean KL(softmax(dense) ‖ softmax(pruned)) on the data, computed here from the outputs. */
async function klTo(dense: Mlp, pruned: Mlp): Promise<number> {
  const { x } = await materialize(data);
  const p = await forward(dense, x, tsGemm);
  const q = await forward(pruned, x, tsGemm);
  let sum = 0;
  for (let n = 0; n < x.rows; n++) {
    const rowP = p.data.subarray(n * p.cols, (n + 1) * p.cols);
    const rowQ = q.data.subarray(n * q.cols, (n + 1) * q.cols);
    const [lp, lq] = [logSumExp(rowP), logSumExp(rowQ)];
    for (let k = 0; k < p.cols; k++) sum += Math.exp(rowP[k] - lp) * (rowP[k] - lp - rowQ[k] + lq);
  }
  return sum / x.rows;
}

describe('shiftScale: the damped bias shift', () => {
  it('scale 1 is the paper’s EC bit for bit, scale 0 is ec-nocomp', async () => {
    const paper = await prune(deep, data, { ...base, method: 'ec', sparsity: 0.7 });
    const one = await prune(deep, data, { ...base, method: 'ec', sparsity: 0.7, shiftScale: 1 });
    assertSameModel(one.model, paper.model, 'alpha 1');
    const nocomp = await prune(deep, data, { ...base, method: 'ec-nocomp', sparsity: 0.7 });
    const zero = await prune(deep, data, { ...base, method: 'ec', sparsity: 0.7, shiftScale: 0 });
    assertSameModel(zero.model, nocomp.model, 'alpha 0');
  });

  it('scale 0.5 moves every bias half as far as the paper’s', async () => {
    const dense = deep;
    const paper = await prune(deep, data, { ...base, method: 'ec', sparsity: 0.7 });
    const half = await prune(deep, data, { ...base, method: 'ec', sparsity: 0.7, shiftScale: 0.5 });
    half.model.layers.forEach((layer, l) => {
      layer.bias.forEach((b, i) => {
        const full = paper.model.layers[l].bias[i] - dense.layers[l].bias[i];
        assert.ok(Math.abs(b - dense.layers[l].bias[i] - full / 2) < 1e-6, `b[${l}][${i}]`);
      });
    });
  });

  it("calibrated with 'mse' on a linear layer keeps the full shift: exactly the paper's EC", async () => {
    const calibrated = await assertPaperEcOnLinear(
      { shiftScale: 'calibrated', discrepancy: 'mse' },
      'calibrated linear',
    );
    assert.deepEqual(calibrated.shiftScales, [1], 'the scale of the only layer');
  });

  it("calibrated with 'kl' is never further from the dense network than the full or no shift", async () => {
    for (const sparsity of [0.5, 0.8, 0.9]) {
      const options = { ...base, method: 'ec', sparsity } as const;
      const calibrated = await prune(deep, data, { ...options, shiftScale: 'calibrated', discrepancy: 'kl' });
      const full = await prune(deep, data, options);
      const none = await prune(deep, data, { ...options, shiftScale: 0 });
      const [kCal, kFull, kNone] = await Promise.all(
        [calibrated, full, none].map((r) => klTo(deep, r.model)),
      );
      assert.ok(kCal <= kFull + 1e-9, `${sparsity}: calibrated ${kCal} vs full ${kFull}`);
      assert.ok(kCal <= kNone + 1e-9, `${sparsity}: calibrated ${kCal} vs none ${kNone}`);
      assert.equal(calibrated.shiftScales?.length, 3, 'one scale per layer');
    }
  });

  it("the task's loss follows the loss, the labels, then the number of outputs", () => {
    const graph = asGraph(deep);
    assert.equal(taskLoss(graph, data), 'ce', '4 outputs, no labels');
    assert.equal(taskLoss(graph, data, 'mse'), 'mse', 'loss mse');
    assert.equal(taskLoss(asGraph(randomMlp([3, 4, 1], { kind: 'tanh' }, 1)), data), 'mse', 'one output');
    assert.equal(taskLoss(graph, randomData(10, 6, 1, 3)), 'ce', 'class labels');
  });
});

describe('budgets: magnitude', () => {
  it("each layer loses as many weights as under magnitude's global ranking, the lowest EC scores in it", async () => {
    const result = await prune(deep, data, { ...base, method: 'ec', sparsity: 0.8, budgets: 'magnitude' });
    const magnitude = await prune(deep, data, { ...base, method: 'magnitude', sparsity: 0.8 });
    assert.deepEqual(prunedCounts(result.keepMasks), prunedCounts(magnitude.keepMasks), 'per-layer counts');
    assert.deepEqual(
      prunedCounts(result.keepMasks),
      prunedCounts(selectGlobal(magnitudeScore(deep, result.statistics, {}), 0.8)),
      'counts from the magnitude ranking',
    );
    result.keepMasks.forEach((keep, l) => {
      const scores = result.importance[l];
      let highestPruned = Number.NEGATIVE_INFINITY;
      let lowestKept = Number.POSITIVE_INFINITY;
      keep.forEach((k, p) => {
        if (k) lowestKept = Math.min(lowestKept, scores[p]);
        else highestPruned = Math.max(highestPruned, scores[p]);
      });
      assert.ok(highestPruned <= lowestKept, `layer ${l}: pruned ${highestPruned} vs kept ${lowestKept}`);
    });
  });

  it('on a one-layer network it is the paper’s EC', async () => {
    await assertPaperEcOnLinear({ budgets: 'magnitude' }, 'one layer');
  });
});

describe('the default recipe', () => {
  it('prune() without a method applies DEFAULT_RECIPE; naming a method gives that method', async () => {
    const implicit = await prune(deep, data, { ...base, sparsity: 0.8 });
    // named explicitly, a loss-sensitivity recipe needs the loss without labels; the default infers it
    const explicit = await prune(deep, data, { ...base, sparsity: 0.8, ...DEFAULT_RECIPE, loss: 'ce' });
    assertSameModel(implicit.model, explicit.model, 'default');
    assert.deepEqual(resolveRecipe({ method: 'ec' }), { method: 'ec' }, 'ec stays the paper');
    assert.deepEqual(resolveRecipe({ sequential: true }), { method: 'ec', sequential: true }, 'a variant');
    assert.deepEqual(
      resolveRecipe({ steps: 1, sensitivity: 'output' }).method,
      DEFAULT_RECIPE.method,
      'defaults',
    );
  });

  it('variant names round-trip', () => {
    for (const name of ['ec+alpha', 'ec+alpha0.5', 'ec+magbudget', 'ec+loss+alpha+magbudget']) {
      assert.equal(formatVariant(parseVariant(name)), name, name);
    }
    assert.equal(formatVariant(DEFAULT_RECIPE), 'ec+loss+steps5+alpha', 'the default by name');
  });

  it('refuses the new options with sequential, obs and neuron removal', async () => {
    await assert.rejects(
      prune(deep, data, { ...base, method: 'ec', sequential: true, shiftScale: 'calibrated' }),
      /shiftScale and budgets/,
    );
    await assert.rejects(prune(deep, data, { ...base, method: 'ec', shiftScale: 2 }), /shiftScale must be/);
  });
});
