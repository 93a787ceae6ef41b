/**
 * Ops that move values without changing them: reshapes, flattening (including the
 * Shape/Gather/Unsqueeze/Concat/Reshape idiom of `x.view(x.size(0), -1)`), feature concatenation,
 * constants, casts and inference no-ops. Shape values are plain numbers in a Float64Array; they are
 * never differentiated.
 */
import { badInput } from '../../errors.js';
import { intAttr } from '../emit/onnx-nodes.js';
import { sizeOf, type Tensor, zerosLike } from '../tensor.js';
import {
  type EmitContext,
  intsAttr,
  numberAttr,
  type Op,
  type OpContext,
  type OpEmit,
  type VjpArgs,
} from './op.js';

const shapeValues = (values: readonly number[]): Tensor => ({
  shape: [values.length],
  data: Float64Array.from(values),
});

/** A cotangent with the per-sample shape of `like` (a pure relabelling of the same values). */
function reshapedCotangent(g: Tensor | undefined, like: Tensor | undefined): Tensor | undefined {
  return g && like && { shape: [g.shape[0], ...like.shape.slice(1)], data: g.data };
}

const passThrough: Op['vjp'] = ({ inputs: [x], gradOutputs: [g] }: VjpArgs) => [reshapedCotangent(g, x)];

function normalizeAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Unsqueeze/Squeeze axes: attribute before opset 13, a constant input after. */
function axesOf(inputs: readonly (Tensor | undefined)[], ctx: OpContext): number[] | undefined {
  return inputs[1] ? Array.from(inputs[1].data) : intsAttr(ctx, 'axes')?.slice();
}

/** The output shape of Reshape: 0 copies the input's dimension (unless allowzero), -1 is inferred. */
function reshapeTarget(input: readonly number[], target: readonly number[], allowZero: boolean): number[] {
  const out = target.map((n, d) => (n === 0 && !allowZero ? input[d] : n));
  const known = out.reduce((p, n) => (n === -1 ? p : p * n), 1);
  const total = sizeOf(input);
  const inferred = out.indexOf(-1);
  if (inferred >= 0) out[inferred] = known === 0 ? 0 : total / known;
  if (sizeOf(out) !== total || !out.every(Number.isInteger)) {
    throw badInput(`cannot reshape [${input}] to [${target}]`);
  }
  return out;
}

/** Emitted as the values themselves: the op does not change a data tensor. */
const sameValues: OpEmit = { forward: (ctx) => [ctx.input(0)], vjp: (grads) => [grads[0]] };

/** Emitted as a Reshape to the per-sample shapes the trace found (the batch and R rows kept). */
const reshaped: OpEmit = {
  forward: (ctx: EmitContext) => [
    ctx.nodes.node('Reshape', [ctx.input(0), ctx.nodes.ints([0, ...ctx.outputShapes[0]])]),
  ],
  vjp: ([g], ctx) => [g && ctx.nodes.node('Reshape', [g, ctx.nodes.ints([0, 0, ...ctx.inputShapes[0]!])])],
};

