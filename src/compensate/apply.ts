import type { Mlp } from '../model/mlp.js';
import type { KeepMask } from '../select/select.js';

/**
 * Zeroes the pruned weights (keepMask 0) and, when `deltaBias` is given, adds to every bias the
 * shifts of its neuron's pruned weights: b_i += Σ_{j pruned} delta_ij. Under the linearisation the
 * joint optimal shift of several weights into one neuron is exactly that sum. Returns a new Mlp.
 */
export function applyPruning(
  mlp: Mlp,
  keepMasks: readonly KeepMask[],
  deltaBias?: readonly Float64Array[],
): Mlp {
  return {
    layers: mlp.layers.map((layer, l) => {
      const { rows, cols } = layer.weight;
      const weight = layer.weight.data.slice();
      const bias = layer.bias.slice();
      const keep = keepMasks[l];
      const delta = deltaBias?.[l];
      for (let i = 0; i < rows; i++) {
        let shift = 0; // summed in float64, rounded once into the float32 bias
        for (let j = 0; j < cols; j++) {
          const flat = i * cols + j;
          if (keep[flat]) continue;
          weight[flat] = 0;
          if (delta) shift += delta[flat];
        }
        bias[i] = bias[i] + shift;
      }
      return { weight: { rows, cols, data: weight }, bias, activation: layer.activation };
    }),
  };
}
