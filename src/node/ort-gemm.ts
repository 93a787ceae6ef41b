import * as ort from 'onnxruntime-node';
import type { Gemm, GemmOptions } from '../gemm/gemm.js';
import { productShape } from '../gemm/gemm.js';
import { gemmModelBytes } from '../gemm/gemm-model.js';
import { type Matrix, matrix } from '../model/matrix.js';

/**
 * GEMM on onnxruntime-node's CPU provider (MLAS kernels, all cores): ~25-40x the pure-TS loop on a
 * 2-core machine. Products too small to amortise the ~36 µs call overhead go to the TS loop.
 */
export async function createOrtGemm(threads = 0, smallFlops = 64 * 64 * 64): Promise<Gemm> {
  const sessions = new Map<string, Promise<ort.InferenceSession>>();
  const session = (transA: boolean, transB: boolean) => {
    const key = `${+transA}${+transB}`;
    let s = sessions.get(key);
    if (s === undefined) {
      s = ort.InferenceSession.create(gemmModelBytes(transA, transB), {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
      sessions.set(key, s);
    }
    return s;
  };
  const { matmulTs } = await import('../gemm/ts-gemm.js');
  return {
    name: 'onnxruntime-node',
    async matmul(a: Matrix, b: Matrix, options: GemmOptions = {}) {
      const [m, k, n] = productShape(a, b, options);
      if (m === 0 || n === 0) return matrix(m, n);
      if (k === 0) return matrix(m, n);
      if (m * k * n < smallFlops) return matmulTs(a, b, options);
      const s = await session(!!options.transA, !!options.transB);
      const result = await s.run({
        A: new ort.Tensor('float32', a.data, [a.rows, a.cols]),
        B: new ort.Tensor('float32', b.data, [b.rows, b.cols]),
      });
      const y = result.Y;
      const out = matrix(m, n, y.data as Float32Array);
      return out;
    },
    async dispose() {
      for (const s of sessions.values()) await (await s).release();
      sessions.clear();
    },
  };
}

/** An onnxruntime-node GEMM created on first use (so commands that never multiply pay nothing). */
export function lazyOrtGemm(): Gemm {
  let backend: Promise<Gemm> | undefined;
  return {
    name: 'onnxruntime-node',
    async matmul(a, b, options) {
      backend ??= createOrtGemm();
      return (await backend).matmul(a, b, options);
    },
    async dispose() {
      if (backend) await (await backend).dispose?.();
      backend = undefined;
    },
  };
}
