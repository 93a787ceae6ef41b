import { EcpruneError } from '../errors.js';
import type { Mlp } from '../model/mlp.js';
import type { LayerScores } from '../score/criterion.js';
import { type KeepMask, pruneCount, type Scope } from './select.js';

/**
 * Structured pruning of whole hidden neurons (EC's idea applied to neurons).
 *
 * Removing hidden neuron k of layer l removes its activation a_k from every neuron i of layer
 * l+1, i.e. the column W_{l+1}[:, k]. Each entry of that column is a single weight of its row, so
 * the EC analysis of one weight applies per row exactly: the optimal compensation is
 *   b_{l+1}[i] += W_{l+1}[i,k] · E_{s_i}[a_k]          (= delta_{l+1}[i,k] of `optimalBiasShift`)
 * and the output error it leaves is I_{l+1}[i,k] = W_{l+1}[i,k]² Var_{s_i}(a_k) / N. The neuron
 * score is the sum over its outgoing weights, Σ_i I_{l+1}[i,k] (cross-row interactions ignored, as
 * EC ignores them between weights). With another criterion, the column sums of its scores.
 * Sparsity for neurons is the fraction of hidden neurons removed (the output layer is never
 * touched); every hidden layer keeps at least one neuron.
 */

/** Per hidden layer l (0 .. L-2), one score per neuron: the column sums of layer l+1's weight scores. */
export function neuronScores(mlp: Mlp, weightScores: LayerScores): Float64Array[] {
  return mlp.layers.slice(0, -1).map((_, l) => {
    const { rows, cols } = mlp.layers[l + 1].weight;
    const scores = new Float64Array(cols);
    const next = weightScores[l + 1];
    for (let i = 0; i < rows; i++) for (let k = 0; k < cols; k++) scores[k] += next[i * cols + k];
    return scores;
  });
}

/**
 * Per hidden layer, 1 = the neuron is kept. Removes pruneCount(fraction, neurons) of the lowest
 * scores, over all hidden layers together (`global`) or the same fraction of each (`layer`), never
 * the last neuron of a layer. Ties go to the earlier layer, then the lower index.
 */
export function selectNeurons(scores: readonly Float64Array[], fraction: number, scope: Scope): Uint8Array[] {
  if (scores.length === 0)
    throw new EcpruneError('usage', 'neuron pruning needs a hidden layer (the model has one layer)');
  const keep = scores.map((s) => new Uint8Array(s.length).fill(1));
  const removeLowest = (candidates: { l: number; k: number }[], count: number) => {
    candidates.sort((a, b) => scores[a.l][a.k] - scores[b.l][b.k] || a.l - b.l || a.k - b.k);
    const left = scores.map((s) => s.length);
    let removed = 0;
    for (const { l, k } of candidates) {
      if (removed === count) break;
      if (left[l] === 1) continue;
      keep[l][k] = 0;
      left[l]--;
      removed++;
    }
  };
  const all = (l: number) => Array.from(scores[l], (_, k) => ({ l, k }));
  if (scope === 'global') {
    const total = scores.reduce((sum, s) => sum + s.length, 0);
    removeLowest(
      scores.flatMap((_, l) => all(l)),
      pruneCount(fraction, total),
    );
  } else {
    scores.forEach((s, l) => {
      removeLowest(all(l), pruneCount(fraction, s.length));
    });
  }
  return keep;
}

/**
 * The weight keep-masks of the original shapes that a neuron selection amounts to: the rows of
 * W_l and the columns of W_{l+1} of every removed neuron are 0. `applyPruning(mlp, masks, delta)`
 * then gives the zeroed-neuron, bias-folded network that `removeNeurons` builds physically smaller.
 */
export function neuronKeepMasks(mlp: Mlp, keepNeurons: readonly Uint8Array[]): KeepMask[] {
  return mlp.layers.map((layer, l) => {
    const { rows, cols } = layer.weight;
    const mask = new Uint8Array(rows * cols);
    const rowKept = keepNeurons[l]; // undefined for the output layer
    const colKept = l > 0 ? keepNeurons[l - 1] : undefined; // undefined for the input layer
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) mask[i * cols + j] = (rowKept?.[i] ?? 1) & (colKept?.[j] ?? 1);
    }
    return mask;
  });
}

/**
 * The physically smaller network: rows of W_l and b_l and columns of W_{l+1} of every removed
 * neuron are dropped, and (when `deltaBias` is given) b_{l+1}[i] += Σ_{k removed} delta_{l+1}[i,k],
 * summed in float64 and rounded once, like `applyPruning`.
 */
export function removeNeurons(
  mlp: Mlp,
  keepNeurons: readonly Uint8Array[],
  deltaBias?: readonly Float64Array[],
): Mlp {
  const kept = (mask: Uint8Array | undefined, size: number) =>
    Array.from({ length: size }, (_, k) => k).filter((k) => mask === undefined || mask[k] === 1);
  return {
    layers: mlp.layers.map((layer, l) => {
      const { rows, cols, data } = layer.weight;
      const keptRows = kept(keepNeurons[l], rows);
      const keptCols = kept(l > 0 ? keepNeurons[l - 1] : undefined, cols);
      const weight = new Float32Array(keptRows.length * keptCols.length);
      const bias = new Float32Array(keptRows.length);
      keptRows.forEach((i, r) => {
        keptCols.forEach((j, c) => {
          weight[r * keptCols.length + c] = data[i * cols + j];
        });
        let fold = 0;
        const delta = deltaBias?.[l];
        if (delta && l > 0)
          for (let j = 0; j < cols; j++) if (keepNeurons[l - 1][j] === 0) fold += delta[i * cols + j];
        bias[r] = layer.bias[i] + fold;
      });
      return {
        weight: { rows: keptRows.length, cols: keptCols.length, data: weight },
        bias,
        activation: layer.activation,
      };
    }),
  };
}
