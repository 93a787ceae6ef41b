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
  /**
   * Backends that run ONNX graphs (onnxruntime) also compile a whole model for repeated runs; the
   * calibration pass then runs each batch as one graph (graph/emit/calibration.ts) instead of many GEMMs.
   */
  createSession?(model: Uint8Array): Promise<GraphSession>;
  /**
   * false: the calibration pass runs GEMM by GEMM even though the backend runs graphs (a frozen
   * prefix still runs as a graph: it has no other way to run)
   */
  readonly calibrationGraphs?: boolean;
  /** Frees native resources; the backend must not be used afterwards. */
  dispose?(): Promise<void>;
}

/** A float32 tensor fed to a graph: row-major `data` of shape `dims`. */
export interface GraphTensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** One compiled ONNX model (float32 inputs and outputs). */
export interface GraphSession {
  /** Runs the model; returns the named outputs (fresh arrays, owned by the caller). */
  run(
    feeds: Readonly<Record<string, GraphTensor>>,
    outputs: readonly string[],
  ): Promise<Record<string, Float32Array>>;
  release(): Promise<void>;
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

/**
 * The same backend with its calibration pass GEMM by GEMM, `forward`, `sensitivity` and
 * `statistics` timed separately (`--no-graph`).
 */
export function withoutGraphs(gemm: Gemm): Gemm {
  return {
    name: gemm.name,
    matmul: (a, b, options) => gemm.matmul(a, b, options),
    ...(gemm.createSession && { createSession: (model: Uint8Array) => gemm.createSession!(model) }),
    calibrationGraphs: false,
  };
}
