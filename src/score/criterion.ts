import type { Layered } from '../graph/graph.js';
import type { CalibrationStatistics } from './statistics.js';

/** Per layer, one value per weight (n_out x n_in, row-major): low = pruned first. */
export type LayerScores = Float64Array[];

export interface ScoreOptions {
  /** seed of the `random` criterion */
  readonly seed?: number;
}

/**
 * The one signature of every importance criterion: the network, the calibration statistics
 * computed once and shared, options. Criteria are pure functions of these.
 */
export type Criterion = (
  model: Layered,
  statistics: CalibrationStatistics,
  options: ScoreOptions,
) => LayerScores;

/** Applies `perWeight(w, layer, i, j, flatIndex)` to every weight of every layer. */
export function mapWeights(
  mlp: Layered,
  perWeight: (w: number, layer: number, i: number, j: number, flat: number) => number,
): LayerScores {
  return mlp.layers.map((layer, l) => {
    const { rows, cols, data } = layer.weight;
    const scores = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++)
        scores[i * cols + j] = perWeight(data[i * cols + j], l, i, j, i * cols + j);
    }
    return scores;
  });
}
