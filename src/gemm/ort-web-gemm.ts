/**
 * GEMM on onnxruntime-web's WebAssembly backend: the browser counterpart of src/node/ort-gemm.ts,
 * running the same one-node Gemm model. Browser-safe; it also runs in Node (given `wasmBinary`).
 */

import { type Matrix, matrix } from '../model/matrix.js';
import type { Gemm, GemmOptions, GraphSession } from './gemm.js';
import { productShape } from './gemm.js';
import { gemmModelBytes, graphSession } from './gemm-model.js';
import { matmulTs, tsGemm } from './ts-gemm.js';

type Ort = typeof import('onnxruntime-web/wasm');
type Session = import('onnxruntime-web/wasm').InferenceSession;

/** The files of onnxruntime-web/dist that a page must serve (next to each other) for this backend. */
export const ORT_WEB_FILES = ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs'] as const;

export interface OrtWebGemmOptions {
  /** URL prefix (ending in '/') the ORT_WEB_FILES are served from; no CDN is ever used */
  readonly wasmPaths?: string;
  /** the .wasm's bytes instead of fetching it (Node, where fetch cannot read files) */
  readonly wasmBinary?: Uint8Array;
  /** wasm threads; default 1 (more needs a cross-origin-isolated page: COOP + COEP headers) */
  readonly threads?: number;
  /** products with fewer multiply-adds go to the TS loop (not worth the call); default 64³ */
  readonly smallFlops?: number;
  /** told why, when onnxruntime-web does not start and the TS loop is returned instead */
  readonly onFallback?: (error: unknown) => void;
}

/**
 * Starts onnxruntime-web (loads the wasm, builds one session as a check) and returns its GEMM, or
 * `tsGemm` when that fails (no WebAssembly, the files not served, ...).
 */
export async function createOrtWebGemm(options: OrtWebGemmOptions = {}): Promise<Gemm> {
  const sessions = new Map<string, Promise<Session>>();
  const sessionOptions = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' } as const;
  let ort: Ort;
  const session = (transA: boolean, transB: boolean) => {
    const key = `${+transA}${+transB}`;
    let s = sessions.get(key);
    if (s === undefined) {
      s = ort.InferenceSession.create(gemmModelBytes(transA, transB), sessionOptions);
      sessions.set(key, s);
    }
    return s;
  };
  try {
    ort = await import('onnxruntime-web/wasm');
    ort.env.wasm.numThreads = options.threads ?? 1;
    if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths;
    if (options.wasmBinary !== undefined) ort.env.wasm.wasmBinary = options.wasmBinary;
    await session(false, false);
  } catch (error) {
    options.onFallback?.(error);
    return tsGemm;
  }
  const smallFlops = options.smallFlops ?? 64 * 64 * 64;
  return {
    name: 'onnxruntime-web',
    async matmul(a: Matrix, b: Matrix, gemmOptions: GemmOptions = {}) {
      const [m, k, n] = productShape(a, b, gemmOptions);
      if (m === 0 || n === 0 || k === 0) return matrix(m, n);
      if (m * k * n < smallFlops) return matmulTs(a, b, gemmOptions);
      const s = await session(!!gemmOptions.transA, !!gemmOptions.transB);
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
