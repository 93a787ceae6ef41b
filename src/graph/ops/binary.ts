/**
 * Elementwise ops of two tensors with NumPy broadcasting: residual additions between data tensors,
 * and scalings, shifts and powers by constants. Each rule gives the value and both partial
 * derivatives; the VJP sums a cotangent over the positions an operand was broadcast to.
 */
import { broadcastIndex, broadcastShape, type Tensor, zerosLike } from '../tensor.js';
import type { Op, OpContext, VjpArgs } from './op.js';

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

function binaryOp(rule: BinaryRule): Op {
  return {
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
  Object.entries(BINARY_RULES).map(([name, rule]) => [name, binaryOp(rule)]),
);

/** Clip(x, min, max): min and max as inputs (opset 11+) or attributes (earlier); either may be absent. */
function clipRange(inputs: readonly (Tensor | undefined)[], ctx: OpContext): [number, number] {
  const bound = (input: Tensor | undefined, attr: string, fallback: number) =>
    input !== undefined
      ? input.data[0]
      : typeof ctx.attrs[attr] === 'number'
        ? (ctx.attrs[attr] as number)
        : fallback;
  return [bound(inputs[1], 'min', -Infinity), bound(inputs[2], 'max', Infinity)];
}

export const CLIP: Op = {
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
