/**
 * Elementwise ops of one tensor: each with its derivative right beside it (the backward pass reads
 * `derivative` from the same entry that defined `apply`). Derivatives are taken at the input x,
 * with the output y at hand. Conventions at kinks follow PyTorch's autograd: relu'(0) = 0,
 * leaky_relu'(0) = alpha, elu'(0) = 1, clip/hardtanh' = 1 strictly inside the range only.
 */

import { erf, sigmoid, softplus } from '../../model/special-functions.js';
import { type Attribute, floatAttr, intAttr, type OnnxNodes, stringAttr } from '../emit/onnx-nodes.js';
import { type Tensor, zerosLike } from '../tensor.js';
import { type EmitContext, numberAttr, type Op, type OpContext, type VjpArgs } from './op.js';

export interface ScalarRule {
  apply(x: number): number;
  derivative(x: number, y: number): number;
}

// the tanh GELU is 0.5 x (1 + tanh(SQRT_2_OVER_PI (x + GELU_CUBIC x³)))
export const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
export const GELU_CUBIC = 0.044715;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
/** SELU's constants as ONNX and PyTorch define them */
export const SELU_ALPHA = 1.6732632423543772;
export const SELU_GAMMA = 1.0507009873554805;

/** HardSigmoid(x) = clip(alpha x + beta, 0, 1): its attributes, with ONNX's defaults. */
export function hardSigmoidParameters(ctx: Pick<OpContext, 'attrs'>): { alpha: number; beta: number } {
  return { alpha: numberAttr(ctx, 'alpha', 0.2), beta: numberAttr(ctx, 'beta', 0.5) };
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
    const { alpha: a, beta: b } = hardSigmoidParameters(ctx);
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
          apply: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x))),
          derivative: (x) => {
            const t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * x * x);
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

/**
 * The derivative of each unary op as ONNX nodes, given x and y broadcast against the cotangents
 * (the same conventions as UNARY_RULES); Identity and Neg need none (their VJP is g and −g).
 */
type EmittedDerivative = (nodes: OnnxNodes, x: string, y: string, ctx: Pick<EmitContext, 'attrs'>) => string;

const greater = (nodes: OnnxNodes, x: string, value: number) =>
  nodes.node('Greater', [x, nodes.scalar(value)]);
const less = (nodes: OnnxNodes, x: string, value: number) => nodes.node('Less', [x, nodes.scalar(value)]);
export const asFloat = (nodes: OnnxNodes, condition: string) =>
  nodes.node('Cast', [condition], [intAttr('to', 1)]);
const where = (nodes: OnnxNodes, condition: string, a: string, b: string) =>
  nodes.node('Where', [condition, a, b]);
const mul = (nodes: OnnxNodes, a: string, b: string) => nodes.node('Mul', [a, b]);
const add = (nodes: OnnxNodes, a: string, b: string) => nodes.node('Add', [a, b]);
/** 1 − t² */
const oneMinusSquare = (nodes: OnnxNodes, t: string) =>
  nodes.node('Sub', [nodes.scalar(1), mul(nodes, t, t)]);

