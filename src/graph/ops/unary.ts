/**
 * Elementwise ops of one tensor: each with its derivative right beside it (the backward pass reads
 * `derivative` from the same entry that defined `apply`). Derivatives are taken at the input x,
 * with the output y at hand. Conventions at kinks follow PyTorch's autograd: relu'(0) = 0,
 * leaky_relu'(0) = alpha, elu'(0) = 1, clip/hardtanh' = 1 strictly inside the range only.
 */
import { type Tensor, zerosLike } from '../tensor.js';
import { numberAttr, type Op, type OpContext, type VjpArgs } from './op.js';

export interface ScalarRule {
  apply(x: number): number;
  derivative(x: number, y: number): number;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
/** SELU's constants as ONNX and PyTorch define them */
export const SELU_ALPHA = 1.6732632423543772;
export const SELU_GAMMA = 1.0507009873554805;

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** log(1 + e^x) without overflow for large x or loss of precision for very negative x. */
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/**
 * erf(x) to about 1e-15 relative: the Maclaurin series for small |x| and the continued fraction of
 * erfc (evaluated backwards) for large |x|. JavaScript has no Math.erf.
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const value = TWO_OVER_SQRT_PI * sum;
    return x < 0 ? -value : value;
  }
  if (ax > 6) return x < 0 ? -1 : 1;
  let fraction = ax;
  for (let k = 60; k >= 1; k--) fraction = ax + k / 2 / fraction;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / fraction;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

/** The scalar rule of each unary op, given its attributes (ONNX names and defaults). */
export const UNARY_RULES: Record<string, (ctx: Pick<OpContext, 'attrs'>) => ScalarRule> = {
  Identity: () => ({ apply: (x) => x, derivative: () => 1 }),
  Relu: () => ({ apply: (x) => Math.max(x, 0), derivative: (x) => (x > 0 ? 1 : 0) }),
  LeakyRelu: (ctx) => {
    const a = numberAttr(ctx as OpContext, 'alpha', 0.01);
    return { apply: (x) => (x > 0 ? x : a * x), derivative: (x) => (x > 0 ? 1 : a) };
  },
  ThresholdedRelu: (ctx) => {
    const a = numberAttr(ctx as OpContext, 'alpha', 1);
    return { apply: (x) => (x > a ? x : 0), derivative: (x) => (x > a ? 1 : 0) };
  },
  Elu: (ctx) => {
    const a = numberAttr(ctx as OpContext, 'alpha', 1);
    return {
      apply: (x) => (x > 0 ? x : a * Math.expm1(x)),
      derivative: (x) => (x >= 0 ? 1 : a * Math.exp(x)),
    };
  },
  Selu: (ctx) => {
    const a = numberAttr(ctx as OpContext, 'alpha', SELU_ALPHA);
    const g = numberAttr(ctx as OpContext, 'gamma', SELU_GAMMA);
    return {
      apply: (x) => g * (x > 0 ? x : a * Math.expm1(x)),
      derivative: (x) => g * (x > 0 ? 1 : a * Math.exp(x)),
    };
  },
  Celu: (ctx) => {
    const a = numberAttr(ctx as OpContext, 'alpha', 1);
    return {
      apply: (x) => (x > 0 ? x : a * Math.expm1(x / a)),
      derivative: (x) => (x > 0 ? 1 : Math.exp(x / a)),
    };
  },
  // from x rather than from the float32 output y: 1 - y² loses digits where y is rounded
  Tanh: () => ({
    apply: Math.tanh,
    derivative: (x) => {
      const t = Math.tanh(x);
      return 1 - t * t;
    },
  }),
  Sigmoid: () => ({
    apply: sigmoid,
    derivative: (x) => {
      const s = sigmoid(x);
      return s * (1 - s);
    },
  }),
  HardSigmoid: (ctx) => {
    const a = numberAttr(ctx as OpContext, 'alpha', 0.2);
    const b = numberAttr(ctx as OpContext, 'beta', 0.5);
    return {
      apply: (x) => Math.min(1, Math.max(0, a * x + b)),
      derivative: (x) => (a * x + b > 0 && a * x + b < 1 ? a : 0),
    };
  },
  HardSwish: () => ({
    apply: (x) => x * Math.min(1, Math.max(0, x / 6 + 0.5)),
    derivative: (x) => (x < -3 ? 0 : x > 3 ? 1 : x / 3 + 0.5),
  }),
  Softplus: () => ({ apply: softplus, derivative: sigmoid }),
  Softsign: () => ({
    apply: (x) => x / (1 + Math.abs(x)),
    derivative: (x) => 1 / ((1 + Math.abs(x)) * (1 + Math.abs(x))),
  }),
  Gelu: (ctx) =>
    ctx.attrs.approximate === 'tanh'
      ? {
          apply: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))),
          derivative: (x) => {
            const t = Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
          },
        }
      : {
          apply: (x) => 0.5 * x * (1 + erf(x * Math.SQRT1_2)),
          derivative: (x) => 0.5 * (1 + erf(x * Math.SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x),
        },
  Mish: () => ({
    apply: (x) => x * Math.tanh(softplus(x)),
    derivative: (x) => {
      const t = Math.tanh(softplus(x));
      return t + x * (1 - t * t) * sigmoid(x);
    },
  }),
  Erf: () => ({ apply: erf, derivative: (x) => TWO_OVER_SQRT_PI * Math.exp(-x * x) }),
  Exp: () => ({ apply: Math.exp, derivative: (_x, y) => y }),
  Log: () => ({ apply: Math.log, derivative: (x) => 1 / x }),
  Sqrt: () => ({ apply: Math.sqrt, derivative: (_x, y) => 0.5 / y }),
  Neg: () => ({ apply: (x) => -x, derivative: () => -1 }),
  Abs: () => ({ apply: Math.abs, derivative: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0) }),
  Reciprocal: () => ({ apply: (x) => 1 / x, derivative: (_x, y) => -y * y }),
};

/** Applies a scalar rule elementwise: the output has the input's shape and element type. */
export function mapTensor(x: Tensor, f: (v: number) => number): Tensor {
  const out = zerosLike(x.data, x.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(x.data[i]);
  return { shape: x.shape, data: out };
}

/**
 * g_in[r, i] = g[r, i] · d(x[s, i], y[s, i]) with s = ⌊r / R⌋: each sample's derivative applied to its
 * R cotangent rows.
 */
export function scaleCotangent(
  g: Tensor,
  x: Tensor,
  y: Tensor,
  repeat: number,
  derivative: (x: number, y: number) => number,
): Tensor {
  const n = g.data.length / g.shape[0];
  const out = zerosLike(g.data, g.data.length);
  const rows = g.shape[0];
  for (let r = 0; r < rows; r++) {
    const s = Math.floor(r / repeat) * n;
    const o = r * n;
    for (let i = 0; i < n; i++) out[o + i] = g.data[o + i] * derivative(x.data[s + i], y.data[s + i]);
  }
  return { shape: g.shape, data: out };
}

function unaryOp(rule: (ctx: Pick<OpContext, 'attrs'>) => ScalarRule): Op {
  return {
    forward: ([x], ctx) => [mapTensor(x!, rule(ctx).apply)],
    vjp: ({ inputs: [x], outputs: [y], gradOutputs: [g], repeat }: VjpArgs, ctx) => [
      g && scaleCotangent(g, x!, y, repeat, rule(ctx).derivative),
    ],
  };
}

export const UNARY_OPS: Record<string, Op> = Object.fromEntries(
  Object.entries(UNARY_RULES).map(([name, rule]) => [name, unaryOp(rule)]),
);
