/**
 * The runtime's own activation table. It duplicates src/model/activations.ts on purpose: the
 * runtime is published alone (`ecprune/runtime`) and may import nothing outside src/runtime.
 * The type is structurally the same as the library's `Activation`, so values pass between them.
 */
export type SparseActivation =
  | { readonly kind: 'identity' }
  | { readonly kind: 'relu' }
  | { readonly kind: 'leaky_relu'; readonly alpha: number }
  | { readonly kind: 'tanh' }
  | { readonly kind: 'sigmoid' }
  | { readonly kind: 'gelu' }
  | { readonly kind: 'softplus' }
  | { readonly kind: 'elu'; readonly alpha: number };

/** Position = the activation code stored in the file (docs/FORMAT-ECSR.md). */
export const ACTIVATION_CODES = [
  'identity',
  'relu',
  'leaky_relu',
  'tanh',
  'sigmoid',
  'gelu',
  'softplus',
  'elu',
] as const satisfies readonly SparseActivation['kind'][];

export function hasAlpha(kind: SparseActivation['kind']): kind is 'leaky_relu' | 'elu' {
  return kind === 'leaky_relu' || kind === 'elu';
}

/**
 * erfc(x) with relative error below 1.2e-7 everywhere (Numerical Recipes' Chebyshev fit `erfcc`).
 * Relative accuracy in erfc, not absolute in erf, keeps gelu(z) = z/2 · erfc(−z/√2) accurate for
 * very negative z, where the result is tiny.
 */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/**
 * act(y[i]) in place for i < n. One loop per kind (the switch is outside the loop) so each loop
 * stays monomorphic and small.
 */
export function activateInPlace(act: SparseActivation, y: Float32Array, n: number): void {
  switch (act.kind) {
    case 'identity':
      return;
    case 'relu':
      // `!(v > 0)` also maps NaN to 0, like max(z, 0) in the dense code's `z > 0 ? z : 0`.
      for (let i = 0; i < n; i++) if (!(y[i] > 0)) y[i] = 0;
      return;
    case 'leaky_relu': {
      const a = act.alpha;
      for (let i = 0; i < n; i++) if (!(y[i] > 0)) y[i] *= a;
      return;
    }
    case 'tanh':
      for (let i = 0; i < n; i++) y[i] = Math.tanh(y[i]);
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) {
        const z = y[i];
        // the two forms avoid exp overflow on either side
        y[i] = z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
      }
      return;
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const z = y[i];
        y[i] = 0.5 * z * erfc(-z * Math.SQRT1_2);
      }
      return;
    case 'softplus':
      for (let i = 0; i < n; i++) {
        const z = y[i];
        y[i] = z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
      }
      return;
    case 'elu': {
      const a = act.alpha;
      for (let i = 0; i < n; i++) {
        const z = y[i];
        if (!(z > 0)) y[i] = a * Math.expm1(z);
      }
      return;
    }
  }
}
