import { type Criterion, mapWeights } from './criterion.js';
import { ROUNDING_FLOOR } from './statistics.js';

/**
 * EC importance: the mean squared output change left after the optimal bias compensation,
 *   I_ij = w² (m2_ij - m1_ij² / m0_i) / N,
 * i.e. w² times the sensitivity-weighted variance of input j. A weight whose input is (nearly)
 * constant is absorbed by the bias and scores ~0 whatever its magnitude. A neuron that cannot
 * affect the output (m0_i = 0, e.g. a dead ReLU) scores 0. A variance below the rounding error of
 * its own float32 computation (a fraction ROUNDING_FLOOR of m2) is mathematically zero
 * and scores 0, so that those weights tie exactly instead of being ordered by rounding noise.
 */
export const ecScore: Criterion = (mlp, statistics) =>
  mapWeights(mlp, (w, l, i, _j, flat) => {
    const { m0, m1, m2 } = statistics.layers[l];
    if (m0[i] === 0) return 0;
    const variance = m2[flat] - (m1[flat] * m1[flat]) / m0[i];
    return variance > ROUNDING_FLOOR * m2[flat] ? (w * w * variance) / statistics.samples : 0;
  });
