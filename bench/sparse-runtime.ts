/**
 * Benchmark of the `.ecsr` sparse runtime against the dense paths: file sizes, batch-1 latency and
 * batch-256 throughput, for random magnitude-pruned ReLU MLPs. Batch-1 latency is measured on two
 * kinds of input, because the runtime skips the weights of zero inputs: uniform random pixels (no
 * zeros) and real MNIST test digits (~81% zero pixels). Not a test (timings are machine- and
 * load-dependent). Run: `npx tsx bench/sparse-runtime.ts`; `benchSparseRuntime()` returns the
 * markdown for a later `npm run bench`.
 */
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { build } from 'esbuild';
import * as ort from 'onnxruntime-node';
import { tsGemm } from '../src/gemm/ts-gemm.js';
import { graphFromMlp } from '../src/graph/mlp-graph.js';
import { forward } from '../src/graph/run.js';
import { writeEcsr } from '../src/io/ecsr.js';
import { writeOnnx } from '../src/io/onnx.js';
import { matrix } from '../src/model/matrix.js';
import type { Mlp } from '../src/model/mlp.js';
import { openNamedDataset } from '../src/node/datasets.js';
import { loadEcsr } from '../src/runtime/index.js';

export interface SparseBenchOptions {
  readonly models?: readonly (readonly number[])[];
  readonly sparsities?: readonly number[];
  readonly batch?: number;
  /** Minimum measuring time per engine and batch size, after warm-up. */
  readonly minMs?: number;
}

/**
 * Distinct batch-1 inputs per kind, used in turn: one input repeated would let the branch predictor
 * learn its zero pattern, which a stream of real inputs does not allow.
 */
const POOL = 64;

/** The first `count` MNIST test digits (784 pixels in [0, 1], as `mnist:test` serves them), row-major. */
async function mnistDigits(count: number): Promise<Float32Array> {
  const dataset = await openNamedDataset('mnist', 'test');
  for await (const batch of dataset.batches(count)) return batch.x.data.slice(0, count * 784);
  throw new Error('mnist:test is empty');
}

const zeroShare = (x: Float32Array) => x.reduce((n, v) => n + (v === 0 ? 1 : 0), 0) / x.length;

