import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type * as Ort from 'onnxruntime-node';
import type { Gemm, GemmOptions, GraphSession } from '../gemm/gemm.js';
import { productShape } from '../gemm/gemm.js';
import { gemmModelBytes, graphSession } from '../gemm/gemm-model.js';
import { createOrtWebGemm, ORT_WEB_FILES } from '../gemm/ort-web-gemm.js';
import { matmulTs, tsGemm } from '../gemm/ts-gemm.js';
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
  // an optional dependency: imported on first use, so ecprune loads where it did not install
  const ort: typeof Ort = await import('onnxruntime-node');
  const sessionOptions: Ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads > 0 ? threads : os.availableParallelism(),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3, // errors only: its warnings (unused initializers, ...) are not for our users
  };
  const sessions = new Map<string, Promise<Ort.InferenceSession>>();
  const session = (transA: boolean, transB: boolean) => {
    const key = `${+transA}${+transB}`;
    let s = sessions.get(key);
    if (s === undefined) {
      s = ort.InferenceSession.create(gemmModelBytes(transA, transB), sessionOptions);
      sessions.set(key, s);
    }
    return s;
  };
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

/** Why a backend could not start, in one line (an import error's first line names the package). */
function firstLine(error: unknown): string {
  return String(error instanceof Error ? error.message : error).split('\n')[0];
}

/**
 * The fastest backend that starts here: onnxruntime-node, else onnxruntime-web's WebAssembly
 * build, else the TS loop. Both onnxruntime packages are optional dependencies (onnxruntime-node's
 * install script fails offline, and npm then leaves it out), so each fallback says so in one line.
 */
export async function createNodeGemm(onFallback: (line: string) => void): Promise<Gemm> {
  let nodeError: unknown;
  try {
    return await createOrtGemm();
  } catch (error) {
    nodeError = error;
  }
  const reason =
    (nodeError as { code?: string }).code === 'ERR_MODULE_NOT_FOUND'
      ? 'onnxruntime-node is not installed (npm leaves it out where its install script fails)'
      : `onnxruntime-node did not load (${firstLine(nodeError)})`;
  let wasmBinary: Uint8Array;
  try {
    // the require condition of onnxruntime-web/wasm is a file in its dist/, next to the .wasm
    const dist = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-web/wasm'));
    wasmBinary = readFileSync(path.join(dist, ORT_WEB_FILES[0]));
  } catch {
    onFallback(
      `ecprune: ${reason} and onnxruntime-web is not installed; running on the TypeScript GEMM (slower)`,
    );
    return tsGemm;
  }
  let webError: unknown;
  const web = await createOrtWebGemm({ wasmBinary, onFallback: (error) => (webError = error) });
  onFallback(
    web === tsGemm
      ? `ecprune: ${reason} and onnxruntime-web did not start (${firstLine(webError)}); running on the TypeScript GEMM (slower)`
      : `ecprune: ${reason}; running on onnxruntime-web (WebAssembly, slower)`,
  );
  return web;
}

/** Whether `specifier` resolves from here (the package is installed), without loading it. */
function installed(specifier: string): boolean {
  try {
    createRequire(import.meta.url).resolve(specifier);
    return true;
  } catch {
    return false;
  }
}

/**
 * The Node default backend (createNodeGemm) started on first use, so commands that never multiply
 * pay nothing and a fallback line appears only when a computation needs the backend.
 */
export function lazyOrtGemm(onFallback = (line: string) => console.error(line)): Gemm {
  let backend: Promise<Gemm> | undefined;
  let startedName: string | undefined;
  const started = () => {
    backend ??= createNodeGemm(onFallback).then((gemm) => {
      startedName = gemm.name;
      return gemm;
    });
    return backend;
  };
  // the calibration pass asks before starting whether whole graphs can run: only onnxruntime can
  const runsGraphs = installed('onnxruntime-node') || installed('onnxruntime-web/wasm');
  const createSession = async (model: Uint8Array) => {
    const gemm = await started();
    if (gemm.createSession === undefined) {
      throw new Error(`${gemm.name} runs no ONNX graphs; rerun with --no-graph`);
    }
    return gemm.createSession(model);
  };
  return {
    get name() {
      return startedName ?? 'onnxruntime (not started yet)';
    },
    async matmul(a, b, options) {
      return (await started()).matmul(a, b, options);
    },
    ...(runsGraphs ? { createSession } : {}),
    async dispose() {
      if (backend) await (await backend).dispose?.();
      backend = undefined;
    },
  };
}
