/**
 * The architecture string (`--arch`, and the `ecprune_arch` metadata of safetensors / `.npz` models):
 * what formats that store only weights cannot say themselves.
 *
 *   arch  := [sizes ':'] acts
 *   sizes := n0 ',' n1 (',' n)*       layer widths, input first: 784,300,100,10
 *   acts  := act ['/' act]            the hidden layers' activation [/ the last layer's; default identity]
 *          | act ',' act (',' act)*   one activation per layer
 *   act   := name [':' alpha]         relu, tanh, leaky_relu:0.1, elu:1, linear ...
 *
 * Examples: `784,300,100,10:relu`, `784,300,10:leaky_relu:0.1`, `tanh` (sizes from the weights),
 * `784,100,1:relu/sigmoid`, `6,8,8,3:relu,tanh,sigmoid` (per layer).
 */
import { EcpruneError, option } from '../errors.js';
import { type Activation, formatActivation, parseActivation } from '../model/activations.js';
import { layerSizes, type Mlp } from '../model/mlp.js';

export interface Arch {
  /** layer widths [n_0, ..., n_L]; undefined: taken from the weight shapes */
  readonly sizes?: readonly number[];
  /** activation of the hidden layers */
  readonly activation: Activation;
  /** activation of the last layer; identity when undefined */
  readonly lastActivation?: Activation;
  /** one activation per layer (overrides the two above) */
  readonly activations?: readonly Activation[];
}

const IDENTITY: Activation = { kind: 'identity' };
const SYNTAX =
  "expected e.g. '784,300,10:relu', 'leaky_relu:0.1', 'relu/sigmoid' or '6,8,8,3:relu,tanh,sigmoid'";

export function parseArch(text: string, file?: string): Arch {
  // from the command line a usage error; from a file's metadata a problem with that file
  const fail = (detail: string) =>
    new EcpruneError(file === undefined ? 'usage' : 'input', `architecture '${text}': ${detail}`, file);
  const match = /^\s*(?:(\d+(?:\s*,\s*\d+)+)\s*:)?(.+)$/.exec(text);
  if (!match) throw fail(SYNTAX);
  const sizes = match[1]?.split(',').map((n) => Number(n));
  if (sizes?.some((n) => !Number.isSafeInteger(n) || n < 1))
    throw fail('layer widths must be positive integers');
  const activation = (item: string) => {
    const act = parseActivation(item);
    if (act === undefined) throw fail(`unknown activation '${item.trim()}' (${SYNTAX})`);
    return act;
  };
  const [hidden, last, ...rest] = match[2].split('/');
  if (rest.length > 0) throw fail(SYNTAX);
  const activations = hidden.split(',').map(activation);
  if (activations.length === 1) {
    return {
      sizes,
      activation: activations[0],
      ...(last === undefined ? {} : { lastActivation: activation(last) }),
    };
  }
  if (last !== undefined) throw fail(`give one activation per layer or hidden/last, not both (${SYNTAX})`);
  if (sizes && activations.length !== sizes.length - 1) {
    throw fail(`${activations.length} activations for ${sizes.length - 1} layers`);
  }
  return { sizes, activation: activations[0], activations };
}

/** `arch`, or the usage error for a weight-only model that was given no architecture. */
export function requireArch(arch: Arch | undefined, file?: string): Arch {
  if (arch === undefined) {
    throw new EcpruneError(
      'usage',
      `holds weights only: give the activations with ${option('arch')} (e.g. relu, or '784,300,10:relu')`,
      file,
    );
  }
  return arch;
}

/** The activation of each of `layers` layers. */
export function archActivations(arch: Arch, layers: number, file?: string): Activation[] {
  if (arch.activations) {
    if (arch.activations.length !== layers) {
      throw new EcpruneError(
        'input',
        `the architecture names ${arch.activations.length} activations, the weights make ${layers} layers`,
        file,
      );
    }
    return [...arch.activations];
  }
  return Array.from({ length: layers }, (_, l) =>
    l < layers - 1 ? arch.activation : (arch.lastActivation ?? IDENTITY),
  );
}

/** Checks the widths an architecture states against the weights' (no-op when it states none). */
export function checkArchSizes(arch: Arch, sizes: readonly number[], file?: string): void {
  if (arch.sizes && arch.sizes.join(',') !== sizes.join(',')) {
    throw new EcpruneError(
      'input',
      `the architecture says layer widths ${arch.sizes.join(',')}, the weights have ${sizes.join(',')}`,
      file,
    );
  }
}

/** The architecture string of a network: `hidden[/last]` when the hidden layers share one activation, else one per layer. */
export function formatArch(mlp: Mlp): string {
  const acts = mlp.layers.map((layer) => formatActivation(layer.activation));
  const hidden = acts.slice(0, -1);
  const last = acts[acts.length - 1];
  const shared = hidden.every((a) => a === hidden[0]) ? (hidden[0] ?? 'identity') : undefined;
  const text = shared === undefined ? acts.join(',') : last === 'identity' ? shared : `${shared}/${last}`;
  return `${layerSizes(mlp).join(',')}:${text}`;
}
