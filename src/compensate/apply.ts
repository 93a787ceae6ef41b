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
      const keep = keepMasks[l];
      for (let flat = 0; flat < weight.length; flat++) if (!keep[flat]) weight[flat] = 0;
      const delta = deltaBias?.[l];
      const shifts = delta && summedShifts(keep, delta, rows, cols);
      // summed in float64, rounded once into a float32 bias
      const bias = shifts ? layer.bias.map((b, i) => b + shifts[i]) : layer.bias.slice();
      return { ...layer, weight: { rows, cols, data: weight }, bias };
    }),
  } as M;
}

/** Per neuron i of a rows x cols layer, Σ_{j pruned} delta_ij in float64 (j ascending). */
export function summedShifts(keep: KeepMask, delta: Float64Array, rows: number, cols: number): Float64Array {
  const shifts = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let shift = 0;
    for (let j = 0; j < cols; j++) if (!keep[i * cols + j]) shift += delta[i * cols + j];
    shifts[i] = shift;
  }
  return shifts;
}
