/**
 * The fully-connected layer, the unit EC prunes: z = a Wᵀ + b, with W and b in
 * `graph.layers[attrs.layer]`. Forward and backward are one GEMM each through the project's GEMM
 * abstraction; float64 inputs (the finite-difference tests) take a plain float64 loop instead, since
 * the GEMM backends are float32.
 */
import { badInput } from '../../errors.js';
import type { Matrix } from '../../model/matrix.js';
import type { DenseLayer } from '../graph.js';
import type { Tensor } from '../tensor.js';
import type { Op, OpContext } from './op.js';

function layerFor(ctx: OpContext): DenseLayer {
  return ctx.layers[ctx.attrs.layer as number];
}

/** a (rows x k) times op(W): W (n_out x n_in) transposed when `transB`, in float64. */
function matmul64(a: Float64Array, rows: number, w: Matrix, transB: boolean): Float64Array {
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

async function product(a: Tensor, w: Matrix, transB: boolean, ctx: OpContext): Promise<Tensor> {
  const rows = a.shape[0];
  const n = transB ? w.rows : w.cols;
  if (a.data instanceof Float64Array) return { shape: [rows, n], data: matmul64(a.data, rows, w, transB) };
  const cols = a.data.length / Math.max(rows, 1);
  const z = await ctx.gemm.matmul({ rows, cols, data: a.data }, w, { transB });
  return { shape: [rows, n], data: z.data };
}

export const DENSE: Op = {
  async forward([a], ctx) {
    const layer = layerFor(ctx);
    if (a!.shape.length !== 2 || a!.shape[1] !== layer.weight.cols) {
      throw badInput(
        `layer '${layer.name}' takes ${layer.weight.cols} features, its input has shape [${a!.shape}]`,
      );
    }
    const z = await product(a!, layer.weight, true, ctx);
    const n = layer.bias.length;
    for (let r = 0; r < a!.shape[0]; r++) for (let i = 0; i < n; i++) z.data[r * n + i] += layer.bias[i];
    return [z];
  },
  async vjp({ gradOutputs: [g] }, ctx) {
    if (!g) return [];
    return [await product(g, layerFor(ctx).weight, false, ctx)];
  },
};
