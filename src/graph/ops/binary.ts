/**
 * Elementwise ops of two tensors with NumPy broadcasting: residual additions between data tensors,
 * and scalings, shifts and powers by constants. Each rule gives the value and both partial
 * derivatives; the VJP sums a cotangent over the positions an operand was broadcast to.
 */

import { intAttr, type OnnxNodes } from '../emit/onnx-nodes.js';
import { broadcastIndex, broadcastShape, type Tensor, zerosLike } from '../tensor.js';
import type { EmitContext, Op, OpContext, VjpArgs } from './op.js';
import { asFloat } from './unary.js';

interface BinaryRule {
  apply(a: number, b: number): number;
  /** ∂y/∂a and ∂y/∂b at (a, b) with y = apply(a, b) */
  da(a: number, b: number, y: number): number;
  db(a: number, b: number, y: number): number;
}

export const BINARY_RULES: Record<string, BinaryRule> = {
  Add: { apply: (a, b) => a + b, da: () => 1, db: () => 1 },
  Sub: { apply: (a, b) => a - b, da: () => 1, db: () => -1 },
  Mul: { apply: (a, b) => a * b, da: (_a, b) => b, db: (a) => a },
  Div: { apply: (a, b) => a / b, da: (_a, b) => 1 / b, db: (_a, b, y) => -y / b },
  Pow: {
    apply: (a, b) => a ** b,
    da: (a, b) => (b === 0 ? 0 : b === 2 ? 2 * a : b * a ** (b - 1)),
    db: (a, _b, y) => y * Math.log(a),
  },
  // PRelu(x, slope): slope is per channel (a constant), x < 0 is scaled
  PRelu: {
    apply: (a, b) => (a < 0 ? b * a : a),
    da: (a, b) => (a < 0 ? b : 1),
    db: (a) => Math.min(a, 0),
  },
};

/**
 * Each rule's partial derivatives as ONNX nodes, times the cotangent g; a, b, y broadcast against
 * the cotangents. Only the partials of data operands are asked for.
 */
type EmittedPartials = (
  n: OnnxNodes,
  g: string,
  a: () => string,
  b: () => string,
  y: () => string,
) => [() => string, () => string];

const EMITTED_PARTIALS: Record<string, EmittedPartials> = {
  Add: (_n, g) => [() => g, () => g],
  Sub: (n, g) => [() => g, () => n.node('Neg', [g])],
  Mul: (n, g, a, b) => [() => n.node('Mul', [g, b()]), () => n.node('Mul', [g, a()])],
  Div: (n, g, _a, b, y) => [
    () => n.node('Div', [g, b()]),
    () => n.node('Neg', [n.node('Mul', [g, n.node('Div', [y(), b()])])]),
  ],
  Pow: (n, g, a, b, y) => [
    () => n.node('Mul', [g, n.node('Mul', [b(), n.node('Pow', [a(), n.node('Sub', [b(), n.scalar(1)])])])]),
    () => n.node('Mul', [g, n.node('Mul', [y(), n.node('Log', [a()])])]),
  ],
  PRelu: (n, g, a, b) => {
    const negative = () => n.node('Less', [a(), n.scalar(0)]);
    return [
      () => n.node('Mul', [g, n.node('Where', [negative(), b(), n.scalar(1)])]),
      () => n.node('Mul', [g, n.node('Mul', [a(), asFloat(n, negative())])]),
    ];
  },
};

/**
 * A cotangent [B, R, ...out] of a broadcast result summed back to the per-sample shape `operand`
 * of a data operand: over the axes it was broadcast along.
 */
export function sumToShape(
  n: OnnxNodes,
  g: string,
  out: readonly number[],
  operand: readonly number[],
): string {
  if (out.length === operand.length && out.every((d, i) => d === operand[i])) return g;
  const padded = [...new Array(out.length - operand.length).fill(1), ...operand];
  const axes = out.flatMap((d, i) => (padded[i] === 1 && d !== 1 ? [i + 2] : []));
  const summed = axes.length === 0 ? g : n.node('ReduceSum', [g, n.ints(axes)], [intAttr('keepdims', 1)]);
  return n.node('Reshape', [summed, n.ints([0, 0, ...operand])]);
}

function emitBinary(name: string): Op['emit'] {
  return {
    forward: (ctx) => [ctx.nodes.node(name, [ctx.input(0), ctx.input(1)])],
    vjp([g], ctx: EmitContext) {
      if (g === undefined) return [undefined, undefined];
      const partials = EMITTED_PARTIALS[name](
        ctx.nodes,
        g,
        () => ctx.beside(0),
        () => ctx.beside(1),
        () => ctx.besideOutput(0),
      );
      return partials.map((partial, k) =>
        ctx.batched[k]
          ? sumToShape(ctx.nodes, partial(), ctx.outputShapes[0], ctx.inputShapes[k]!)
          : undefined,
      );
    },
  };
}

interface Layout {
  /** per operand: index map into its per-sample values and its per-sample stride (0: constant) */
  readonly maps: { index: Int32Array; stride: number }[];
  /** the output's full shape */
  readonly shape: number[];
  readonly batch: number;
  readonly perSample: number;
}

