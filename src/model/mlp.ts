import { EcpruneError } from '../errors.js';
import type { Activation } from './activations.js';
import type { FloatArray, Matrix } from './matrix.js';

/**
 * One fully-connected layer: z = W a + b, output act(z).
 * `weight` is n_out x n_in (PyTorch's Linear.weight layout), `bias` has n_out entries.
 */
export interface Layer {
  readonly weight: Matrix<FloatArray>;
  readonly bias: FloatArray;
  readonly activation: Activation;
}

/** What scores, selection and compensation need of any model (an MLP or a graph): its layers. */
export interface Layered {
  readonly layers: readonly { readonly weight: Matrix<FloatArray>; readonly bias: FloatArray }[];
}

/** A multilayer perceptron: layers applied in order; the last layer's activation is usually identity. */
export interface Mlp {
  readonly layers: readonly Layer[];
}

export function inputSize(mlp: Mlp): number {
  return mlp.layers[0].weight.cols;
}

export function outputSize(mlp: Mlp): number {
  return mlp.layers[mlp.layers.length - 1].weight.rows;
}

/** Layer widths [n_0, n_1, ..., n_L]. */
export function layerSizes(mlp: Layered): number[] {
  return [mlp.layers[0].weight.cols, ...mlp.layers.map((layer) => layer.weight.rows)];
}

export function weightCount(mlp: Layered): number {
  return mlp.layers.reduce((sum, layer) => sum + layer.weight.data.length, 0);
}

export function nonzeroWeightCount(mlp: Layered): number {
  let count = 0;
  for (const layer of mlp.layers) for (const w of layer.weight.data) if (w !== 0) count++;
  return count;
}

export function cloneMlp(mlp: Mlp): Mlp {
  return {
    layers: mlp.layers.map((layer) => ({
      weight: { rows: layer.weight.rows, cols: layer.weight.cols, data: layer.weight.data.slice() },
      bias: layer.bias.slice(),
      activation: layer.activation,
    })),
  };
}

/**
 * Checks that consecutive layers fit together and that every parameter is finite; `file` names the
 * source in the error. Called by every loader, so the numeric code can assume a valid network.
 */
export function validateMlp(mlp: Mlp, file?: string): Mlp {
  if (mlp.layers.length === 0) throw new EcpruneError('input', 'the model has no layers', file);
  mlp.layers.forEach((layer, l) => {
    const where = `layer ${l}`;
    const { rows, cols, data } = layer.weight;
    if (rows < 1 || cols < 1 || data.length !== rows * cols) {
      throw new EcpruneError('input', `weight has an invalid shape ${rows}x${cols}`, file, where);
    }
    if (layer.bias.length !== rows) {
      throw new EcpruneError(
        'input',
        `bias has ${layer.bias.length} entries, weight has ${rows} rows`,
        file,
        where,
      );
    }
    if (l > 0 && cols !== mlp.layers[l - 1].weight.rows) {
      throw new EcpruneError(
        'input',
        `weight takes ${cols} inputs but layer ${l - 1} has ${mlp.layers[l - 1].weight.rows} outputs`,
        file,
        where,
      );
    }
    checkFiniteLayer(layer, file, where);
    // a NaN or infinite slope makes every output NaN or ±Infinity: a useless model, not an error later
    const { activation } = layer;
    if ('alpha' in activation && !Number.isFinite(activation.alpha)) {
      throw new EcpruneError(
        'input',
        `activation ${activation.kind} has alpha ${activation.alpha}: it must be a finite number`,
        file,
        where,
      );
    }
  });
  return mlp;
}

/** Refuses NaN and ±Infinity in a layer's weight or bias, naming the first. */
export function checkFiniteLayer(
  layer: { readonly weight: { readonly data: ArrayLike<number> }; readonly bias: ArrayLike<number> },
  file?: string,
  where?: string,
): void {
  for (const [name, values] of [
    ['weight', layer.weight.data],
    ['bias', layer.bias],
  ] as const) {
    let bad = 0;
    let first = -1;
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) {
        bad++;
        if (first < 0) first = i;
      }
    }
    if (bad > 0) {
      throw new EcpruneError(
        'input',
        `${name} has ${bad} non-finite values (first at flat index ${first})`,
        file,
        where,
      );
    }
  }
}

/** What `estimatePruneMemory` counts besides the defaults. */
export interface PruneMemoryOptions {
  /** dL/dW is accumulated too (gradmag): one more float64 per weight */
  readonly lossGradient?: boolean;
}

/**
 * Bytes of typed arrays that scoring and pruning `mlp` hold at their peak, for a calibration batch
 * of `batchSize` samples and `outputs` cotangent rows per sample (the network's outputs, or the
 * number of probes). An estimate, meant to refuse hopeless runs before they start, not a bound:
 *
 * per weight (bytes; v = 4 for float32 layers, 8 for a float64 model's): the weights (v) and the
 *   pruned copy (v); the moments m1, m2 (8 + 8) and, for gradmag, dL/dW (8); the scores (8) and the
 *   bias shifts (8); global selection's concatenated scores and their sorted copy (8 + 8) and the
 *   masks (1 + 1); the output file's encoding (2 × v).
 * per batch (float32): the forward trace (input, activation and derivative of every layer,
 *   3 × B × Σ widths), the one-hot cotangents (B × K × K), the backward pass's cotangents and GEMM
 *   result at the widest layer (4 × B × K × max width: the GEMM backend may copy both), and the
 *   centred inputs of the moment GEMM (2 × B × max width) with its result (2 × n_out × n_in).
 */
export function estimatePruneMemory(
  mlp: Layered,
  batchSize: number,
  outputs: number,
  options: PruneMemoryOptions = {},
): number {
  const weights = weightCount(mlp);
  const widths = layerSizes(mlp);
  const sumWidths = widths.reduce((sum, n) => sum + n, 0);
  const maxWidth = Math.max(...widths);
  const largestLayer = Math.max(...mlp.layers.map((layer) => layer.weight.data.length));
  const biases = mlp.layers.reduce((sum, layer) => sum + layer.bias.length, 0);
  const v = mlp.layers.some((layer) => layer.weight.data instanceof Float64Array) ? 8 : 4;
  const perWeight = v + v + 16 + (options.lossGradient ? 8 : 0) + 8 + 8 + 16 + 2 + 2 * v;
  const parameters = perWeight * weights + 64 * biases;
  const batch =
    4 * batchSize * (3 * sumWidths + outputs * outputs + 4 * outputs * maxWidth + 2 * maxWidth) +
    4 * 2 * largestLayer;
  return parameters + batch;
}
