/**
 * Ops that mix the values along the last axes of each sample: Softmax and LogSoftmax heads,
 * reductions (the decomposed form of LayerNorm), LayerNormalization, and the per-channel affine
 * map of an inference BatchNormalization.
 */
import { badInput } from '../../errors.js';
import { floatAttr, intAttr, type OnnxNodes } from '../emit/onnx-nodes.js';
import type { Tensor } from '../tensor.js';
import { zerosLike } from '../tensor.js';
import { type EmitContext, intsAttr, numberAttr, type Op, type OpContext, type VjpArgs } from './op.js';

/** ONNX's default epsilon of BatchNormalization and LayerNormalization */
export const ONNX_EPSILON = 1e-5;

/** The size of the trailing block from `axis` on (the groups Softmax/LayerNorm work on). */
function trailing(shape: readonly number[], axis: number): number {
  const a = axis < 0 ? axis + shape.length : axis;
  if (a < 1 || a >= shape.length) throw badInput(`axis ${axis} is not a feature axis of a [${shape}] tensor`);
  return shape.slice(a).reduce((p, n) => p * n, 1);
}

/** Runs `each(offset, length)` over every group of `length` values of `t` (rows of the last axes). */
function forGroups(t: Tensor, length: number, each: (offset: number) => void): void {
  for (let o = 0; o < t.data.length; o += length) each(o);
}

function softmaxAxis(ctx: OpContext, rank: number): number {
  // before opset 13 the default axis was 1 and the input was coerced to 2-D there; the readers
  // accept only the cases where both definitions agree (the last axis)
  const axis = numberAttr(ctx, 'axis', -1);
  const a = axis < 0 ? axis + rank : axis;
  if (a !== rank - 1)
    throw badInput(
      `softmax over axis ${axis} of a rank-${rank} tensor is not supported (only the last axis)`,
    );
  return a;
}

function softmaxForward(x: Tensor, length: number, log: boolean): Tensor {
  const out = zerosLike(x.data, x.data.length);
  forGroups(x, length, (o) => {
    let max = -Infinity;
    for (let i = 0; i < length; i++) max = Math.max(max, x.data[o + i]);
    let sum = 0;
    for (let i = 0; i < length; i++) sum += Math.exp(x.data[o + i] - max);
    const logSum = Math.log(sum) + max;
    for (let i = 0; i < length; i++) {
      out[o + i] = log ? x.data[o + i] - logSum : Math.exp(x.data[o + i] - logSum);
    }
  });
  return { shape: x.shape, data: out };
}

const keepdims = intAttr('keepdims', 1);

/** Σ over the last axis, kept as size 1. */
const sumLast = (n: OnnxNodes, t: string) => n.node('ReduceSum', [t, n.ints([-1])], [keepdims]);

function softmaxOp(log: boolean): Op {
  return {
    emit: {
      forward: (ctx) => [
        ctx.nodes.node(log ? 'LogSoftmax' : 'Softmax', [ctx.input(0)], [intAttr('axis', -1)]),
      ],
      vjp([g], ctx) {
        if (g === undefined) return [];
        const n = ctx.nodes;
        const y = ctx.besideOutput(0);
        if (log) return [n.node('Sub', [g, n.node('Mul', [n.node('Exp', [y]), sumLast(n, g)])])];
        return [n.node('Mul', [y, n.node('Sub', [g, sumLast(n, n.node('Mul', [g, y]))])])];
      },
    },
    forward([x], ctx) {
      const length = x!.shape[softmaxAxis(ctx, x!.shape.length)];
      return [softmaxForward(x!, length, log)];
    },
    // softmax: g_x = y ⊙ (g − Σ g⊙y); log-softmax: g_x = g − softmax(x) Σ g
    vjp({ outputs: [y], gradOutputs: [g], repeat }: VjpArgs) {
      if (!g) return [];
      const length = y.shape[y.shape.length - 1];
      const n = y.data.length / y.shape[0];
      const out = zerosLike(g.data, g.data.length);
      for (let r = 0; r < g.shape[0]; r++) {
        const s = Math.floor(r / repeat) * n;
        for (let o = 0; o < n; o += length) {
          const go = r * n + o;
          const yo = s + o;
          let dot = 0;
          if (log) for (let i = 0; i < length; i++) dot += g.data[go + i];
          else for (let i = 0; i < length; i++) dot += g.data[go + i] * y.data[yo + i];
          for (let i = 0; i < length; i++) {
            out[go + i] = log
              ? g.data[go + i] - Math.exp(y.data[yo + i]) * dot
              : y.data[yo + i] * (g.data[go + i] - dot);
          }
        }
      }
      return [{ shape: g.shape, data: out }];
    },
  };
}