/** The share of zeros in the input of each layer (the pixels, then each hidden activation). */
async function zerosEnteringLayers(mlp: Mlp, x: Float32Array, batch: number): Promise<number[]> {
  const shares = [zeroShare(x)];
  for (let l = 1; l < mlp.layers.length; l++) {
    const hidden = await forward(
      { layers: mlp.layers.slice(0, l) },
      matrix(batch, x.length / batch, x),
      tsGemm,
    );
    shares.push(zeroShare(hidden.data));
  }
  return shares;
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

/** Batch size of the middle column of the throughput table. */
const MID_BATCH = 32;

/**
 * What a timing block runs: batch-1 calls on one kind of pooled input in turn, or calls on the
 * batch input (`batch`), or on its first MID_BATCH samples (`midBatch`).
 */
type Workload = 'random' | 'mnist' | 'midBatch' | 'batch';

/** Row-major pools of `POOL` batch-1 inputs of each kind, and the batch input. */
interface Inputs {
  readonly random: Float32Array;
  readonly mnist: Float32Array;
  readonly batch: Float32Array;
  readonly batchSize: number;
}

interface Engine {
  readonly name: string;
  /** One timing block of `workload` (see `medianCallMs`): the median milliseconds per call. */
  time(workload: Workload, ms: number, minRuns: number, warmMs: number): Promise<number>;
  /** The outputs of every pooled input (batch 1, concatenated) and of the batch input. */
  outputs(): Promise<Record<Workload, Float32Array>>;
  release?(): Promise<void>;
}

/**
 * One timing block: calls for `warmMs` (JIT and ORT arenas on the first block, the previous
 * engine's spinning threads after), then at least `minRuns` calls and `ms`; the median call.
 */
async function medianCallMs(fn: () => unknown, ms: number, minRuns: number, warmMs: number): Promise<number> {
  const warmUntil = performance.now() + warmMs;
  for (let i = 0; i < 3 || performance.now() < warmUntil; i++) await fn();
  const times: number[] = [];
  const end = performance.now() + ms;
  while (times.length < minRuns || performance.now() < end) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[times.length >> 1];
}

/**
 * Milliseconds per call of each (engine, workload): the median of a block of calls (at least
 * `minRuns` and `minMs / blocks`), blocks repeated `blocks` times with the engines in turn, best
 * block kept. Blocks rather than alternating single calls because onnxruntime's thread pool
 * spin-waits after a run and would slow whatever ran next; the best of several blocks because the
 * medians are still shifted by other processes on a busy machine.
 */
async function blockMedians(
  timed: readonly (readonly [Engine, Workload])[],
  minMs: number,
  minRuns: number,
  blocks = 3,
): Promise<number[]> {
  const best = timed.map(() => Number.POSITIVE_INFINITY);
  for (let block = 0; block < blocks; block++) {
    for (const [t, [engine, workload]] of timed.entries()) {
      const ms = await engine.time(workload, minMs / blocks, minRuns, block === 0 ? 200 : 20);
      best[t] = Math.min(best[t], ms);
    }
  }
  return best;
}

const samplesOf = (pool: Float32Array, nIn: number) =>
  Array.from({ length: pool.length / nIn }, (_, i) => pool.subarray(i * nIn, (i + 1) * nIn));

/** An engine timed in this thread. */
function localEngine(
  name: string,
  nIn: number,
  run: (x: Float32Array, batch: number) => Promise<Float32Array> | Float32Array,
  inputs: Inputs,
  release?: () => Promise<void>,
): Engine {
  const pools = { random: samplesOf(inputs.random, nIn), mnist: samplesOf(inputs.mnist, nIn) };
  /** Calls `run` on the pool's samples in turn. */
  const cycling = (pool: readonly Float32Array[]) => {
    let next = 0;
    return () => run(pool[next++ % pool.length], 1);
  };
  const calls = {
    random: cycling(pools.random),
    mnist: cycling(pools.mnist),
    midBatch: () => run(inputs.batch.subarray(0, MID_BATCH * nIn), MID_BATCH),
    batch: () => run(inputs.batch, inputs.batchSize),
  };
  const concatenated = async (pool: readonly Float32Array[]) => {
    const outputs = [];
    for (const x of pool) outputs.push(await run(x, 1));
    return Float32Array.from(outputs.flatMap((y) => Array.from(y)));
  };
  return {
    name,
    time: (workload, ms, minRuns, warmMs) => medianCallMs(calls[workload], ms, minRuns, warmMs),
    outputs: async () => ({
      random: await concatenated(pools.random),
      mnist: await concatenated(pools.mnist),
      midBatch: await calls.midBatch(),
      batch: await calls.batch(),
    }),
    release,
  };
}

async function ortEngine(onnx: Uint8Array, nIn: number, threads: number, inputs: Inputs): Promise<Engine> {
  const session = await ort.InferenceSession.create(onnx, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const [input] = session.inputNames;
  const [output] = session.outputNames;
  const run = async (x: Float32Array, batch: number) => {
    const result = await session.run({ [input]: new ort.Tensor('float32', x, [batch, nIn]) });
    return result[output].data as Float32Array;
  };
  const name = `onnxruntime-node, ${threads} thread${threads === 1 ? '' : 's'}`;
  return localEngine(name, nIn, run, inputs, () => session.release());
}

/**
 * The worker that times the runtime (`isolatedRuntimeEngine`), bundled with src/runtime by
 * esbuild. It repeats `localEngine` and `medianCallMs` because it runs in another isolate, on
 * plain JavaScript (no tsx there, see below).
 */
const RUNTIME_WORKER = `
import { parentPort, workerData } from 'node:worker_threads';
import { loadEcsr } from './index.ts';

const { bytes, inputs } = workerData;
const model = loadEcsr(bytes);
const samples = (pool) =>
  Array.from({ length: pool.length / model.inputSize }, (_, i) =>
    pool.subarray(i * model.inputSize, (i + 1) * model.inputSize));
const pools = { random: samples(inputs.random), mnist: samples(inputs.mnist) };
const cycling = (pool) => {
  let next = 0;
  return () => model.run(pool[next++ % pool.length], 1);
};
const calls = {
  random: cycling(pools.random),
  mnist: cycling(pools.mnist),
  midBatch: () => model.run(inputs.batch.subarray(0, ${MID_BATCH} * model.inputSize), ${MID_BATCH}),
  batch: () => model.run(inputs.batch, inputs.batchSize),
};
const concatenated = (pool) => {
  const out = new Float32Array(pool.length * model.outputSize);
  pool.forEach((x, i) => out.set(model.run(x, 1), i * model.outputSize));
  return out;
};

function medianCallMs(fn, ms, minRuns, warmMs) {
  const warmUntil = performance.now() + warmMs;
  for (let i = 0; i < 3 || performance.now() < warmUntil; i++) fn();
  const times = [];
  const end = performance.now() + ms;
  while (times.length < minRuns || performance.now() < end) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[times.length >> 1];
}

parentPort.on('message', (request) => {
  parentPort.postMessage(
    request.op === 'time'
      ? medianCallMs(calls[request.workload], request.ms, request.minRuns, request.warmMs)
      : {
          random: concatenated(pools.random),
          mnist: concatenated(pools.mnist),
          midBatch: calls.midBatch(),
          batch: calls.batch(),
        },
  );
});
`;

const runtimeWorkerBundles = new Map<boolean, Promise<string>>();

/**
 * The worker bundle; `webAssembly: false` bundles an empty module in place of the WebAssembly
 * kernels, so the runtime takes its fallback, the JavaScript kernels (the "before" of the
 * WebAssembly kernels, timed alongside them).
 */
function bundledRuntimeWorker(webAssembly: boolean): Promise<string> {
  const cached = runtimeWorkerBundles.get(webAssembly);
  if (cached !== undefined) return cached;
  const bundle = build({
    plugins: webAssembly
      ? []
      : [
          {
            name: 'no-webassembly',
            setup(b) {
              b.onResolve({ filter: /wasm-kernels-binary\.js$/ }, (args) => ({
                path: args.path,
                namespace: 'no-wasm',
              }));
              b.onLoad({ filter: /.*/, namespace: 'no-wasm' }, () => ({
                contents:
                  "export const WASM_KERNELS_BASE64 = ''; export const WASM_BATCH_KERNELS_BASE64 = '';",
                loader: 'js',
              }));
            },
          },
        ],
    stdin: {
      contents: RUNTIME_WORKER,
      resolveDir: fileURLToPath(new URL('../src/runtime/', import.meta.url)),
      sourcefile: 'runtime-worker.js',
    },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
  }).then((result) => result.outputFiles[0].text);
  runtimeWorkerBundles.set(webAssembly, bundle);
  return bundle;
}

function request<T>(worker: Worker, message: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      worker.off('message', onMessage);
      reject(error);
    };
    const onMessage = (value: T) => {
      worker.off('error', onError);
      resolve(value);
    };
    worker.once('message', onMessage).once('error', onError).postMessage(message);
  });
}

