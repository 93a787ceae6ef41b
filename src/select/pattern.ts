import { EcpruneError } from '../errors.js';
import type { LayerScores } from '../score/criterion.js';
import type { KeepMask } from './select.js';

/**
 * N:M semi-structured sparsity along the input dimension: in every group of m consecutive inputs
 * of a row (columns [g·m, g·m + m) of W) at most n weights are kept. A row whose width is not a
 * multiple of m ends in a shorter group of g < m columns, which keeps min(n, g). The sparsity of a
 * layer is then (m - n)/m (exactly, when m divides its width).
 */
export interface NmPattern {
  readonly n: number;
  readonly m: number;
}

export function checkPattern(pattern: NmPattern): NmPattern {
  const { n, m } = pattern;
  if (!Number.isInteger(n) || !Number.isInteger(m) || m < 1 || n < 1 || n > m) {
    throw new EcpruneError('usage', `an N:M pattern needs integers 1 <= n <= m, got ${n}:${m}`);
  }
  return pattern;
}

/** (m - n)/m: the fraction of weights an N:M pattern removes. */
export function patternSparsity(pattern: NmPattern): number {
  return (pattern.m - pattern.n) / pattern.m;
}

/**
 * Keeps the n highest scores of every group of m consecutive entries of each row (`rows` x `cols`,
 * row-major) and prunes the rest. Ties are broken like `selectMasks`: the lower index goes first.
 */
export function selectPatternLayer(
  scores: Float64Array,
  rows: number,
  cols: number,
  pattern: NmPattern,
): KeepMask {
  const { n, m } = checkPattern(pattern);
  const keep = new Uint8Array(rows * cols).fill(1);
  const order: number[] = [];
  for (let i = 0; i < rows; i++) {
    for (let start = 0; start < cols; start += m) {
      const end = Math.min(cols, start + m);
      order.length = 0;
      for (let j = start; j < end; j++) {
        if (Number.isNaN(scores[i * cols + j]))
          throw new EcpruneError('internal', `score ${i * cols + j} is NaN`, undefined, `row ${i}`);
        order.push(i * cols + j);
      }
      order.sort((a, b) => scores[a] - scores[b] || a - b); // lowest first, then by position
      const pruned = Math.max(0, end - start - n);
      for (let p = 0; p < pruned; p++) keep[order[p]] = 0;
    }
  }
  return keep;
}

/** N:M keep-masks for every layer of a network (the pattern ignores scope: every row is treated alike). */
export function selectPattern(
  scores: LayerScores,
  shapes: readonly { rows: number; cols: number }[],
  pattern: NmPattern,
): KeepMask[] {
  return scores.map((s, l) => selectPatternLayer(s, shapes[l].rows, shapes[l].cols, pattern));
}

/** Whether a mask keeps at most n of every group of m (for checks and tests). */
export function satisfiesPattern(keep: KeepMask, rows: number, cols: number, pattern: NmPattern): boolean {
  for (let i = 0; i < rows; i++) {
    for (let start = 0; start < cols; start += pattern.m) {
      let kept = 0;
      for (let j = start; j < Math.min(cols, start + pattern.m); j++) kept += keep[i * cols + j];
      if (kept > pattern.n) return false;
    }
  }
  return true;
}