/**
 * ReduceMean / ReduceSum over feature axes (never the batch): the axes come from the `axes`
 * attribute or, from opsets 13 (sum) and 18 (mean), from a constant second input.
 */
function reduction(mean: boolean): Op {
  const plan = (x: Tensor, inputs: readonly (Tensor | undefined)[], ctx: OpContext) => {
    const rank = x.shape.length;
    const given = inputs[1] ? Array.from(inputs[1].data) : intsAttr(ctx, 'axes');
    const axes = (given ?? x.shape.map((_, d) => d)).map((a) => (a < 0 ? a + rank : a));
    if (axes.includes(0)) throw badInput('a reduction over the batch axis is not supported');
    const keep = numberAttr(ctx, 'keepdims', 1) === 1;
    const kept = x.shape.map((n, d) => (axes.includes(d) ? 1 : n));
    const outShape = keep ? kept : x.shape.filter((_, d) => !axes.includes(d));
    // for every flat index of x, the flat index of its reduced value
    const map = new Int32Array(x.data.length);
    const counter = new Array(rank).fill(0);
    for (let i = 0; i < map.length; i++) {
      let o = 0;
      for (let d = 0; d < rank; d++) o = o * kept[d] + (axes.includes(d) ? 0 : counter[d]);
      map[i] = o;
      for (let d = rank - 1; d >= 0; d--) {
        if (++counter[d] < x.shape[d]) break;
        counter[d] = 0;
      }
    }
    const count = axes.reduce((p, a) => p * x.shape[a], 1);
    return { map, outShape, scale: mean ? 1 / count : 1 };
  };
  /** the reduced axes of the per-sample shape (axis 0 is the batch in the node's own terms) */
  const sampleAxes = (ctx: EmitContext) => {
    const rank = ctx.inputShapes[0]!.length + 1;
    const given = ctx.inputValues[1] ? Array.from(ctx.inputValues[1].data) : intsAttr(ctx, 'axes');
    const axes = (given ?? [...new Array(rank).keys()]).map((a) => (a < 0 ? a + rank : a));
    if (axes.includes(0)) throw badInput('a reduction over the batch axis is not supported');
    return axes.map((a) => a - 1);
  };
  return {
    emit: {
      forward(ctx) {
        const axes = sampleAxes(ctx).map((a) => a + 1);
        const keep = intAttr('keepdims', numberAttr(ctx, 'keepdims', 1));
        return [
          ctx.nodes.node(mean ? 'ReduceMean' : 'ReduceSum', [ctx.input(0), ctx.nodes.ints(axes)], [keep]),
        ];
      },
      // the cotangent spread back over the reduced axes (scaled by 1/count for the mean)
      vjp([g], ctx) {
        if (g === undefined) return [];
        const n = ctx.nodes;
        const shape = ctx.inputShapes[0]!;
        const axes = sampleAxes(ctx);
        const kept = shape.map((d, a) => (axes.includes(a) ? 1 : d));
        const spread = n.node('Expand', [
          n.node('Reshape', [g, n.ints([0, 0, ...kept])]),
          n.ints([1, 1, ...shape]),
        ]);
        const count = axes.reduce((p, a) => p * shape[a], 1);
        return [mean ? n.node('Mul', [spread, n.scalar(1 / count)]) : spread];
      },
    },
    forward(inputs, ctx) {
      const x = inputs[0]!;
      const { map, outShape, scale } = plan(x, inputs, ctx);
      const out = zerosLike(
        x.data,
        outShape.reduce((p, n) => p * n, 1),
      );
      for (let i = 0; i < map.length; i++) out[map[i]] += x.data[i] * scale;
      return [{ shape: outShape, data: out }];
    },
    vjp({ inputs, gradOutputs: [g] }, ctx) {
      if (!g) return [];
      const x = inputs[0]!;
      const { map, scale } = plan(x, inputs, ctx);
      // plan() maps one batch of x; cotangent rows repeat each sample R times, so work per row
      const nIn = x.data.length / x.shape[0];
      const nOut = g.data.length / g.shape[0];
      const out = zerosLike(g.data, g.shape[0] * nIn);
      for (let r = 0; r < g.shape[0]; r++) {
        for (let i = 0; i < nIn; i++) out[r * nIn + i] = g.data[r * nOut + (map[i] % nOut)] * scale;
      }
      return [{ shape: [g.shape[0], ...x.shape.slice(1)], data: out }];
    },
  };
}

