import { type Criterion, mapWeights } from './criterion.js';
import { ROUNDING_FLOOR } from './statistics.js';

/**
 * Optimal-brain-damage saliency with the same Gauss–Newton curvature, no compensation:
 *   w² Σ_n s_i a_j² / N.
 * The statistics hold moments about the shift c, so Σ s a² = m2 + 2 c m1 + c² m0; a result below
 * the rounding error of that sum is zero (see ecScore).
 */
export const obdScore: Criterion = (mlp, statistics) =>
  mapWeights(mlp, (w, l, i, j, flat) => {
    const { m0, m1, m2, shift } = statistics.layers[l];
    const c = shift[j];
    const secondMoment = m2[flat] + 2 * c * m1[flat] + c * c * m0[i];
    const magnitude = m2[flat] + c * c * m0[i];
    return secondMoment > ROUNDING_FLOOR * magnitude ? (w * w * secondMoment) / statistics.samples : 0;
  });
