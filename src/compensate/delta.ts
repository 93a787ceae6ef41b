import type { Layered } from '../graph/graph.js';
import { type CalibrationStatistics, ROUNDING_FLOOR } from '../score/statistics.js';

/**
 * The optimal bias shift that compensates removing W[i,j] (first order, over the calibration set):
 *   delta_ij = w Σ_n s_i a_j / Σ_n s_i = w (m1_ij / m0_i + c_j),
 * the sensitivity-weighted mean of what the weight contributed. 0 where the neuron cannot affect
 * the output (m0_i = 0). One matrix per layer, n_out x n_in like W.
 */
export function optimalBiasShift(mlp: Layered, statistics: CalibrationStatistics): Float64Array[] {
  return mlp.layers.map((layer, l) => {
    const { rows, cols, data } = layer.weight;
    const { m0, m1, shift } = statistics.layers[l];
    const delta = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      if (m0[i] === 0) continue;
      for (let j = 0; j < cols; j++) {
        const weightedMean = m1[i * cols + j] / m0[i] + shift[j];
        // below the rounding error of adding back the shift, the mean is zero (see ecScore)
        if (Math.abs(weightedMean) > ROUNDING_FLOOR * Math.abs(shift[j]))
          delta[i * cols + j] = data[i * cols + j] * weightedMean;
      }
    }
    return delta;
  });
}