/** LayerNormalization(x, scale, bias): normalises the values from `axis` on (default the last). */
const LAYER_NORM: Op = {
  emit: {
    forward(ctx) {
      const attributes = [
        intAttr('axis', numberAttr(ctx, 'axis', -1)),
        floatAttr('epsilon', numberAttr(ctx, 'epsilon', ONNX_EPSILON)),
      ];
      const inputs = [0, 1, 2].filter((i) => i < ctx.inputShapes.length && ctx.inputShapes[i] !== undefined);
      return [
        ctx.nodes.node(
          'LayerNormalization',
          inputs.map((i) => ctx.input(i)),
          attributes,
        ),
      ];
    },
    // the same formula as `vjp` below, over the normalised axes of [B, R, ...]
    vjp([g], ctx) {
      if (g === undefined) return [];
      const n = ctx.nodes;
      const rank = ctx.inputShapes[0]!.length + 1;
      const axis = numberAttr(ctx, 'axis', -1);
      const first = (axis < 0 ? axis + rank : axis) + 1; // in [B, R, ...]
      const axes = n.ints([...new Array(rank + 1 - first).keys()].map((a) => a + first));
      const meanOf = (t: string) => n.node('ReduceMean', [t, axes], [keepdims]);
      const x = ctx.beside(0);
      const centred = n.node('Sub', [x, meanOf(x)]);
      const variance = meanOf(n.node('Mul', [centred, centred]));
      const inv = n.node('Reciprocal', [
        n.node('Sqrt', [n.node('Add', [variance, n.scalar(numberAttr(ctx, 'epsilon', ONNX_EPSILON))])]),
      ]);
      const xhat = n.node('Mul', [centred, inv]);
      const gh = n.node('Mul', [g, ctx.beside(1)]);
      const inner = n.node('Sub', [
        n.node('Sub', [gh, meanOf(gh)]),
        n.node('Mul', [xhat, meanOf(n.node('Mul', [gh, xhat]))]),
      ]);
      return [n.node('Mul', [inv, inner])];
    },
  },
  forward([x, scale, bias], ctx) {
    const length = trailing(x!.shape, numberAttr(ctx, 'axis', -1));
    const eps = numberAttr(ctx, 'epsilon', ONNX_EPSILON);
    const out = zerosLike(x!.data, x!.data.length);
    forGroups(x!, length, (o) => {
      const { mean, inv } = moments(x!.data, o, length, eps);
      for (let i = 0; i < length; i++) {
        out[o + i] = (x!.data[o + i] - mean) * inv * scale!.data[i] + (bias ? bias.data[i] : 0);
      }
    });
    return [{ shape: x!.shape, data: out }];
  },
  // g_x = inv · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)), ĝ = g ⊙ scale, x̂ the normalised input
  vjp({ inputs: [x, scale], gradOutputs: [g], repeat }, ctx) {
    if (!g) return [];
    const length = trailing(x!.shape, numberAttr(ctx, 'axis', -1));
    const eps = numberAttr(ctx, 'epsilon', ONNX_EPSILON);
    const n = x!.data.length / x!.shape[0];
    const out = zerosLike(g.data, g.data.length);
    const xhat = new Float64Array(length);
    const gh = new Float64Array(length);
    for (let r = 0; r < g.shape[0]; r++) {
      const s = Math.floor(r / repeat) * n;
      for (let o = 0; o < n; o += length) {
        const { mean, inv } = moments(x!.data, s + o, length, eps);
        let meanG = 0;
        let meanGX = 0;
        for (let i = 0; i < length; i++) {
          xhat[i] = (x!.data[s + o + i] - mean) * inv;
          gh[i] = g.data[r * n + o + i] * scale!.data[i];
          meanG += gh[i];
          meanGX += gh[i] * xhat[i];
        }
        meanG /= length;
        meanGX /= length;
        for (let i = 0; i < length; i++) out[r * n + o + i] = inv * (gh[i] - meanG - xhat[i] * meanGX);
      }
    }
    return [{ shape: g.shape, data: out }];
  },
};

