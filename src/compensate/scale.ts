import type { Dataset } from '../data/dataset.js';
import { defaultGemm } from '../gemm/default.js';
import type { Gemm } from '../gemm/gemm.js';
import type { Model } from '../graph/graph.js';
import { logSumExp } from '../graph/loss.js';
import { asGraph, logitsGraph } from '../graph/mlp-graph.js';
import { forward } from '../graph/run.js';
import type { Matrix } from '../model/matrix.js';
import type { KeepMask } from '../select/select.js';
import { applyPruning, summedShifts } from './apply.js';

/**
 * How far the pruned network's output is from the dense one's on the calibration inputs, without
 * labels: `kl` = mean KL(softmax(dense logits) ‖ softmax(pruned logits)) (classifiers: behind a
 * softmax head, its input), `mse` = mean squared output difference (what EC's linearisation
 * minimises; regression).
 */
export type Discrepancy = 'kl' | 'mse';

/** The scales tried for each layer, from the paper's full shift (1) down to none (0). */
export const SHIFT_SCALES = [1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0] as const;

export interface ShiftScaleOptions {
  readonly discrepancy: Discrepancy;
  readonly gemm?: Gemm;
  readonly batchSize?: number;
}

/**
 * The damped compensation: each layer's summed bias shifts multiplied by a scale alpha_l in
 * SHIFT_SCALES, chosen on the calibration inputs (no labels) to minimise the discrepancy between
 * the dense network and the pruned one. Why: with most of a unit's inputs removed, the summed
 * first-order shift moves its pre-activation to about its mean, which switches ReLU units on and
 * drifts a classifier's predictions, while the output MSE EC minimises keeps falling (issue #14).
 * One pass over the layers in order (coordinate descent from alpha = 1 everywhere, so a layer's
 * scale is chosen with the later layers still at the paper's shift); ties keep the larger scale,
 * so where the full shift is optimal (a linear layer under `mse`) the result is exactly paper EC.
 * Returns the scales and the pruned, compensated model.
 */
export async function calibrateShiftScales<M extends Model>(
  model: M,
  dense: Model,
  keepMasks: readonly KeepMask[],
  deltaBias: readonly Float64Array[],
  calibration: Dataset,
  options: ShiftScaleOptions,
): Promise<{ scales: number[]; model: M }> {
  const gemm = options.gemm ?? defaultGemm();
  const measured = (m: Model) => (options.discrepancy === 'kl' ? logitsGraph(asGraph(m)) : m);
  const batches: Matrix[] = [];
  const targets: Matrix[] = [];
  for await (const batch of calibration.batches(options.batchSize ?? 1000)) {
    batches.push(batch.x);
    targets.push(await forward(measured(dense), batch.x, gemm));
  }
  const distance = options.discrepancy === 'kl' ? meanKl : meanSquaredDifference;
  const scales = deltaBias.map(() => 1);
  const pruned = scaledCompensation(model, keepMasks, deltaBias);
  const error = async (candidate: readonly number[]) => {
    const graph = measured(pruned(candidate));
    let sum = 0;
    let samples = 0;
    for (let b = 0; b < batches.length; b++) {
      sum += distance(targets[b], await forward(graph, batches[b], gemm));
      samples += batches[b].rows;
    }
    return sum / samples;
  };
  for (let l = 0; l < scales.length; l++) {
    if (deltaBias[l].every((d) => d === 0)) continue;
    let best = Number.POSITIVE_INFINITY;
    let bestScale = 1;
    for (const scale of SHIFT_SCALES) {
      const candidate = scales.map((s, k) => (k === l ? scale : s));
      const e = await error(candidate);
      if (e < best) [best, bestScale] = [e, scale];
    }
    scales[l] = bestScale;
  }
  return { scales, model: pruned(scales) };
}

/**
 * The pruned model as a function of one shift scale per layer: b_i + alpha_l Σ_{j pruned} delta_ij
 * (alpha 1: `applyPruning` with the shifts, bit for bit). The zeros and the summed shifts are
 * computed once, so trying many scales costs one bias vector each.
 */
export function scaledCompensation<M extends Model>(
  model: M,
  keepMasks: readonly KeepMask[],
  deltaBias: readonly Float64Array[],
): (scales: readonly number[]) => M {
  const zeroed = applyPruning(model, keepMasks);
  const shifts = zeroed.layers.map((layer, l) =>
    summedShifts(keepMasks[l], deltaBias[l], layer.weight.rows, layer.weight.cols),
  );
  return (scales) => ({
    ...zeroed,
    layers: zeroed.layers.map((layer, l) => ({
      ...layer,
      bias: layer.bias.map((b, i) => b + scales[l] * shifts[l][i]),
    })),
  });
}

/** Σ over the rows of KL(softmax(p) ‖ softmax(q)) for logits p (dense) and q (pruned). */
function meanKl(dense: Matrix, pruned: Matrix): number {
  let sum = 0;
  const k = dense.cols;
  for (let n = 0; n < dense.rows; n++) {
    const p = dense.data.subarray(n * k, (n + 1) * k);
    const q = pruned.data.subarray(n * k, (n + 1) * k);
    const [normP, normQ] = [logSumExp(p), logSumExp(q)];
    for (let i = 0; i < k; i++) sum += Math.exp(p[i] - normP) * (p[i] - normP - (q[i] - normQ));
  }
  return sum;
}

/** Σ over the rows of the mean squared difference of the outputs. */
function meanSquaredDifference(dense: Matrix, pruned: Matrix): number {
  let sum = 0;
  for (let i = 0; i < dense.data.length; i++) sum += (dense.data[i] - pruned.data[i]) ** 2;
  return sum / dense.cols;
}
