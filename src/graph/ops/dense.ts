/**
 * The fully-connected layer, the unit EC prunes: z = a Wᵀ + b, with W and b in
 * `graph.layers[attrs.layer]`. Forward and backward are one GEMM each through the project's GEMM
 * abstraction; float64 inputs (the finite-difference tests) take a plain float64 loop instead, since
 * the GEMM backends are float32. A float64 layer (a float64 model) runs its GEMMs on its weights
 * rounded to float32, like the model's data.
 */
import { badInput } from '../../errors.js';
import type { Gemm } from '../../gemm/gemm.js';
import { asFloat32, type FloatArray, type Matrix } from '../../model/matrix.js';
import { intAttr } from '../emit/onnx-nodes.js';
import type { DenseLayer } from '../graph.js';
import type { Tensor } from '../tensor.js';
import type { EmitContext, Op, OpContext } from './op.js';

/** The layer's weight as an initializer (stored once: forward and VJP use the same). */
function weightOf(ctx: EmitContext): string {
  const { weight } = layerFor(ctx);
  return ctx.nodes.floats([weight.rows, weight.cols], weight.data);
}

function layerFor(ctx: Pick<OpContext, 'attrs' | 'layers'>): DenseLayer {
  return ctx.layers[ctx.attrs.layer as number];
}

/** a (rows x k) times op(W): W (n_out x n_in) transposed when `transB`, in float64. */
function matmul64(a: Float64Array, rows: number, w: Matrix<FloatArray>, transB: boolean): Float64Array {
  const [k, n] = transB ? [w.cols, w.rows] : [w.rows, w.cols];
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let i = 0; i < k; i++)
        sum += a[r * k + i] * (transB ? w.data[j * w.cols + i] : w.data[i * w.cols + j]);
      out[r * n + j] = sum;
    }
  }
  return out;
}

async function product(a: Tensor, w: Matrix<FloatArray>, transB: boolean, ctx: OpContext): Promise<Tensor> {
  const rows = a.shape[0];
  const n = transB ? w.rows : w.cols;
  if (a.data instanceof Float64Array) return { shape: [rows, n], data: matmul64(a.data, rows, w, transB) };
  const cols = a.data.length / Math.max(rows, 1);
  const z = await ctx.gemm.matmul({ rows, cols, data: a.data }, asFloat32(w), { transB });
  return { shape: [rows, n], data: z.data };
}

/** z = a Wᵀ + b for a batch a (B x n_in) in float32: one GEMM plus a broadcast bias. */
export async function denseForward(
  layer: Pick<DenseLayer, 'weight' | 'bias'>,
  a: Matrix,
  gemm: Gemm,
): Promise<Matrix> {
  const z = await gemm.matmul(a, asFloat32(layer.weight), { transB: true });
  const { rows, cols, data } = z;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[r * cols + c] += layer.bias[c];
  return z;
}

export const DENSE: Op = {
  // the layer's weight and bias become initializers of the emitted graph
  emit: {
    forward(ctx) {
      const { bias } = layerFor(ctx);
      const b = ctx.nodes.floats([bias.length], bias);
      return [ctx.nodes.node('Gemm', [ctx.input(0), weightOf(ctx), b], [intAttr('transB', 1)])];
    },
    vjp([g], ctx) {
      if (g === undefined) return [];
      return [ctx.nodes.node('MatMul', [g, weightOf(ctx)])];
    },
  },
  async forward([a], ctx) {
    const layer = layerFor(ctx);
    if (a!.shape.length !== 2 || a!.shape[1] !== layer.weight.cols) {
      throw badInput(
        `layer '${layer.name}' takes ${layer.weight.cols} features, its input has shape [${a!.shape}]`,
      );
    }
    const rows = a!.shape[0];
    if (!(a!.data instanceof Float64Array)) {
      const z = await denseForward(layer, { rows, cols: layer.weight.cols, data: a!.data }, ctx.gemm);
      return [{ shape: [rows, z.cols], data: z.data }];
    }
    const z = matmul64(a!.data, rows, layer.weight, true);
    const n = layer.bias.length;
    for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) z[r * n + i] += layer.bias[i];
    return [{ shape: [rows, n], data: z }];
  },
  async vjp({ gradOutputs: [g] }, ctx) {
    if (!g) return [];
    return [await product(g, layerFor(ctx).weight, false, ctx)];
  },
};
