import type { Model } from '../graph/graph.js';
import type { KeepMask } from '../select/select.js';

/**
 * Zeroes the pruned weights (keepMask 0) and, when `deltaBias` is given, adds to every bias the
 * shifts of its neuron's pruned weights: b_i += Σ_{j pruned} delta_ij. Under the linearisation the
 * joint optimal shift of several weights into one neuron is exactly that sum. Returns a new model
 * of the same kind (a graph keeps its nodes; only its layers change), in the layers' precision:
 * a float64 layer keeps its kept weights bit for bit and gets b + Σ delta in float64.
 */
export function applyPruning<M extends Model>(
  model: M,
  keepMasks: readonly KeepMask[],
  deltaBias?: readonly Float64Array[],
): M {
  return {
    ...model,
    layers: model.layers.map((layer, l) => {
      const { rows, cols } = layer.weight;
      const weight = layer.weight.data.slice();
      const bias = layer.bias.slice();
      const keep = keepMasks[l];
      const delta = deltaBias?.[l];
      for (let i = 0; i < rows; i++) {
        let shift = 0; // summed in float64, rounded once into a float32 bias
        for (let j = 0; j < cols; j++) {
          const flat = i * cols + j;
          if (keep[flat]) continue;
          weight[flat] = 0;
          if (delta) shift += delta[flat];
        }
        bias[i] = bias[i] + shift;
      }
      return { ...layer, weight: { rows, cols, data: weight }, bias };
    }),
  } as M;
}
