/**
 * Per-layer control, as Torch-Pruning's `ignored_layers` and `pruning_ratio_dict`: layers named
 * as the file names them (`inspect` lists them) or by their index, kept dense or pruned to a
 * sparsity of their own; and the check that a layer was not pruned to (almost) nothing.
 */
import { EcpruneError, option } from '../errors.js';
import type { KeepMask, LayerTargets } from './select.js';
import { checkSparsity } from './select.js';

/** A layer as the file names it (`blocks.0.fc1`), or its index in the model's layer order. */
export type LayerRef = string | number;

export interface LayerControl {
  /** layers left dense */
  readonly exclude?: readonly LayerRef[];
  /** layers pruned to a sparsity of their own, by name (or index written as text) */
  readonly layerSparsity?: Readonly<Record<string, number>>;
}

/**
 * The index of a layer: a name from the file first, then a whole number as an index (a file whose
 * layers are named `0`, `3`, `5` is read by those names). Unknown: one line listing the names.
 */
export function resolveLayer(names: readonly string[], ref: LayerRef): number {
  const byName = names.indexOf(String(ref));
  if (byName >= 0) return byName;
  const index = Number(ref);
  if (String(ref).trim() !== '' && Number.isInteger(index) && index >= 0 && index < names.length)
    return index;
  throw new EcpruneError(
    'usage',
    `no layer '${ref}' in the model (its layers: ${names.map((name, l) => `${l} ${name}`).join(', ')})`,
  );
}

/** Each layer's own sparsity (excluded: 0), or undefined when no layer has one. */
export function layerTargets(names: readonly string[], control: LayerControl): LayerTargets | undefined {
  const targets: (number | undefined)[] = names.map(() => undefined);
  const set = (ref: LayerRef, sparsity: number) => {
    const l = resolveLayer(names, ref);
    if (targets[l] !== undefined) {
      throw new EcpruneError(
        'usage',
        `layer ${l} '${names[l]}' is named twice in ${option('exclude')} and ${option('layerSparsity')}`,
      );
    }
    targets[l] = checkSparsity(sparsity);
  };
  for (const ref of control.exclude ?? []) set(ref, 0);
  for (const [ref, sparsity] of Object.entries(control.layerSparsity ?? {})) set(ref, sparsity);
  return targets.some((target) => target !== undefined) ? targets : undefined;
}

/**
 * Below this many kept weights per output neuron on average a layer is reported as thin (a layer
 * with fewer than 4 x this many inputs: below a quarter of its inputs). Measured on a 784-256-128-10
 * ReLU MNIST net pruned with `--scope layer --sparsity 0.9`: its 128 -> 10 output layer keeps 12.8
 * weights per class and the test accuracy is 18.00 %; kept dense (`--exclude`), 61.85 %; at
 * sparsity 0.5 (64 per class), 54.45 % (README).
 */
export const MIN_KEPT_PER_NEURON = 16;

/** The mean kept weights per output neuron below which a layer with `inputs` inputs is thin. */
export function thinThreshold(inputs: number): number {
  return Math.min(MIN_KEPT_PER_NEURON, inputs / 4);
}

export interface ThinLayer {
  readonly layer: number;
  readonly name: string;
  readonly kept: number;
  readonly neurons: number;
  /** the mean kept weights per output neuron it is below (`thinThreshold`) */
  readonly threshold: number;
  /** output neurons left with no weight at all (their output is their bias) */
  readonly empty: number;
}

/** The layers that keep fewer than `thinThreshold` weights per output neuron on average. */
export function thinLayers(
  layers: readonly {
    readonly name: string;
    readonly weight: { readonly rows: number; readonly cols: number };
  }[],
  keepMasks: readonly KeepMask[],
): ThinLayer[] {
  return layers.flatMap((layer, l) => {
    const { rows, cols } = layer.weight;
    let kept = 0;
    let empty = 0;
    for (let i = 0; i < rows; i++) {
      let row = 0;
      for (let j = 0; j < cols; j++) row += keepMasks[l][i * cols + j];
      kept += row;
      if (row === 0) empty++;
    }
    const threshold = thinThreshold(cols);
    return kept < threshold * rows
      ? [{ layer: l, name: layer.name, kept, neurons: rows, threshold, empty }]
      : [];
  });
}

/** One line per thin layer, for a warning. */
export function describeThinLayer(thin: ThinLayer): string {
  return (
    `layer ${thin.layer} '${thin.name}' keeps ${thin.kept.toLocaleString('en')} weights for ${thin.neurons.toLocaleString('en')} output neurons ` +
    `(${(thin.kept / thin.neurons).toFixed(1)} per neuron, fewer than ${thin.threshold}; ${thin.empty} with none): ` +
    `keep it denser with ${option('layerSparsity')} or ${option('exclude')}`
  );
}
