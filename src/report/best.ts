/**
 * Which method did best at each sparsity, for the report's charts and tables and the web demo.
 * The competitors are the pruned networks (the dense reference is not one), `random` as its mean
 * over seeds; ties are all best.
 */
import type { SweepRow } from '../pipeline/sweep.js';

/** Whether a measure improves upward (accuracy) or downward (losses, output error). */
export type Better = 'higher' | 'lower';

/** The chance-level baseline: its points may fall far outside the other methods' range. */
export const CHANCE_BASELINE = 'random';

/** How a row was pruned besides its method: the scope, and the fine-tuning when there was some. */
export function variantOf(row: SweepRow): string {
  return `${row.scope}${row.finetuneEpochs > 0 ? ` +${row.finetuneEpochs} ep` : ''}`;
}

/** The rows that compete (and are drawn as points): every pruned network, `random` as its mean over seeds. */
export function competingRows(rows: readonly SweepRow[]): SweepRow[] {
  const key = (row: SweepRow) => `${row.method} ${variantOf(row)} ${row.sparsity}`;
  const averaged = new Set(rows.filter((row) => row.seeds !== undefined).map(key));
  return rows.filter((row) => row.method !== 'dense' && (row.seed === undefined || !averaged.has(key(row))));
}

/**
 * The best competing rows at each sparsity by `value` (rows without a finite value take no part),
 * as a set: a row is best when no competitor at its sparsity is better.
 */
export function bestRows(
  rows: readonly SweepRow[],
  value: (row: SweepRow) => number | undefined,
  better: Better,
): Set<SweepRow> {
  const bySparsity = new Map<number, { row: SweepRow; value: number }[]>();
  for (const row of competingRows(rows)) {
    const v = value(row);
    if (v === undefined || !Number.isFinite(v)) continue;
    bySparsity.set(row.sparsity, [...(bySparsity.get(row.sparsity) ?? []), { row, value: v }]);
  }
  const best = new Set<SweepRow>();
  for (const entries of bySparsity.values()) {
    const values = entries.map((e) => e.value);
    const top = better === 'higher' ? Math.max(...values) : Math.min(...values);
    for (const entry of entries) if (entry.value === top) best.add(entry.row);
  }
  return best;
}
