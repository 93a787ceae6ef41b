import { EcpruneError } from '../errors.js';
import { isMethodName, METHOD_NAMES, type MethodName } from '../score/methods.js';
import type { RecipeOptions } from './prune.js';

/**
 * Short names for a method with its beyond-the-paper variants, used by `sweep --methods`, tables
 * and model metadata: a base method (`ec`, ..., or `obs`) followed by `+`-separated modifiers:
 * `loss`, `probes<m>`, `sequential`, `steps<k>`, `refit<n>`, `<n>:<m>`, `neuron`, `alpha` (bias shifts
 * scaled per layer, calibrated), `alpha<x>` (scaled by x), `magbudget` (magnitude's layer budgets).
 * Example: `ec+sequential+steps3+refit5`, `ec+alpha+magbudget`.
 */
export type VariantOptions = RecipeOptions;

export function formatVariant(options: VariantOptions): string {
  const parts: string[] = [options.obs ? 'obs' : (options.method ?? 'ec')];
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

const MODIFIERS: [RegExp, (match: RegExpExecArray) => Partial<VariantOptions>][] = [
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
  if (base !== 'obs' && !isMethodName(base)) {
    throw new EcpruneError(
      'usage',
      `unknown method '${base}' in '${name}' (choose from ${[...METHOD_NAMES, 'obs'].join(', ')})`,
    );
  }
  const options: VariantOptions = {
    method: base === 'obs' ? 'magnitude' : (base as MethodName),
    obs: base === 'obs',
  };
  for (const modifier of modifiers) {
    const rule = MODIFIERS.find(([pattern]) => pattern.test(modifier));
    if (!rule) {
      throw new EcpruneError(
        'usage',
        `unknown variant '${modifier}' in '${name}' (use loss, probes<m>, sequential, steps<k>, refit<n>, <n>:<m>, neuron, alpha, alpha<x>, magbudget)`,
      );
    }
    Object.assign(options, rule[1](rule[0].exec(modifier)!));
  }
  return options;
}
