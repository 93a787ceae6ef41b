/**
 * Benchmark of the `.ecsr` sparse runtime against the dense paths: file sizes, batch-1 latency and
 * batch-256 throughput, for random magnitude-pruned ReLU MLPs. Not a test (timings are machine- and
 * load-dependent). Run: `npx tsx bench/sparse-runtime.ts`; `benchSparseRuntime()` returns the
 * markdown for a later `npm run bench`.
 */
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { tsGemm } from '../src/gemm/ts-gemm.js';
import { writeEcsr } from '../src/io/ecsr.js';
import { writeOnnx } from '../src/io/onnx.js';
import { forward } from '../src/model/forward.js';
import { matrix } from '../src/model/matrix.js';
import type { Mlp } from '../src/model/mlp.js';
import { loadEcsr } from '../src/runtime/index.js';

export interface SparseBenchOptions {
  readonly models?: readonly (readonly number[])[];
  readonly sparsities?: readonly number[];
  readonly batch?: number;
  /** Minimum measuring time per engine and batch size, after warm-up. */
  readonly minMs?: number;
}

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** He-uniform ReLU MLP (identity output layer), each layer magnitude-pruned to `sparsity`. */
function prunedReluMlp(sizes: readonly number[], sparsity: number, seed: number): Mlp {
  const r = rng(seed);
  return {
    layers: sizes.slice(1).map((nOut, l) => {
      const nIn = sizes[l];
      const scale = Math.sqrt(6 / nIn);
      const data = Float32Array.from({ length: nOut * nIn }, () => (2 * r() - 1) * scale);
      const sorted = Float32Array.from(data, Math.abs).sort();
      const threshold = sorted[Math.min(sorted.length - 1, Math.floor(sparsity * sorted.length))];
      for (let i = 0; i < data.length; i++) if (Math.abs(data[i]) < threshold) data[i] = 0;
      return {
        weight: matrix(nOut, nIn, data),
        bias: Float32Array.from({ length: nOut }, () => 0.1 * (r() - 0.5)),
        activation: l === sizes.length - 2 ? { kind: 'identity' as const } : { kind: 'relu' as const },
      };
    }),
  };
}

/**
 * Milliseconds per call of each function: the median of a block of calls (at least `minRuns` and
 * `minMs / blocks`), blocks repeated `blocks` times with the engines in turn, best block kept.
 * Blocks rather than alternating single calls because onnxruntime's thread pool spin-waits after a
 * run and would slow whatever ran next; the best of several blocks because the medians are still
 * shifted by other processes on a busy machine.
 */
async function blockMedians(
  fns: readonly (() => unknown)[],
  minMs: number,
  minRuns: number,
  blocks = 3,
): Promise<number[]> {
  const best = fns.map(() => Number.POSITIVE_INFINITY);
  for (let block = 0; block < blocks; block++) {
    for (const [f, fn] of fns.entries()) {
      // warm-up: JIT and ORT arenas on the first block, the previous engine's spinning threads after
      const warmUntil = performance.now() + (block === 0 ? 200 : 20);
      for (let i = 0; i < 3 || performance.now() < warmUntil; i++) await fn();
      const times: number[] = [];
      const end = performance.now() + minMs / blocks;
      while (times.length < minRuns || performance.now() < end) {
        const t0 = performance.now();
        await fn();
        times.push(performance.now() - t0);
      }
      best[f] = Math.min(best[f], times.sort((a, b) => a - b)[times.length >> 1]);
    }
  }
  return best;
}

interface Engine {
  readonly name: string;
  run(x: Float32Array, batch: number): Promise<Float32Array> | Float32Array;
  release?(): Promise<void>;
}