export const SHAPE_OPS: Record<string, Op> = {
  Dropout: { forward: ([x]) => [x!], vjp: passThrough, emit: sameValues },
  Cast: {
    emit: sameValues,
    forward([x], ctx) {
      // integer targets matter only for shape values; data stays in the model's float type
      const integer = [2, 3, 4, 5, 6, 7, 9, 12, 13].includes(numberAttr(ctx, 'to', 1));
      if (!integer || ctx.batched[0]) return [x!];
      return [{ shape: x!.shape, data: Float64Array.from(x!.data, Math.trunc) }];
    },
    vjp: passThrough,
  },
  Constant: {
    forward(_inputs, ctx) {
      const value = ctx.attrs.value;
      if (value === undefined || typeof value !== 'object' || Array.isArray(value)) {
        throw badInput('a Constant without a tensor value');
      }
      return [value as Tensor];
    },
  },
  ConstantOfShape: {
    forward([shape], ctx) {
      const dims = Array.from(shape!.data);
      const value = ctx.attrs.value as Tensor | undefined;
      return [{ shape: dims, data: new Float64Array(sizeOf(dims)).fill(value ? value.data[0] : 0) }];
    },
  },
  Shape: {
    forward([x], ctx) {
      const rank = x!.shape.length;
      const start = normalizeAxis(numberAttr(ctx, 'start', 0), rank);
      const end = normalizeAxis(numberAttr(ctx, 'end', rank), rank);
      return [shapeValues(x!.shape.slice(Math.max(0, start), Math.min(rank, end)))];
    },
  },
  Gather: {
    forward([data, indices], ctx) {
      if (ctx.batched[0]) throw badInput('Gather on data tensors is not supported (only on shapes)');
      const axis = normalizeAxis(numberAttr(ctx, 'axis', 0), data!.shape.length);
      const outer = sizeOf(data!.shape.slice(0, axis));
      const dim = data!.shape[axis];
      const inner = sizeOf(data!.shape.slice(axis + 1));
      const picks = Array.from(indices!.data, (i) => (i < 0 ? i + dim : i));
      const out = new Float64Array(outer * picks.length * inner);
      let o = 0;
      for (let a = 0; a < outer; a++) {
        for (const p of picks)
          for (let k = 0; k < inner; k++) out[o++] = data!.data[(a * dim + p) * inner + k];
      }
      const shape = [...data!.shape.slice(0, axis), ...indices!.shape, ...data!.shape.slice(axis + 1)];
      return [{ shape, data: out }];
    },
  },
  Unsqueeze: {
    emit: reshaped,
    forward(inputs, ctx) {
      const x = inputs[0]!;
      const rank = x.shape.length + (axesOf(inputs, ctx)?.length ?? 0);
      const axes = (axesOf(inputs, ctx) ?? []).map((a) => normalizeAxis(a, rank)).sort((a, b) => a - b);
      if (ctx.batched[0] && axes.includes(0))
        throw badInput('Unsqueeze before the batch axis is not supported');
      const shape = [...x.shape];
      for (const a of axes) shape.splice(a, 0, 1);
      return [{ shape, data: x.data }];
    },
    vjp: passThrough,
  },
  Squeeze: {
    emit: reshaped,
    forward(inputs, ctx) {
      const x = inputs[0]!;
      const axes = (axesOf(inputs, ctx) ?? x.shape.flatMap((n, d) => (n === 1 ? [d] : []))).map((a) =>
        normalizeAxis(a, x.shape.length),
      );
      if (ctx.batched[0] && axes.includes(0)) throw badInput('Squeeze of the batch axis is not supported');
      return [{ shape: x.shape.filter((_, d) => !axes.includes(d)), data: x.data }];
    },
    vjp: passThrough,
  },
  Flatten: {
    emit: reshaped,
    forward([x], ctx) {
      const axis = normalizeAxis(numberAttr(ctx, 'axis', 1), x!.shape.length);
      if (ctx.batched[0] && axis !== 1)
        throw badInput(`Flatten at axis ${axis} mixes the batch with the features`);
      const shape = [sizeOf(x!.shape.slice(0, axis)), sizeOf(x!.shape.slice(axis))];
      return [{ shape, data: x!.data }];
    },
    vjp: passThrough,
  },
  Reshape: {
    emit: reshaped,
    forward([x, target], ctx) {
      const shape = reshapeTarget(x!.shape, Array.from(target!.data), numberAttr(ctx, 'allowzero', 0) === 1);
      if (ctx.batched[0] && shape[0] !== x!.shape[0]) {
        throw badInput(`Reshape to [${Array.from(target!.data)}] mixes the batch with the features`);
      }
      return [{ shape, data: x!.data }];
    },
    vjp: passThrough,
  },
  Concat: {
    emit: {
      forward(ctx) {
        const axis = normalizeAxis(numberAttr(ctx, 'axis', 0), ctx.inputShapes[0]!.length + 1);
        return [
          ctx.nodes.node(
            'Concat',
            ctx.inputShapes.map((_, i) => ctx.input(i)),
            [intAttr('axis', axis)],
          ),
        ];
      },
      vjp([g], ctx) {
        if (g === undefined) return [];
        const axis = normalizeAxis(numberAttr(ctx, 'axis', 0), ctx.inputShapes[0]!.length + 1);
        const sizes = ctx.inputShapes.map((shape) => shape![axis - 1]);
        return ctx.nodes.nodeOutputs('Split', [g, ctx.nodes.ints(sizes)], sizes.length, [
          intAttr('axis', axis + 1),
        ]);
      },
    },
    forward(inputs, ctx) {
      const parts = inputs.filter((t): t is Tensor => t !== undefined);
      const rank = parts[0].shape.length;
      const axis = normalizeAxis(numberAttr(ctx, 'axis', 0), rank);
      const batched = ctx.batched.some((b) => b);
      if (batched && (axis === 0 || !ctx.batched.every((b) => b))) {
        throw badInput('Concat of data tensors is supported along feature axes, between data tensors only');
      }
      const outer = sizeOf(parts[0].shape.slice(0, axis));
      const widths = parts.map((t) => sizeOf(t.shape.slice(axis)));
      const total = widths.reduce((p, n) => p + n, 0);
      const out = zerosLike(parts[0].data, outer * total);
      for (let a = 0; a < outer; a++) {
        let o = a * total;
        parts.forEach((t, k) => {
          out.set(t.data.subarray(a * widths[k], (a + 1) * widths[k]), o);
          o += widths[k];
        });
      }
      const shape = [...parts[0].shape];
      shape[axis] = parts.reduce((p, t) => p + t.shape[axis], 0);
      return [{ shape, data: out }];
    },
    vjp({ inputs, gradOutputs: [g] }, ctx) {
      if (!g) return [];
      const parts = inputs as Tensor[];
      const axis = normalizeAxis(numberAttr(ctx, 'axis', 0), parts[0].shape.length);
      const rows = g.shape[0];
      // per cotangent row: the block of each part along the axis, in order
      const outerPerRow = sizeOf(parts[0].shape.slice(1, axis));
      const widths = parts.map((t) => sizeOf(t.shape.slice(axis)));
      const total = widths.reduce((p, n) => p + n, 0);
      return parts.map((t, k) => {
        const out = zerosLike(g.data, rows * outerPerRow * widths[k]);
        const start = widths.slice(0, k).reduce((p, n) => p + n, 0);
        for (let a = 0; a < rows * outerPerRow; a++) {
          out.set(g.data.subarray(a * total + start, a * total + start + widths[k]), a * widths[k]);
        }
        return { shape: [rows, ...t.shape.slice(1)], data: out };
      });
    },
  },
};