/** How two operands broadcast; without data operands (constant folding), NumPy rules on full shapes. */
function layout(operands: readonly Tensor[], batched: readonly boolean[]): Layout {
  const anyBatched = batched.some((b) => b);
  const views = operands.map((t, i) =>
    anyBatched ? { shape: t.shape, batched: batched[i] } : { shape: [1, ...t.shape], batched: true },
  );
  const out = broadcastShape(views);
  const maps = views.map((v) => broadcastIndex(v.shape, v.batched, out));
  const batches = views.filter((v) => v.batched).map((v) => v.shape[0]);
  const batch = batches[0];
  if (batches.some((b) => b !== batch)) throw new RangeError(`batch sizes differ: ${batches.join(', ')}`);
  const perSample = out.reduce((p, n) => p * n, 1);
  return { maps, shape: anyBatched ? [batch, ...out] : out, batch, perSample };
}

function binaryOp(name: string, rule: BinaryRule): Op {
  return {
    emit: emitBinary(name),
    forward([a, b], ctx: OpContext) {
      const { maps, shape, batch, perSample } = layout([a!, b!], ctx.batched);
      const [ma, mb] = maps;
      const out = zerosLike(a!.data instanceof Float64Array ? a!.data : b!.data, batch * perSample);
      for (let s = 0; s < batch; s++) {
        const oa = s * ma.stride;
        const ob = s * mb.stride;
        for (let i = 0; i < perSample; i++) {
          out[s * perSample + i] = rule.apply(a!.data[oa + ma.index[i]], b!.data[ob + mb.index[i]]);
        }
      }
      return [{ shape, data: out }];
    },
    vjp({ inputs: [a, b], outputs: [y], gradOutputs: [g], repeat }: VjpArgs, ctx) {
      if (!g) return [undefined, undefined];
      const { maps, perSample } = layout([a!, b!], ctx.batched);
      const rows = g.shape[0];
      const grads = [a!, b!].map((_t, k) =>
        ctx.batched[k] ? zerosLike(g.data, rows * maps[k].stride) : undefined,
      );
      const partials = [rule.da, rule.db];
      for (let k = 0; k < 2; k++) {
        const grad = grads[k];
        if (!grad) continue;
        const { index, stride } = maps[k];
        const partial = partials[k];
        for (let r = 0; r < rows; r++) {
          const s = Math.floor(r / repeat);
          const oa = s * maps[0].stride;
          const ob = s * maps[1].stride;
          for (let i = 0; i < perSample; i++) {
            const av = a!.data[oa + maps[0].index[i]];
            const bv = b!.data[ob + maps[1].index[i]];
            grad[r * stride + index[i]] +=
              g.data[r * perSample + i] * partial(av, bv, y.data[s * perSample + i]);
          }
        }
      }
      return grads.map((grad, k) => grad && { shape: [rows, ...[a!, b!][k].shape.slice(1)], data: grad });
    },
  };
}

export const BINARY_OPS: Record<string, Op> = Object.fromEntries(
  Object.entries(BINARY_RULES).map(([name, rule]) => [name, binaryOp(name, rule)]),
);

/** Clip(x, min, max): min and max as inputs (opset 11+) or attributes (earlier); either may be absent. */
function clipRange(inputs: readonly (Tensor | undefined)[], ctx: Pick<OpContext, 'attrs'>): [number, number] {
  const bound = (input: Tensor | undefined, attr: string, fallback: number) =>
    input !== undefined
      ? input.data[0]
      : typeof ctx.attrs[attr] === 'number'
        ? (ctx.attrs[attr] as number)
        : fallback;
  return [bound(inputs[1], 'min', -Infinity), bound(inputs[2], 'max', Infinity)];
}

export const CLIP: Op = {
  emit: {
    forward(ctx) {
      const [lo, hi] = clipRange(ctx.inputValues, ctx);
      const bound = (v: number) => (Number.isFinite(v) ? ctx.nodes.scalar(v) : '');
      return [ctx.nodes.node('Clip', [ctx.input(0), bound(lo), bound(hi)])];
    },
    vjp([g], ctx) {
      if (g === undefined) return [];
      const [lo, hi] = clipRange(ctx.inputValues, ctx);
      const n = ctx.nodes;
      const x = ctx.beside(0);
      const inside = [
        ...(Number.isFinite(lo) ? [n.node('Greater', [x, n.scalar(lo)])] : []),
        ...(Number.isFinite(hi) ? [n.node('Less', [x, n.scalar(hi)])] : []),
      ];
      if (inside.length === 0) return [g];
      const mask = inside.length === 2 ? n.node('And', inside) : inside[0];
      return [n.node('Mul', [g, asFloat(n, mask)])];
    },
  },
  forward(inputs, ctx) {
    const [lo, hi] = clipRange(inputs, ctx);
    const x = inputs[0]!;
    const out = zerosLike(x.data, x.data.length);
    for (let i = 0; i < out.length; i++) out[i] = Math.min(hi, Math.max(lo, x.data[i]));
    return [{ shape: x.shape, data: out }];
  },
  vjp({ inputs, gradOutputs: [g], repeat }, ctx) {
    if (!g) return [];
    const [lo, hi] = clipRange(inputs, ctx);
    const x = inputs[0]!;
    const n = g.data.length / g.shape[0];
    const out = zerosLike(g.data, g.data.length);
    for (let r = 0; r < g.shape[0]; r++) {
      const s = Math.floor(r / repeat) * n;
      for (let i = 0; i < n; i++) {
        const v = x.data[s + i];
        out[r * n + i] = v > lo && v < hi ? g.data[r * n + i] : 0;
      }
    }
    return [{ shape: g.shape, data: out }];
  },
};
