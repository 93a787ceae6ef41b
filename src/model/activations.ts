/**
 * Activation functions, each with its derivative right beside it (micrograd style): the backward
 * pass reads `derivative(z)` from the same table entry that defined `apply(z)`.
 * Derivatives are taken with respect to the pre-activation z. Conventions: relu'(0) = 0,
 * leaky_relu'(0) = alpha, elu'(0) = 1 (the left limit would be alpha; PyTorch uses the right one).
 */
import { erf, sigmoid, softplus } from './special-functions.js';

export type Activation =
  | { readonly kind: 'identity' }
  | { readonly kind: 'relu' }
  | { readonly kind: 'leaky_relu'; readonly alpha: number }
  | { readonly kind: 'tanh' }
  | { readonly kind: 'sigmoid' }
  | { readonly kind: 'gelu' }
  | { readonly kind: 'softplus' }
  | { readonly kind: 'elu'; readonly alpha: number };

export type ActivationKind = Activation['kind'];

export const ACTIVATION_KINDS: readonly ActivationKind[] = [
  'identity',
  'relu',
  'leaky_relu',
  'tanh',
  'sigmoid',
  'gelu',
  'softplus',
  'elu',
];

interface ActivationRule {
  apply(z: number, alpha: number): number;
  derivative(z: number, alpha: number): number;
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

const RULES: Record<ActivationKind, ActivationRule> = {
  identity: { apply: (z) => z, derivative: () => 1 },
  relu: { apply: (z) => Math.max(z, 0), derivative: (z) => (z > 0 ? 1 : 0) },
  leaky_relu: { apply: (z, a) => (z > 0 ? z : a * z), derivative: (z, a) => (z > 0 ? 1 : a) },
  tanh: {
    apply: (z) => Math.tanh(z),
    derivative: (z) => {
      const t = Math.tanh(z);
      return 1 - t * t;
    },
  },
  sigmoid: {
    apply: sigmoid,
    derivative: (z) => {
      const s = sigmoid(z);
      return s * (1 - s);
    },
  },
  gelu: {
    apply: (z) => 0.5 * z * (1 + erf(z * SQRT1_2)),
    derivative: (z) => 0.5 * (1 + erf(z * SQRT1_2)) + z * INV_SQRT_2PI * Math.exp(-0.5 * z * z),
  },
  softplus: { apply: softplus, derivative: sigmoid },
  elu: {
    apply: (z, a) => (z > 0 ? z : a * Math.expm1(z)),
    derivative: (z, a) => (z >= 0 ? 1 : a * Math.exp(z)),
  },
};

function alphaOf(act: Activation): number {
  return act.kind === 'leaky_relu' || act.kind === 'elu' ? act.alpha : 0;
}

/** Writes act(z) into `out` (may alias `z`). */
export function applyActivation(act: Activation, z: Float32Array, out: Float32Array = z): Float32Array {
  if (act.kind === 'identity') {
    if (out !== z) out.set(z);
    return out;
  }
  const { apply } = RULES[act.kind];
  const alpha = alphaOf(act);
  for (let i = 0; i < z.length; i++) out[i] = apply(z[i], alpha);
  return out;
}

/** Writes act'(z) into `out` (may alias `z`). */
export function activationDerivative(act: Activation, z: Float32Array, out: Float32Array = z): Float32Array {
  const { derivative } = RULES[act.kind];
  const alpha = alphaOf(act);
  for (let i = 0; i < z.length; i++) out[i] = derivative(z[i], alpha);
  return out;
}

/** Scalar forms, for the few places that work one value at a time (the exact 1-D searches). */
export function activate(act: Activation, z: number): number {
  return RULES[act.kind].apply(z, alphaOf(act));
}

const DEFAULT_ALPHA: Partial<Record<ActivationKind, number>> = { leaky_relu: 0.01, elu: 1 };

/** Parses `relu`, `leaky_relu`, `leaky_relu:0.2`, `elu:1.0`; undefined for an unknown name. */
export function parseActivation(text: string): Activation | undefined {
  const [name, alphaText] = text.trim().toLowerCase().split(':');
  const kind = (name === 'linear' || name === 'none' ? 'identity' : name) as ActivationKind;
  if (!ACTIVATION_KINDS.includes(kind)) return undefined;
  if (kind === 'leaky_relu' || kind === 'elu') {
    const alpha = alphaText === undefined ? DEFAULT_ALPHA[kind]! : Number(alphaText);
    return Number.isFinite(alpha) ? { kind, alpha } : undefined;
  }
  return alphaText === undefined ? ({ kind } as Activation) : undefined;
}

export function formatActivation(act: Activation): string {
  return act.kind === 'leaky_relu' || act.kind === 'elu' ? `${act.kind}:${act.alpha}` : act.kind;
}
