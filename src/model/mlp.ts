import { EcpruneError } from '../errors.js';
import type { Activation } from './activations.js';
import type { Matrix } from './matrix.js';

/**
 * One fully-connected layer: z = W a + b, output act(z).
 * `weight` is n_out x n_in (PyTorch's Linear.weight layout), `bias` has n_out entries.
 */
export interface Layer {
  readonly weight: Matrix;
  readonly bias: Float32Array;
  readonly activation: Activation;
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
export function layerSizes(mlp: Mlp): number[] {
  return [inputSize(mlp), ...mlp.layers.map((layer) => layer.weight.rows)];
}

export function weightCount(mlp: Mlp): number {
  return mlp.layers.reduce((sum, layer) => sum + layer.weight.data.length, 0);
}

export function nonzeroWeightCount(mlp: Mlp): number {
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
    for (const [name, values] of [
      ['weight', data],
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
  });
  return mlp;
}
