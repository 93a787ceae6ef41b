import { type Matrix, matrix, transpose } from '../model/matrix.js';
import { type Gemm, type GemmOptions, productShape } from './gemm.js';

/**
 * C = op(A) · op(B) in plain TypeScript: the portable backend (browsers, any runtime) and the
 * oracle the fast backends are tested against. Both operands are brought to the layout whose
 * inner loop walks contiguous memory: C[i,:] += A[i,p] * B[p,:].
 */
export function matmulTs(a: Matrix, b: Matrix, options: GemmOptions = {}): Matrix {
  const [m, k, n] = productShape(a, b, options);
  const left = options.transA ? transpose(a) : a;
  const right = options.transB ? transpose(b) : b;
  const out = matrix(m, n);
  const A = left.data;
  const B = right.data;
  const C = out.data;
  for (let i = 0; i < m; i++) {
    const rowC = i * n;
    for (let p = 0; p < k; p++) {
      const aip = A[i * k + p];
      if (aip === 0) continue; // pruned weights and ReLU zeros are common: skip the whole row
      const rowB = p * n;
      for (let j = 0; j < n; j++) C[rowC + j] += aip * B[rowB + j];
    }
  }
  return out;
}

export const tsGemm: Gemm = {
  name: 'ts',
  matmul: async (a, b, options) => matmulTs(a, b, options),
};
