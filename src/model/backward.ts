import type { Gemm } from '../gemm/gemm.js';
import type { ForwardTrace } from './forward.js';
import type { Matrix } from './matrix.js';
import type { Mlp } from './mlp.js';

/** Elementwise a .* b into a (same shapes). */
function multiplyInPlace(a: Matrix, b: Matrix): Matrix {
  const x = a.data;
  const y = b.data;
  for (let i = 0; i < x.length; i++) x[i] *= y[i];
  return a;
}

/**
 * Backpropagates cotangents from the output to every layer's pre-activation.
 *
 * `outputCotangent` holds R rows per sample, sample-major (row n*R + k is the k-th cotangent of
 * sample n), each a vector v in output space (n_L). For layer l the result row is
 * v^T dy/dz_l for that sample (B*R x n_l). With R = 1 and v = dL/dy this is the ordinary gradient;
 * with R = K one-hot rows it is the full Jacobian of the output with respect to z_l.
 * `visit(l, g)` receives each layer's cotangent as soon as it is known, so callers can reduce it
 * (to sensitivities or weight gradients) without keeping every layer's in memory.
 */
export async function backpropagate(
  mlp: Mlp,
  trace: ForwardTrace,
  outputCotangent: Matrix,
  gemm: Gemm,
  visit: (layer: number, cotangent: Matrix) => Promise<void> | void,
): Promise<void> {
  const batch = trace.output.rows;
  const perSample = outputCotangent.rows / batch;
  let g = outputCotangent;
  for (let l = mlp.layers.length - 1; l >= 0; l--) {
    // dz_l = dy_l .* act'(z_l), with act' broadcast over the sample's R cotangent rows
    g =
      perSample === 1
        ? multiplyInPlace(g, trace.derivatives[l])
        : multiplyRepeated(g, trace.derivatives[l], perSample);
    await visit(l, g);
    if (l > 0) g = await gemm.matmul(g, mlp.layers[l].weight); // (B*R x n_l)(n_l x n_{l-1})
  }
}

/** g (B*R x n) .* d (B x n), each row of d applied to R consecutive rows of g. */
function multiplyRepeated(g: Matrix, d: Matrix, repeat: number): Matrix {
  const n = d.cols;
  for (let s = 0; s < d.rows; s++) {
    const dRow = s * n;
    for (let r = 0; r < repeat; r++) {
      const gRow = (s * repeat + r) * n;
      for (let c = 0; c < n; c++) g.data[gRow + c] *= d.data[dRow + c];
    }
  }
  return g;
}

/** Σ_r g[(n,r), i]^2: sum of squares over each sample's R cotangent rows (B x n). */
export function sumSquaresPerSample(g: Matrix, repeat: number): Matrix {
  const batch = g.rows / repeat;
  const n = g.cols;
  const out = new Float32Array(batch * n);
  for (let s = 0; s < batch; s++) {
    for (let r = 0; r < repeat; r++) {
      const gRow = (s * repeat + r) * n;
      for (let c = 0; c < n; c++) {
        const v = g.data[gRow + c];
        out[s * n + c] += v * v;
      }
    }
  }
  return { rows: batch, cols: n, data: out };
}

/** K one-hot cotangents per sample (B*K x K): row n*K + k is e_k. */
export function oneHotCotangents(batch: number, outputs: number): Matrix {
  const data = new Float32Array(batch * outputs * outputs);
  for (let s = 0; s < batch; s++) for (let k = 0; k < outputs; k++) data[(s * outputs + k) * outputs + k] = 1;
  return { rows: batch * outputs, cols: outputs, data };
}