async function ortEngine(onnx: Uint8Array, nIn: number, threads: number): Promise<Engine> {
  const session = await ort.InferenceSession.create(onnx, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const [input] = session.inputNames;
  const [output] = session.outputNames;
  return {
    name: `onnxruntime-node, ${threads} thread${threads === 1 ? '' : 's'}`,
    async run(x, batch) {
      const result = await session.run({ [input]: new ort.Tensor('float32', x, [batch, nIn]) });
      return result[output].data as Float32Array;
    },
    release: () => session.release(),
  };
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const fixed = (v: number, digits = 1) => v.toFixed(digits);

export async function benchSparseRuntime(options: SparseBenchOptions = {}): Promise<string> {
  const models = options.models ?? [
    [784, 300, 100, 10],
    [784, 1024, 1024, 10],
  ];
  const sparsities = options.sparsities ?? [0.9, 0.95];
  const batch = options.batch ?? 256;
  const minMs = options.minMs ?? 1500;
  const cores = os.cpus().length;
  const loadBefore = os.loadavg()[0];

  const sizeRows: string[] = [];
  const speedRows: string[] = [];
  for (const sizes of models) {
    for (const sparsity of sparsities) {
      const mlp = prunedReluMlp(sizes, sparsity, 1);
      const label = sizes.join('-');
      const params = mlp.layers.reduce((n, l) => n + l.weight.data.length + l.bias.length, 0);
      const nnz = mlp.layers.reduce(
        (n, l) => n + l.weight.data.reduce((c, w) => c + (w !== 0 ? 1 : 0), 0),
        0,
      );
      const weights = mlp.layers.reduce((n, l) => n + l.weight.data.length, 0);
      const dense = 4 * params;
      const ecsr32 = writeEcsr(mlp);
      const ecsr16 = writeEcsr(mlp, { valueType: 'float16' });
      const onnx = writeOnnx(mlp, undefined, {});
      sizeRows.push(
        `| ${label} | ${fixed(100 * sparsity, 0)}% | ${nnz} / ${weights} | ${kb(dense)} | ${kb(onnx.length)} | ` +
          `${kb(ecsr32.length)} (${fixed(dense / ecsr32.length)}×) | ${kb(ecsr16.length)} (${fixed(dense / ecsr16.length)}×) |`,
      );

      const sparse = loadEcsr(ecsr32);
      const denseTs: Engine = {
        name: 'dense forward, tsGemm',
        run: async (x, b) => (await forward(mlp, matrix(b, sizes[0], x), tsGemm)).data,
      };
      const fast: Engine[] = [
        { name: 'ecprune/runtime (.ecsr)', run: (x, b) => sparse.run(x, b) },
        await ortEngine(onnx, sizes[0], 1),
        ...(cores > 1 ? [await ortEngine(onnx, sizes[0], cores)] : []),
      ];
      const r = rng(2);
      const x1 = Float32Array.from({ length: sizes[0] }, r);
      const xb = Float32Array.from({ length: batch * sizes[0] }, r);
      const reference = (await denseTs.run(xb, batch)) as Float32Array;
      const latencies = await blockMedians(
        fast.map((e) => () => e.run(x1, 1)),
        minMs,
        200,
      );
      const batchMs = await blockMedians(
        fast.map((e) => () => e.run(xb, batch)),
        minMs,
        10,
      );
      // the TS baseline is ~100x slower: one block, few runs
      const [denseLatency] = await blockMedians([() => denseTs.run(x1, 1)], 0, 10, 1);
      const [denseBatchMs] = await blockMedians([() => denseTs.run(xb, batch)], 0, 3, 1);
      const results = [];
      for (const [e, engine] of fast.entries()) {
        const y = await engine.run(xb, batch);
        const maxDiff = y.reduce((m, v, i) => Math.max(m, Math.abs(v - reference[i])), 0);
        results.push({
          name: engine.name,
          latency: latencies[e],
          throughput: (1000 * batch) / batchMs[e],
          maxDiff,
        });
        await engine.release?.();
      }
      results.splice(1, 0, {
        name: denseTs.name,
        latency: denseLatency,
        throughput: (1000 * batch) / denseBatchMs,
        maxDiff: 0,
      });
      const ort1 = results[2];
      for (const res of results) {
        speedRows.push(
          `| ${label} | ${fixed(100 * sparsity, 0)}% | ${res.name} | ${fixed(1000 * res.latency)} | ` +
            `${fixed(ort1.latency / res.latency, 2)}× | ${Math.round(res.throughput)} | ` +
            `${fixed(res.throughput / ort1.throughput, 2)}× | ${res.maxDiff.toExponential(1)} |`,
        );
      }
    }
  }

  return [
    '## Sparse runtime benchmark',
    '',
    `- Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${cores} cores, ${os.platform()} ${os.arch()}, Node ${process.version}`,
    `- Date: ${new Date().toISOString()}`,
    '- Command: `npx tsx bench/sparse-runtime.ts`',
    `- Load average (1 min) at start / end: ${fixed(loadBefore, 2)} / ${fixed(os.loadavg()[0], 2)} on ${cores} cores` +
      ' (other processes add noise: each figure is the best of 3 block medians, engines in turn)',
    `- Models: random He-uniform ReLU MLPs, every layer magnitude-pruned to the sparsity. Latency: median` +
      ` batch-1 call after warm-up; throughput: samples/s at batch ${batch} (median batch time). Ratios are relative to` +
      ' onnxruntime-node with 1 thread on the dense model (> 1× = better). The sparse runtime is single-threaded.',
    '',
    '### File size',
    '',
    '| model | sparsity | weights kept | dense float32 | dense .onnx | .ecsr float32 (× smaller) | .ecsr float16 (× smaller) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...sizeRows,
    '',
    '### Speed',
    '',
    `| model | sparsity | engine | batch-1 latency (µs) | latency vs ORT-1 | batch-${batch} samples/s | throughput vs ORT-1 | max abs diff vs tsGemm |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...speedRows,
    '',
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(await benchSparseRuntime());
}
