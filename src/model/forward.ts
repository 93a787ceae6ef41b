import type { Gemm } from '../gemm/gemm.js';
import { activationDerivative, applyActivation } from './activations.js';
import type { Matrix } from './matrix.js';
import type { Layer, Mlp } from './mlp.js';

/** z = a W^T + b for a batch a (B x n_in): one GEMM plus a broadcast bias. */
export async function preActivation(layer: Layer, input: Matrix, gemm: Gemm): Promise<Matrix> {
  const z = await gemm.matmul(input, layer.weight, { transB: true });
  const { rows, cols, data } = z;
  const bias = layer.bias;
  for (let r = 0; r < rows; r++) {
    const offset = r * cols;
    for (let c = 0; c < cols; c++) data[offset + c] += bias[c];
  }
  return z;
}

/** Network output y (B x n_L) for a batch x (B x n_0). */
export async function forward(mlp: Mlp, x: Matrix, gemm: Gemm): Promise<Matrix> {
  let a = x;
  for (const layer of mlp.layers) {
    const z = await preActivation(layer, a, gemm);
    a = { rows: z.rows, cols: z.cols, data: applyActivation(layer.activation, z.data) };
  }
  return a;
}

/**
 * What the backward passes need from a forward pass: every layer's input a_{l-1} (B x n_{l-1})
 * and the activation derivative act'(z_l) (B x n_l), plus the output.
 */
export interface ForwardTrace {
  readonly inputs: Matrix[];
  readonly derivatives: Matrix[];
  readonly output: Matrix;
}

export async function forwardTrace(mlp: Mlp, x: Matrix, gemm: Gemm): Promise<ForwardTrace> {
  const inputs: Matrix[] = [];
  const derivatives: Matrix[] = [];
  let a = x;
  for (const layer of mlp.layers) {
    inputs.push(a);
    const z = await preActivation(layer, a, gemm);
    derivatives.push({
      rows: z.rows,
      cols: z.cols,
      data: activationDerivative(layer.activation, z.data, new Float32Array(z.data.length)),
    });
    a = { rows: z.rows, cols: z.cols, data: applyActivation(layer.activation, z.data) };
  }
  return { inputs, derivatives, output: a };
}
