import { EcpruneError } from '../errors.js';
import type { LayerScores } from '../score/criterion.js';

/** Per layer, 1 = the weight is kept, 0 = pruned (same layout as W). Masks are plain data. */
export type KeepMask = Uint8Array;

export type Scope = 'global' | 'layer';

export function checkSparsity(sparsity: number): number {
  if (!(sparsity >= 0 && sparsity < 1)) {
    throw new EcpruneError('usage', `sparsity must be in [0, 1), got ${sparsity}`);
  }
  return sparsity;
}

export function checkScope(scope: string): Scope {
  if (scope !== 'global' && scope !== 'layer') {
    throw new EcpruneError('usage', `unknown scope '${scope}' (choose global or layer)`);
  }
  return scope;
}

/**
 * k = floor(sparsity · n + 0.5) weights are pruned, but never all n: a sparsity below 1 such as
 * 0.99999999 would round up to every weight, and a model without weights is never what was asked.
 */
export function pruneCount(sparsity: number, weights: number): number {
  return Math.min(Math.floor(checkSparsity(sparsity) * weights + 0.5), Math.max(weights - 1, 0));
}

/**
 * Marks the k lowest scores of `scores` (one flat array) as pruned. Ties are broken by position:
 * the lower flat index is pruned first, which is what a stable sort of the scores gives. Done with
 * a numeric sort of a copy (fast) to find the k-th value, then one pass, instead of sorting indices.
 */
export function lowestK(scores: Float64Array, k: number): KeepMask {
  const keep = new Uint8Array(scores.length).fill(1);
  if (k === 0) return keep;
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i])) throw new EcpruneError('internal', `score ${i} is NaN`);
  }
  const threshold = scores.slice().sort()[k - 1];
  let pruned = 0;
  for (let i = 0; i < scores.length; i++) {
    if (scores[i] < threshold) {
      keep[i] = 0;
      pruned++;
    }
  }
  for (let i = 0; i < scores.length && pruned < k; i++) {
    if (scores[i] === threshold) {
      keep[i] = 0;
      pruned++;
    }
  }
  return keep;
}

/** One ranking across all layers (concatenated in layer order, each row-major). */
export function selectGlobal(scores: LayerScores, sparsity: number): KeepMask[] {
  const total = scores.reduce((sum, s) => sum + s.length, 0);
  const all = new Float64Array(total);
  let offset = 0;
  for (const s of scores) {
    all.set(s, offset);
    offset += s.length;
  }
  const keep = lowestK(all, pruneCount(sparsity, total));
  offset = 0;
  return scores.map((s) => {
    const mask = keep.slice(offset, offset + s.length);
    offset += s.length;
    return mask;
  });
}

/** The same sparsity in every layer, each ranked on its own. */
export function selectPerLayer(scores: LayerScores, sparsity: number): KeepMask[] {
  return scores.map((s) => lowestK(s, pruneCount(sparsity, s.length)));
}

/** Per layer, the k_l lowest scores of that layer: the layer budgets are given, the ranking is within each layer. */
export function selectWithBudgets(scores: LayerScores, pruned: readonly number[]): KeepMask[] {
  return scores.map((s, l) => lowestK(s, pruned[l]));
}

/** Per layer, how many weights a selection prunes. */
export function prunedCounts(masks: readonly KeepMask[]): number[] {
  return masks.map((keep) => keep.length - keep.reduce((sum, k) => sum + k, 0));
}

/**
 * Per layer, a sparsity of its own (0 keeps it dense), or undefined: the layer is ranked with the
 * others by `sparsity` and `scope` (layers.ts resolves `exclude` / `layerSparsity` into this).
 */
export type LayerTargets = readonly (number | undefined)[];

/**
 * Keep-masks at `sparsity` under `scope`; layers with a target of their own (`targets`) are
 * pruned to it on their own ranking, and `sparsity` applies to the remaining layers only (as
 * Torch-Pruning's `pruning_ratio_dict` and `ignored_layers` do).
 */
export function selectMasks(
  scores: LayerScores,
  sparsity: number,
  scope: Scope,
  targets?: LayerTargets,
): KeepMask[] {
  if (targets?.some((target) => target !== undefined)) {
    const free = scores.flatMap((_, l) => (targets[l] === undefined ? [l] : []));
    const freeMasks = selectMasks(
      free.map((l) => scores[l]),
      sparsity,
      scope,
    );
    return scores.map((layerScores, l) => {
      const target = targets[l];
      return target === undefined
        ? freeMasks[free.indexOf(l)]
        : lowestK(layerScores, pruneCount(target, layerScores.length));
    });
  }
  return scope === 'global' ? selectGlobal(scores, sparsity) : selectPerLayer(scores, sparsity);
}
