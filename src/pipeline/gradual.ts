/**
 * The prune pipeline as the pruning step of gradual pruning during training (src/train/schedule.ts):
 * each step is `prune` run on the current network with its current masks.
 */
import type { Dataset } from '../data/dataset.js';
import type { Model } from '../graph/graph.js';
import { checkScope, type KeepMask, pruneCount, type Scope } from '../select/select.js';
import type { PruneTo } from '../train/schedule.js';
import { type PruneOptions, prune } from './prune.js';

/**
 * how each step scores, selects and compensates: any weight-pruning method and its variants
 * (default EC, global scope); the sparsity and the masks are the schedule's
 */
export type GradualPruneOptions = Omit<
  PruneOptions,
  'sparsity' | 'keepMasks' | 'structure' | 'pattern' | 'obs'
>;

/** Whether the masks already prune at least what `sparsity` asks (then the step has nothing to do). */
function reached(keepMasks: readonly KeepMask[], sparsity: number, scope: Scope): boolean {
  const pruned = keepMasks.map((mask) => mask.reduce((n, keep) => n + (1 - keep), 0));
  if (scope === 'layer') return keepMasks.every((mask, l) => pruned[l] >= pruneCount(sparsity, mask.length));
  const total = keepMasks.reduce((sum, mask) => sum + mask.length, 0);
  return pruned.reduce((sum, n) => sum + n, 0) >= pruneCount(sparsity, total);
}

/**
 * One pruning step: `model` pruned to `sparsity` by the prune pipeline, the weights `keepMasks`
 * prunes staying pruned; the model and masks unchanged when they already reach it.
 */
export async function pruneToSparsity<M extends Model>(
  model: M,
  keepMasks: readonly KeepMask[],
  sparsity: number,
  calibration: Dataset,
  options: GradualPruneOptions = {},
): Promise<{ model: M; keepMasks: readonly KeepMask[] }> {
  if (reached(keepMasks, sparsity, checkScope(options.scope ?? 'global'))) return { model, keepMasks };
  // the paper's EC unless told: each step is one of many, so the default recipe's own steps would repeat the schedule's work
  const result = await prune(model, calibration, {
    ...options,
    method: options.method ?? 'ec',
    sparsity,
    keepMasks,
  });
  return { model: result.model as M, keepMasks: result.keepMasks };
}

/** The pruning step of a training run's schedule: pruneToSparsity with these options. */
export function pruneStep(options: GradualPruneOptions = {}): PruneTo {
  return (model, keepMasks, sparsity, calibration) =>
    pruneToSparsity(model, keepMasks, sparsity, calibration, options);
}