/**
 * The runtime timed in a worker thread started without tsx, on the runtime bundled as plain
 * JavaScript: the way an application runs `ecprune/runtime`. Why not in this process: V8 skips a
 * "was this buffer detached?" check on every typed-array access for as long as no ArrayBuffer in
 * the isolate has ever been detached, and tsx's module loader detaches some when it loads CommonJS
 * packages (onnxruntime-node, protobufjs). The runtime's kernels then measured ~1.5× slower in this
 * process than in a clean one (784-1024-1024-10 at 90%, random inputs: 187 µs vs 123 µs), while
 * onnxruntime (native code) is unaffected. The in-process figure is reported as well: an
 * application that detaches buffers (transfers them to workers, grows WebAssembly memory) pays it.
 */
async function isolatedRuntimeEngine(ecsr: Uint8Array, inputs: Inputs, webAssembly = true): Promise<Engine> {
  const code = await bundledRuntimeWorker(webAssembly);
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), {
    workerData: { bytes: ecsr, inputs },
    execArgv: [],
  });
  return {
    name: `ecprune/runtime (.ecsr), clean worker${webAssembly ? '' : ', JavaScript kernels only'}`,
    time: (workload, ms, minRuns, warmMs) => request(worker, { op: 'time', workload, ms, minRuns, warmMs }),
    outputs: () => request(worker, { op: 'outputs' }),
    release: async () => {
      await worker.terminate();
    },
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
  const loads = [os.loadavg()[0]];
  const digits = await mnistDigits(POOL);
  const kinds = ['random', 'mnist'] as const;
  const workloads = [...kinds, 'midBatch', 'batch'] as const;

  const sizeRows: string[] = [];
  const speedRows: string[] = [];
  const zeroRows: string[] = [];
  const throughputRows: string[] = [];
  for (const sizes of models) {
    if (sizes[0] !== 784)
      throw new Error(`MNIST inputs need 784 inputs, the model ${sizes.join('-')} has ${sizes[0]}`);
    for (const sparsity of sparsities) {
      const mlp = prunedReluMlp(sizes, sparsity, 1);
      const label = sizes.join('-');
      const params = mlp.layers.reduce((n, l) => n + l.weight.data.length + l.bias.length, 0);
      const nnz = mlp.layers.reduce((n, l) => n + l.weight.data.filter((w) => w !== 0).length, 0);
      const weights = mlp.layers.reduce((n, l) => n + l.weight.data.length, 0);
      const dense = 4 * params;
      const ecsr32 = writeEcsr(mlp);
      const ecsr16 = writeEcsr(mlp, { valueType: 'float16' });
      const onnx = writeOnnx(graphFromMlp(mlp), undefined, {});
      sizeRows.push(
        `| ${label} | ${fixed(100 * sparsity, 0)}% | ${nnz} / ${weights} | ${kb(dense)} | ${kb(onnx.length)} | ` +
          `${kb(ecsr32.length)} (${fixed(dense / ecsr32.length)}×) | ${kb(ecsr16.length)} (${fixed(dense / ecsr16.length)}×) |`,
      );

      const r = rng(2);
      const inputs: Inputs = {
        random: Float32Array.from({ length: POOL * sizes[0] }, r),
        mnist: digits,
        batch: Float32Array.from({ length: batch * sizes[0] }, r),
        batchSize: batch,
      };
      zeroRows.push(
        `| ${label} | ${fixed(100 * sparsity, 0)}% | ` +
          (await Promise.all(kinds.map((k) => zerosEnteringLayers(mlp, inputs[k], POOL))))
            .map((shares) => shares.map((v) => `${fixed(100 * v, 0)}%`).join(' · '))
            .join(' | ') +
          ' |',
      );

      const sparse = loadEcsr(ecsr32);
      const nIn = sizes[0];
      const denseTs = localEngine(
        'dense forward, tsGemm',
        nIn,
        async (x, b) => (await forward(mlp, matrix(b, nIn, x), tsGemm)).data,
        inputs,
      );
      const fast: Engine[] = [
        await isolatedRuntimeEngine(ecsr32, inputs),
        await isolatedRuntimeEngine(ecsr32, inputs, false),
        localEngine('ecprune/runtime (.ecsr), in this tsx process', nIn, (x, b) => sparse.run(x, b), inputs),
        await ortEngine(onnx, nIn, 1, inputs),
        ...(cores > 1 ? [await ortEngine(onnx, nIn, cores, inputs)] : []),
      ];

      // every engine on both input kinds in one set of blocks, so that they share the same load
      const latencies = await blockMedians(
        kinds.flatMap((k) => fast.map((e) => [e, k] as const)),
        minMs,
        200,
      );
      const loadBefore = os.loadavg();
      const batchTimes = await blockMedians(
        (['midBatch', 'batch'] as const).flatMap((w) => fast.map((e) => [e, w] as const)),
        minMs,
        10,
      );
      const midBatchMs = batchTimes.slice(0, fast.length);
      const batchMs = batchTimes.slice(fast.length);
      // the TS baseline is ~100x slower: one block, few runs
      const denseLatency = await blockMedians(
        kinds.map((k) => [denseTs, k] as const),
        0,
        10,
        1,
      );
      const [denseBatchMs] = await blockMedians([[denseTs, 'batch']], 0, 3, 1);
      loads.push(os.loadavg()[0]);

      // accuracy: batch 1 on every pooled input of both kinds, and the batch (the panel kernel)
      const reference = await denseTs.outputs();
      const maxDiffOf = async (engine: Engine) => {
        const outputs = await engine.outputs();
        return Math.max(...workloads.map((w) => maxAbsDiff(outputs[w], reference[w])));
      };
      const results = [];
      for (const [e, engine] of fast.entries()) {
        results.push({
          name: engine.name,
          random: latencies[e],
          mnist: latencies[fast.length + e],
          throughput: (1000 * batch) / batchMs[e],
          maxDiff: await maxDiffOf(engine),
        });
        await engine.release?.();
      }
      results.splice(3, 0, {
        name: denseTs.name,
        random: denseLatency[0],
        mnist: denseLatency[1],
        throughput: (1000 * batch) / denseBatchMs,
        maxDiff: 0,
      });
      const load = [loadBefore, os.loadavg()].map((l) => l.map((v) => fixed(v, 2)).join(' ')).join(' → ');
      // samples/s at batch 1 (random inputs), MID_BATCH and `batch`, every engine timed in the same blocks
      const perSecond = fast.map((_, e) => [
        1000 / latencies[e],
        (1000 * MID_BATCH) / midBatchMs[e],
        (1000 * batch) / batchMs[e],
      ]);
      const ortIndex = fast.findIndex((e) => e.name.startsWith('onnxruntime-node'));
      const [o1, o2] = [perSecond[ortIndex], perSecond[ortIndex + 1] ?? perSecond[ortIndex]];
      for (const [e, engine] of fast.entries()) {
        const cells = perSecond[e].map(
          (v, c) => `${Math.round(v)} | ${fixed(v / o1[c], 2)}× | ${fixed(v / o2[c], 2)}×`,
        );
        throughputRows.push(
          `| ${label} | ${fixed(100 * sparsity, 0)}% | ${engine.name} | ${cells.join(' | ')} | ${load} |`,
        );
      }
      const [ort1, ort2] = [results[4], results[5] ?? results[4]];
      const vs = (base: number, v: number) => `${fixed(base / v, 2)}×`;
      for (const res of results) {
        const latency = kinds.map(
          (k) => `${fixed(1000 * res[k])} | ${vs(ort1[k], res[k])} | ${vs(ort2[k], res[k])}`,
        );
        speedRows.push(
          `| ${label} | ${fixed(100 * sparsity, 0)}% | ${res.name} | ${latency.join(' | ')} | ` +
            `${Math.round(res.throughput)} | ${fixed(res.throughput / ort1.throughput, 2)}× | ` +
            `${res.maxDiff.toExponential(1)} |`,
        );
      }
    }
  }

  const ort2Name = cores > 1 ? `ORT-${cores}` : 'ORT-1';
  return [
    '## Sparse runtime benchmark',
    '',
    `- Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${cores} cores, ${os.platform()} ${os.arch()}, Node ${process.version}`,
    `- Date: ${new Date().toISOString()}`,
    '- Command: `npx tsx bench/sparse-runtime.ts`',
    `- Load average (1 min) at the start and after each model: ${loads.map((v) => fixed(v, 2)).join(', ')} on ${cores} cores` +
      ' (other processes add noise: each figure is the best of 3 block medians, engines in turn)',
    `- Models: random He-uniform ReLU MLPs, every layer magnitude-pruned to the sparsity. Batch-1 latency: median` +
      ` call after warm-up, the engines taking the same ${POOL} inputs in turn, either uniform random pixels in [0, 1)` +
      ` ("random", no zeros) or the first ${POOL} MNIST test digits ("MNIST", pixels in [0, 1] as \`mnist:test\` serves them).` +
      ` Throughput: samples/s at batch ${batch} of random inputs (median batch time). Ratios are relative to` +
      ` onnxruntime-node on the dense model with 1 thread (ORT-1) and ${cores} threads (${ort2Name}); > 1× = better.` +
      ' The sparse runtime is single-threaded; at batch 1 it skips the weights of zero inputs (CSC scatter), so its' +
      ' latency depends on the share of zeros entering each layer (table below). Max abs diff: over the batch-256' +
      ` outputs and the batch-1 outputs of all ${2 * POOL} inputs.`,
    '- The runtime is timed three times. "clean worker": in a worker thread started without tsx, running the runtime' +
      ' bundled as plain JavaScript, as an application runs it (every batch size on the WebAssembly kernels).' +
      ' "clean worker, JavaScript kernels only": the same with the WebAssembly modules left out of the bundle, so' +
      ' that every batch size takes the fallback, the JavaScript kernels (what runs where WebAssembly is unavailable).' +
      ' "in this tsx process": in the benchmark\'s own' +
      " thread, where tsx's loader has detached ArrayBuffers while loading CommonJS packages; after any detach, V8" +
      " checks every typed-array access for it, which slows the JavaScript kernels (not WebAssembly, nor onnxruntime's" +
      ' native code). Batch 1 and batches run on WebAssembly in both of them, so they should agree.',
    '',
    '### File size',
    '',
    '| model | sparsity | weights kept | dense float32 | dense .onnx | .ecsr float32 (× smaller) | .ecsr float16 (× smaller) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...sizeRows,
    '',
    '### Speed',
    '',
    `| model | sparsity | engine | batch-1 latency, random (µs) | vs ORT-1 | vs ${ort2Name} | batch-1 latency, MNIST (µs) | vs ORT-1 | vs ${ort2Name} | batch-${batch} samples/s (random) | throughput vs ORT-1 | max abs diff vs tsGemm |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...speedRows,
    '',
    `### Throughput at batch 1, ${MID_BATCH} and ${batch}`,
    '',
    `Samples per second on random inputs, every engine timed in the same interleaved blocks (best of 3 block` +
      ` medians); batch 1 from the latency blocks above. Batches > 1 run the WebAssembly batch kernel in the clean` +
      ` worker and in this tsx process, the JavaScript panel kernel in the "JavaScript kernels only" row. Load: the 1, 5 and 15-minute load averages` +
      ` (what \`uptime\` prints) before and after the batch blocks of the model, on ${cores} cores.`,
    '',
    `| model | sparsity | engine | batch 1 (samples/s) | vs ORT-1 | vs ${ort2Name} | batch ${MID_BATCH} | vs ORT-1 | vs ${ort2Name} | batch ${batch} | vs ORT-1 | vs ${ort2Name} | load before → after |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...throughputRows,
    '',
    '### Zeros entering each layer (input, then each hidden layer)',
    '',
    `| model | sparsity | random inputs | MNIST digits |`,
    '| --- | --- | --- | --- |',
    ...zeroRows,
    '',
  ].join('\n');
}

function maxAbsDiff(actual: Float32Array, expected: Float32Array): number {
  return actual.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i])), 0);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(await benchSparseRuntime());
}
