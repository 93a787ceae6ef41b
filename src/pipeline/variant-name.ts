import type { Dataset } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import { isMethodName, METHOD_NAMES, METHODS, type MethodName } from '../score/methods.js';
import { VERSION } from '../version.js';
import type { PruneResult, RecipeOptions } from './prune.js';

/** A method name with no modifiers: the criteria of `METHODS` and the three references. */
export type BaseMethod = MethodName | 'obs' | 'nonlinear' | 'dense-small';

/**
 * Every method, the one list: `prune --method` and `sweep --methods` accept each name (and, but
 * for dense-small, each with modifiers), `--help` lists them from here, and the README's table of
 * methods is checked against it (test/cli/method-list.test.ts).
 */
export const METHOD_LIST: readonly { readonly name: BaseMethod; readonly summary: string }[] = [
  ...METHOD_NAMES.map((name) => ({ name, summary: METHODS[name].summary })),
  {
    name: 'obs',
    summary: 'layer-wise optimal brain surgeon reconstruction; changes the surviving weights (chains only)',
  },
  {
    name: 'nonlinear',
    summary:
      'the exact non-linear criterion and bias compensation; re-runs the network per weight (small chains only)',
  },
  {
    name: 'dense-small',
    summary:
      'not a pruning of the given model: a dense network with as many weights, trained from scratch (sweep only)',
  },
];

/** The modifiers a method name takes after `+`, as written (`<m>`: a number); one per rule of MODIFIERS. */
export const MODIFIER_NAMES = [
  'loss',
  'probes<m>',
  'sequential',
  'steps<k>',
  'refit<n>',
  '<n>:<m>',
  'neuron',
  'alpha',
  'alpha<x>',
  'magbudget',
];

/** Whether a method list asks for the nonlinear method, alone or with modifiers. */
export function usesNonlinear(methods: readonly string[]): boolean {
  return methods.some((method) => method.split('+')[0] === 'nonlinear');
}

/** The methods that prune the given model (all but dense-small), as `--help` lists them. */
export function pruneMethodsText(): string {
  return `${METHOD_LIST.filter((m) => m.name !== 'dense-small')
    .map((m) => m.name)
    .join(
      ', ',
    )}, each with modifiers +${MODIFIER_NAMES.join(', +')} (e.g. ec+sequential+refit5); dense-small is a sweep reference, not a pruning of the given model`;
}

/**
 * Short names for a method with its beyond-the-paper variants, used by `sweep --methods`, tables
 * and model metadata: a base method (`ec`, ..., or `obs`) followed by `+`-separated modifiers:
 * `loss`, `probes<m>`, `sequential`, `steps<k>`, `refit<n>`, `<n>:<m>`, `neuron`, `alpha` (bias shifts
 * scaled per layer, calibrated), `alpha<x>` (scaled by x), `magbudget` (magnitude's layer budgets).
 * Example: `ec+sequential+steps3+refit5`, `ec+alpha+magbudget`.
 */
export type VariantOptions = RecipeOptions;

export function formatVariant(options: VariantOptions): string {
  const parts: string[] = [options.obs ? 'obs' : options.nonlinear ? 'nonlinear' : (options.method ?? 'ec')];
  if (options.sensitivity === 'loss') parts.push('loss');
  if (options.probes) parts.push(`probes${options.probes}`);
  if (options.sequential) parts.push('sequential');
  if ((options.steps ?? 1) > 1) parts.push(`steps${options.steps}`);
  if (options.refitBiases) parts.push(`refit${options.refitBiases}`);
  if (options.pattern) parts.push(`${options.pattern.n}:${options.pattern.m}`);
  if (options.structure === 'neuron') parts.push('neuron');
  if (options.shiftScale === 'calibrated') parts.push('alpha');
  else if (options.shiftScale !== undefined && options.shiftScale !== 1)
    parts.push(`alpha${options.shiftScale}`);
  if (options.budgets === 'magnitude') parts.push('magbudget');
  return parts.join('+');
}

export const MODIFIERS: [RegExp, (match: RegExpExecArray) => Partial<VariantOptions>][] = [
  [/^loss$/, () => ({ sensitivity: 'loss' })],
  [/^probes(\d+)$/, (m) => ({ probes: Number(m[1]) })],
  [/^sequential$/, () => ({ sequential: true })],
  [/^steps(\d+)$/, (m) => ({ steps: Number(m[1]) })],
  [/^refit(\d+)$/, (m) => ({ refitBiases: Number(m[1]) })],
  [/^(\d+):(\d+)$/, (m) => ({ pattern: { n: Number(m[1]), m: Number(m[2]) } })],
  [/^neuron$/, () => ({ structure: 'neuron' })],
  [/^alpha$/, () => ({ shiftScale: 'calibrated' })],
  [/^alpha(\d*\.?\d+)$/, (m) => ({ shiftScale: Number(m[1]) })],
  [/^magbudget$/, () => ({ budgets: 'magnitude' })],
];

/** The options a variant name stands for; a usage error naming the bad part otherwise. */
export function parseVariant(name: string): VariantOptions {
  const [base, ...modifiers] = name.split('+');
  if (base === 'dense-small') {
    throw new EcpruneError(
      'usage',
      "'dense-small' is not a pruning of the given model: it trains a new dense network with as many weights from scratch (compare it in sweep --methods dense-small, or train one with train --layers)",
    );
  }
  if (base !== 'obs' && base !== 'nonlinear' && !isMethodName(base)) {
    throw new EcpruneError(
      'usage',
      `unknown method '${base}' in '${name}' (choose from ${METHOD_LIST.map((m) => m.name).join(', ')})`,
    );
  }
  // OBS chooses its weights by its own saliency, nonlinear by its own criterion: `method` is unused
  const options: VariantOptions = {
    method: base === 'obs' ? 'magnitude' : base === 'nonlinear' ? 'ec' : base,
    obs: base === 'obs',
    nonlinear: base === 'nonlinear',
  };
  for (const modifier of modifiers) {
    const rule = MODIFIERS.find(([pattern]) => pattern.test(modifier));
    if (!rule) {
      throw new EcpruneError(
        'usage',
        `unknown variant '${modifier}' in '${name}' (use ${MODIFIER_NAMES.join(', ')})`,
      );
    }
    Object.assign(options, rule[1](rule[0].exec(modifier)!));
  }
  return options;
}

/**
 * The metadata ecprune stores in a pruned model (ONNX metadata_props, safetensors and TF.js
 * metadata, a record in a .pt), as the CLI writes it: pass it to saveModel's `metadata`.
 * `method` defaults to the name of the recipe that ran (e.g. `ec+loss+steps5+alpha`, `ec+refit5`).
 */
export function pruneMetadata(
  result: PruneResult,
  calibration: Pick<Dataset, 'name'>,
  method: string = formatVariant(result.recipe),
): Record<string, string> {
  return {
    ecprune_version: VERSION,
    ecprune_method: method,
    ecprune_sparsity: String(result.sparsity),
    ecprune_scope: result.scope,
    ecprune_calibration_samples: String(result.statistics.samples),
    ecprune_calibration: calibration.name,
  };
}