export const UNARY_DERIVATIVES: Record<string, EmittedDerivative> = {
  Relu: (n, x) => asFloat(n, greater(n, x, 0)),
  LeakyRelu: (n, x, _y, ctx) =>
    where(n, greater(n, x, 0), n.scalar(1), n.scalar(numberAttr(ctx, 'alpha', 0.01))),
  ThresholdedRelu: (n, x, _y, ctx) => asFloat(n, greater(n, x, numberAttr(ctx, 'alpha', 1))),
  // a e^x = y + a below 0
  Elu: (n, x, y, ctx) =>
    where(n, less(n, x, 0), add(n, y, n.scalar(numberAttr(ctx, 'alpha', 1))), n.scalar(1)),
  Selu: (n, x, y, ctx) => {
    const g = numberAttr(ctx, 'gamma', SELU_GAMMA);
    const ga = g * numberAttr(ctx, 'alpha', SELU_ALPHA);
    return where(n, greater(n, x, 0), n.scalar(g), add(n, y, n.scalar(ga)));
  },
  Celu: (n, x, _y, ctx) =>
    where(
      n,
      greater(n, x, 0),
      n.scalar(1),
      n.node('Exp', [mul(n, x, n.scalar(1 / numberAttr(ctx, 'alpha', 1)))]),
    ),
  Tanh: (n, _x, y) => oneMinusSquare(n, y),
  Sigmoid: (n, _x, y) => mul(n, y, n.node('Sub', [n.scalar(1), y])),
  HardSigmoid: (n, x, _y, ctx) => {
    const { alpha: a, beta: b } = hardSigmoidParameters(ctx);
    const v = add(n, mul(n, x, n.scalar(a)), n.scalar(b));
    const inside = n.node('And', [greater(n, v, 0), less(n, v, 1)]);
    return where(n, inside, n.scalar(a), n.scalar(0));
  },
  HardSwish: (n, x) =>
    where(
      n,
      less(n, x, -3),
      n.scalar(0),
      where(n, greater(n, x, 3), n.scalar(1), add(n, mul(n, x, n.scalar(1 / 3)), n.scalar(0.5))),
    ),
  Softplus: (n, x) => n.node('Sigmoid', [x]),
  Softsign: (n, x) => {
    const t = add(n, n.node('Abs', [x]), n.scalar(1));
    return n.node('Reciprocal', [mul(n, t, t)]);
  },
  Gelu: (n, x, _y, ctx) => {
    if (ctx.attrs.approximate === 'tanh') {
      const inner = mul(
        n,
        add(n, x, mul(n, n.scalar(GELU_CUBIC), mul(n, x, mul(n, x, x)))),
        n.scalar(SQRT_2_OVER_PI),
      );
      const t = n.node('Tanh', [inner]);
      const slope = mul(
        n,
        n.scalar(SQRT_2_OVER_PI),
        add(n, n.scalar(1), mul(n, n.scalar(3 * GELU_CUBIC), mul(n, x, x))),
      );
      const half = mul(n, n.scalar(0.5), add(n, n.scalar(1), t));
      return add(n, half, mul(n, mul(n, n.scalar(0.5), x), mul(n, oneMinusSquare(n, t), slope)));
    }
    // Φ(x) + x φ(x)
    const cdf = mul(
      n,
      add(n, n.node('Erf', [mul(n, x, n.scalar(Math.SQRT1_2))]), n.scalar(1)),
      n.scalar(0.5),
    );
    const density = mul(n, n.node('Exp', [mul(n, mul(n, x, x), n.scalar(-0.5))]), n.scalar(INV_SQRT_2PI));
    return add(n, cdf, mul(n, x, density));
  },
  Mish: (n, x) => {
    const t = n.node('Tanh', [n.node('Softplus', [x])]);
    return add(n, t, mul(n, x, mul(n, oneMinusSquare(n, t), n.node('Sigmoid', [x]))));
  },
  Erf: (n, x) => mul(n, n.scalar(TWO_OVER_SQRT_PI), n.node('Exp', [n.node('Neg', [mul(n, x, x)])])),
  Exp: (_n, _x, y) => y,
  Log: (n, x) => n.node('Reciprocal', [x]),
  Sqrt: (n, _x, y) => n.node('Div', [n.scalar(0.5), y]),
  Abs: (n, x) => n.node('Sign', [x]),
  Reciprocal: (n, _x, y) => n.node('Neg', [mul(n, y, y)]),
};

/** The attributes the unary ops take, as ONNX writes them (absent ones keep ONNX's defaults). */
function unaryAttributes(ctx: Pick<EmitContext, 'attrs'>): Attribute[] {
  const attributes: Attribute[] = [];
  for (const name of ['alpha', 'beta', 'gamma']) {
    const value = ctx.attrs[name];
    if (typeof value === 'number') attributes.push(floatAttr(name, value));
  }
  if (typeof ctx.attrs.approximate === 'string')
    attributes.push(stringAttr('approximate', ctx.attrs.approximate));
  return attributes;
}

function emitUnary(name: string): Op['emit'] {
  if (name === 'Identity') return { forward: (ctx) => [ctx.input(0)], vjp: ([g]) => [g] };
  const forward = (ctx: EmitContext) => [ctx.nodes.node(name, [ctx.input(0)], unaryAttributes(ctx))];
  if (name === 'Neg') return { forward, vjp: ([g], ctx) => [g && ctx.nodes.node('Neg', [g])] };
  const factor = (ctx: EmitContext) =>
    UNARY_DERIVATIVES[name](ctx.nodes, ctx.beside(0), ctx.besideOutput(0), ctx);
  return {
    forward,
    vjp: ([g], ctx) => [g && ctx.nodes.node('Mul', [g, factor(ctx)])],
    factor,
    maskFactor: name === 'Relu' || name === 'ThresholdedRelu',
  };
}

function unaryOp(name: string, rule: (ctx: Pick<OpContext, 'attrs'>) => ScalarRule): Op {
  return {
    forward: ([x], ctx) => [mapTensor(x!, rule(ctx).apply)],
    vjp: ({ inputs: [x], outputs: [y], gradOutputs: [g], repeat }: VjpArgs, ctx) => [
      g && scaleCotangent(g, x!, y, repeat, rule(ctx).derivative),
    ],
    emit: emitUnary(name),
  };
}

export const UNARY_OPS: Record<string, Op> = Object.fromEntries(
  Object.entries(UNARY_RULES).map(([name, rule]) => [name, unaryOp(name, rule)]),
);