function moments(data: ArrayLike<number>, offset: number, length: number, eps: number) {
  let mean = 0;
  for (let i = 0; i < length; i++) mean += data[offset + i];
  mean /= length;
  let variance = 0;
  for (let i = 0; i < length; i++) variance += (data[offset + i] - mean) ** 2;
  variance /= length;
  return { mean, inv: 1 / Math.sqrt(variance + eps) };
}

/**
 * Inference BatchNormalization(x, scale, B, mean, var): y = (x − mean) · scale / √(var + ε) + B per
 * channel (axis 1): an affine map, so its VJP is the same per-channel factor.
 */
function batchNormFactors(inputs: readonly (Tensor | undefined)[], ctx: Pick<OpContext, 'attrs'>) {
  const [x, scale, shift, mean, variance] = inputs as Tensor[];
  const eps = numberAttr(ctx, 'epsilon', ONNX_EPSILON);
  const channels = x.shape[1];
  const spatial = x.shape.slice(2).reduce((p, n) => p * n, 1);
  const factor = new Float64Array(channels);
  const offset = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    factor[c] = scale.data[c] / Math.sqrt(variance.data[c] + eps);
    offset[c] = shift.data[c] - mean.data[c] * factor[c];
  }
  return { factor, offset, spatial, perSample: channels * spatial };
}

const BATCH_NORM: Op = {
  emit: {
    forward(ctx) {
      const attributes = [floatAttr('epsilon', numberAttr(ctx, 'epsilon', ONNX_EPSILON))];
      return [
        ctx.nodes.node(
          'BatchNormalization',
          [0, 1, 2, 3, 4].map((i) => ctx.input(i)),
          attributes,
        ),
      ];
    },
    // g times the per-channel factor, channels on axis 2 of [B, R, C, ...]
    vjp([g], ctx) {
      if (g === undefined) return [];
      const shape = ctx.inputShapes[0]!;
      const { factor } = batchNormFactors(
        [{ shape: [1, ...shape], data: new Float32Array(0) }, ...ctx.inputValues.slice(1)],
        ctx,
      );
      const factorShape = [shape[0], ...shape.slice(1).map(() => 1)];
      return [ctx.nodes.node('Mul', [g, ctx.nodes.floats(factorShape, factor)])];
    },
  },
  forward(inputs, ctx) {
    const x = inputs[0]!;
    const { factor, offset, spatial, perSample } = batchNormFactors(inputs, ctx);
    const out = zerosLike(x.data, x.data.length);
    for (let i = 0; i < out.length; i++) {
      const c = Math.floor((i % perSample) / spatial);
      out[i] = x.data[i] * factor[c] + offset[c];
    }
    return [{ shape: x.shape, data: out }];
  },
  vjp({ inputs, gradOutputs: [g] }, ctx) {
    if (!g) return [];
    const { factor, spatial, perSample } = batchNormFactors(inputs, ctx);
    const out = zerosLike(g.data, g.data.length);
    for (let i = 0; i < out.length; i++) out[i] = g.data[i] * factor[Math.floor((i % perSample) / spatial)];
    return [{ shape: g.shape, data: out }];
  },
};

export const NORMALIZE_OPS: Record<string, Op> = {
  Softmax: softmaxOp(false),
  LogSoftmax: softmaxOp(true),
  ReduceMean: reduction(true),
  ReduceSum: reduction(false),
  LayerNormalization: LAYER_NORM,
  BatchNormalization: BATCH_NORM,
};
