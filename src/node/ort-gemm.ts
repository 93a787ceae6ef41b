import os from 'node:os';
import * as ort from 'onnxruntime-node';
import type { Gemm, GemmOptions, GraphSession } from '../gemm/gemm.js';
import { productShape } from '../gemm/gemm.js';
import { gemmModelBytes, graphSession } from '../gemm/gemm-model.js';
import { type Matrix, matrix } from '../model/matrix.js';

// onnxruntime-node 1.30 starts a telemetry system when it creates its environment (at the first
// session): a debug log `mat-debug-<pid>.log` and a `.ses` file in the temp folder, a device id and
// an event database under ~/.cache/Microsoft/DeveloperTools, and HTTPS uploads wherever it finds a
// CA bundle. Its switch is read at that moment, so setting it here, before any session, turns all
// of that off (test/reliability/no-stray-files.test.ts).
process.env.ORT_DISABLE_TELEMETRY = '1';

/**
 * GEMM on onnxruntime-node's CPU provider (MLAS kernels): ~25-40x the pure-TS loop on a 2-core
 * machine. Products too small to amortise the ~36 µs call overhead go to the TS loop.
 *
 * `threads` defaults to the machine's logical cores (os.availableParallelism()), not to
 * onnxruntime's own default (0): on the 2-vCPU VM of bench/ANALYSIS.md that default started one
 * worker and ran every GEMM on one core (2048³: 114-184 vs 239-313 GFLOP/s with 2 threads).
 */
export async function createOrtGemm(threads = 0, smallFlops = 64 * 64 * 64): Promise<Gemm> {
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads > 0 ? threads : os.availableParallelism(),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3, // errors only: its warnings (unused initializers, ...) are not for our users
  };
  const sessions = new Map<string, Promise<ort.InferenceSession>>();
  const session = (transA: boolean, transB: boolean) => {
    const key = `${+transA}${+transB}`;
    let s = sessions.get(key);
    if (s === undefined) {
      s = ort.InferenceSession.create(gemmModelBytes(transA, transB), sessionOptions);
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
      return matrix(m, n, result.Y.data as Float32Array);
    },
    async createSession(model: Uint8Array): Promise<GraphSession> {
      const session = await ort.InferenceSession.create(model, sessionOptions);
      return graphSession(session, (data, dims) => new ort.Tensor('float32', data, dims));
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
  const started = () => {
    backend ??= createOrtGemm();
    return backend;
  };
  return {
    name: 'onnxruntime-node',
    async matmul(a, b, options) {
      return (await started()).matmul(a, b, options);
    },
    async createSession(model) {
      return (await started()).createSession!(model);
    },
    async dispose() {
      if (backend) await (await backend).dispose?.();
      backend = undefined;
    },
  };
}
