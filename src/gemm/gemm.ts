import type { Matrix } from '../model/matrix.js';

export interface GemmOptions {
  /** use A^T instead of A */
  readonly transA?: boolean;
  /** use B^T instead of B */
  readonly transB?: boolean;
}

/**
 * The one matrix-product abstraction every computation goes through: C = op(A) · op(B).
 * Asynchronous because the fast backends (onnxruntime) are; the pure-TS backend resolves at once.
 */
export interface Gemm {
  readonly name: string;
  matmul(a: Matrix, b: Matrix, options?: GemmOptions): Promise<Matrix>;
  /** Frees native resources; the backend must not be used afterwards. */
  dispose?(): Promise<void>;
}

/** The shapes of op(A) and op(B), checked to be compatible: [m, k, n]. */
export function productShape(a: Matrix, b: Matrix, options: GemmOptions = {}): [number, number, number] {
  const [m, k] = options.transA ? [a.cols, a.rows] : [a.rows, a.cols];
  const [k2, n] = options.transB ? [b.cols, b.rows] : [b.rows, b.cols];
  if (k !== k2) {
    throw new RangeError(
      `matmul shapes do not fit: op(A) is ${m}x${k}, op(B) is ${k2}x${n} (transA=${!!options.transA}, transB=${!!options.transB})`,
    );
  }
  return [m, k, n];
}
