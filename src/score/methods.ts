import { EcpruneError } from '../errors.js';
import type { Criterion } from './criterion.js';
import { ecScore } from './ec.js';
import { gradmagScore } from './gradmag.js';
import { magnitudeScore } from './magnitude.js';
import { obdScore } from './obd.js';
import { randomScore } from './random.js';

/**
 * A pruning method = a criterion (which weights go) + whether removed weights are compensated by
 * the optimal shift of their neuron's bias. Table from METHOD.md: the ablations `ec-nocomp` and
 * `magnitude-comp` separate the ranking from the compensation.
 */
export interface MethodSpec {
  readonly criterion: Criterion;
  readonly compensate: boolean;
  /** the criterion or the compensation needs the sensitivity moments m0/m1/m2 */
  readonly needsSensitivity: boolean;
  /** the criterion needs dL/dW (and so labels) */
  readonly needsLossGradient: boolean;
  readonly summary: string;
}

export const METHODS = {
  ec: {
    criterion: ecScore,
    compensate: true,
    needsSensitivity: true,
    needsLossGradient: false,
    summary: 'output error left after the optimal bias compensation; compensated (the paper)',
  },
  'ec-nocomp': {
    criterion: ecScore,
    compensate: false,
    needsSensitivity: true,
    needsLossGradient: false,
    summary: 'EC ranking without compensation (ablation)',
  },
  obd: {
    criterion: obdScore,
    compensate: false,
    needsSensitivity: true,
    needsLossGradient: false,
    summary: 'w² Σ s a² / N: optimal brain damage with the Gauss-Newton curvature',
  },
  magnitude: {
    criterion: magnitudeScore,
    compensate: false,
    needsSensitivity: false,
    needsLossGradient: false,
    summary: '|w|',
  },
  'magnitude-comp': {
    criterion: magnitudeScore,
    compensate: true,
    needsSensitivity: true,
    needsLossGradient: false,
    summary: '|w| ranking with EC compensation (ablation)',
  },
  gradmag: {
    criterion: gradmagScore,
    compensate: false,
    needsSensitivity: false,
    needsLossGradient: true,
    summary: '|w dL/dw|: first-order Taylor on the training loss (needs labels)',
  },
  random: {
    criterion: randomScore,
    compensate: false,
    needsSensitivity: false,
    needsLossGradient: false,
    summary: 'uniform random scores (seeded)',
  },
} as const satisfies Record<string, MethodSpec>;

export type MethodName = keyof typeof METHODS;

export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(METHODS, name);
}

/** The method of a call (default `ec`); a usage error listing the methods otherwise. */
export function checkMethod(name: string | undefined): MethodName {
  const method = name ?? 'ec';
  if (!isMethodName(method)) {
    throw new EcpruneError('usage', `unknown method '${method}' (choose from ${METHOD_NAMES.join(', ')})`);
  }
  return method;
}
