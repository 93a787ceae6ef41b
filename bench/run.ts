/**
 * The "Speed and scale" benchmark: ecprune's EC scoring against PyTorch, the machine's GEMM peak,
 * and peak memory versus N. Writes bench/RESULTS.md (and the raw numbers to bench/RESULTS.json).
 *
 *   npx tsx bench/run.ts [--quick] [--cache DIR] [--repeats 3] [--no-torch] [--out bench/RESULTS.md]
 *   npx tsx bench/run.ts --networks 784-300-100-10 --samples 1000,10000   (a subset, to try it out)
 *   npx tsx bench/run.ts --render bench/RESULTS.json                       (re-render the report only)
 *
 * --quick runs N = 1,000 and 10,000 only. The random networks and data are written once to the
 * cache folder (default: $TMPDIR/ecprune-bench; N = 100,000 x 784 float32 is 314 MB).
 * PyTorch runs bench/reference/ec_torch.py under Debian's /usr/bin/python3 (override: $BENCH_PYTHON).
 * $BENCH_TORCH_BLAS_DIR: a folder holding an optimised libblas.so.3 (e.g. OpenBLAS extracted from
 * Debian's libopenblas0-pthread) to also time torch.mm with it (LD_LIBRARY_PATH), since Debian's
 * python3-torch otherwise calls the netlib reference BLAS.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { matrix } from '../src/model/matrix.js';
import type { Mlp } from '../src/model/mlp.js';
import { openDataFile } from '../src/node/datasets.js';
import { createOrtGemm } from '../src/node/ort-gemm.js';
import { score } from '../src/pipeline/score.js';
import type { PhaseTimings } from '../src/timings.js';
import { benchCompression } from './compression.js';
import { benchGraphNetworks } from './graph/time-graphs.js';
import {
  agreement,
  ecFlops,
  ensureData,
  heMlp,
  median,
  medianIndex,
  pageFaultCost,
  readNpyLayers,
  writeAtomic,
  writeModelDir,
} from './lib.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    cache: { type: 'string', default: path.join(os.tmpdir(), 'ecprune-bench') },
    repeats: { type: 'string', default: '3' },
    'no-torch': { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(here, 'RESULTS.md') },
    /** comma-separated subsets, for trying the harness out: --networks 784-300-100-10 --samples 1000 */
    networks: { type: 'string' },
    samples: { type: 'string' },
    /** only re-render --out from a RESULTS.json written by an earlier run (give the same flags and variables) */
    render: { type: 'string' },
  },
});
const QUICK = flags.quick!;
const CACHE = path.resolve(flags.cache!);
const REPEATS = Number(flags.repeats);
const BATCH = 1000;
const THREADS = 2;
/** the machine's cores: the GEMM peak is measured with this many ORT intra-op threads */
const CORES = os.availableParallelism();
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const TORCH_BLAS_DIR = process.env.BENCH_TORCH_BLAS_DIR;
const SAMPLE_COUNTS = flags.samples
  ? flags.samples.split(',').map(Number)
  : QUICK
    ? [1000, 10_000]
    : [1000, 10_000, 100_000];
const NETWORKS = [
  { name: '784-300-100-10', sizes: [784, 300, 100, 10], seed: 1 },
  { name: '784-1024-1024-10', sizes: [784, 1024, 1024, 10], seed: 2 },
];
if (flags.networks) {
  const wanted = flags.networks.split(',');
  NETWORKS.splice(0, NETWORKS.length, ...NETWORKS.filter((net) => wanted.includes(net.name)));
}
/** the extra PyTorch variants (GEMMs via torch.mm, autograd) run up to this N (the oneDNN one always) */
const TORCH_VARIANT_MAX_N = 10_000;

const log = (message: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

// ---------------------------------------------------------------------------------------------
// child processes

function runChild(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code}:\n${err.slice(-4000)}`));
    });
  });
}

function lastJson<T>(output: string): T {
  const lines = output.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** glibc keeps freed blocks of any size for reuse instead of returning them to the OS (no fresh pages per op) */
const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: '4294967296', MALLOC_TRIM_THRESHOLD_: '8589934592' };

const THREAD_ENV = {
  OMP_NUM_THREADS: String(THREADS),
  OPENBLAS_NUM_THREADS: String(THREADS),
  MKL_NUM_THREADS: String(THREADS),
};

interface TorchVariant {
  readonly label: string;
  readonly backend: 'mm' | 'onednn';
  readonly method: 'batched' | 'autograd';
  readonly env: NodeJS.ProcessEnv;
  /** only at N <= TORCH_VARIANT_MAX_N (and above it when it was the fastest PyTorch at N = 10,000) */
  readonly limited: boolean;
  /** the variant whose GEMM peak applies (same BLAS) */
  readonly peakOf: string;
}

interface TorchRun {
  torch: string;
  libraries: string[];
  runs_s: number[];
  median_s: number;
  median_phases_s: Record<string, number>;
}

interface TorchPeak {
  torch: string;
  peak_gflops: number;
  libraries: string[];
}

async function torchPeak(variant: TorchVariant, size: number): Promise<TorchPeak> {
  const out = await runChild(
    PYTHON,
    [
      'bench/reference/ec_torch.py',
      '--peak',
      String(size),
      '--backend',
      variant.backend,
      '--threads',
      String(THREADS),
    ],
    { ...THREAD_ENV, ...variant.env },
  );
  return lastJson<TorchPeak>(out);
}

/** One timed run of the reference in a fresh Python process (after an untimed warm-up on 2 batches). */
async function torchScore(
  variant: TorchVariant,
  modelDir: string,
  data: string,
  outDir?: string,
  dtype: 'float32' | 'float64' = 'float32',
): Promise<TorchRun> {
  const args = [
    'bench/reference/ec_torch.py',
    ...['--dtype', dtype, '--warmup', dtype === 'float64' ? '0' : '1'],
    ...['--model', modelDir, '--data', data, '--batch-size', String(BATCH)],
    ...['--backend', variant.backend, '--method', variant.method, '--threads', String(THREADS)],
    ...['--repeats', '1', ...(outDir ? ['--out', outDir] : [])],
  ];
  return lastJson<TorchRun>(await runChild(PYTHON, args, { ...THREAD_ENV, ...variant.env }));
}

interface ScoreOnce {
  ms: number;
  timings: PhaseTimings;
  rssBeforeKB: number;
  maxRssKB: number;
}

async function scoreInFreshProcess(
  modelDir: string,
  data: string,
  env: NodeJS.ProcessEnv = {},
  warmupData?: string,
): Promise<ScoreOnce> {
  const out = await runChild(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/score-once.ts',
      ...['--model', modelDir, '--data', data, '--batch-size', String(BATCH)],
      ...(warmupData ? ['--warmup-data', warmupData] : []),
    ],
    env,
  );
  return lastJson<ScoreOnce>(out);
}

// ---------------------------------------------------------------------------------------------
// in-process measurements

/** Best GFLOP/s of a size³ product through createOrtGemm(threads). */
async function ortPeak(size: number, repeats: number, threads = CORES): Promise<number> {
  const gemm = await createOrtGemm(threads);
  const a = matrix(size, size);
  const b = matrix(size, size);
  for (let i = 0; i < a.data.length; i++) {
    a.data[i] = Math.random() - 0.5;
    b.data[i] = Math.random() - 0.5;
  }
  let best = Number.POSITIVE_INFINITY;
  await gemm.matmul(a, b); // warm-up (session creation)
  for (let r = 0; r < repeats; r++) {
    const t = performance.now();
    await gemm.matmul(a, b);
    best = Math.min(best, performance.now() - t);
  }
  await gemm.dispose?.();
  return (2 * size ** 3) / (best / 1000) / 1e9;
}

// ---------------------------------------------------------------------------------------------
// machine

function machine() {
  const cpus = os.cpus();
  let osName = `${os.type()} ${os.release()}`;
  try {
    const pretty = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'));
    if (pretty) osName = `${pretty[1]} (kernel ${os.release()})`;
  } catch {
    // not Linux
  }
  let cpuModel = cpus[0]?.model ?? 'unknown';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const family = /cpu family\s*:\s*(\d+)/.exec(info)?.[1];
    const model = /^model\s*:\s*(\d+)/m.exec(info)?.[1];
    const flags = /flags\s*:(.*)/.exec(info)?.[1] ?? '';
    const simd = ['avx512f', 'avx2', 'fma'].filter((f) => flags.split(' ').includes(f)).join(', ');
    cpuModel += ` (family ${family}, model ${model}; ${simd})`;
  } catch {
    // not Linux
  }
  const require = createRequire(import.meta.url);
  const ortVersion = (require('onnxruntime-node/package.json') as { version: string }).version;
  return {
    cpu: cpuModel,
    cores: cpus.length,
    memoryGB: os.totalmem() / 2 ** 30,
    os: osName,
    node: process.version,
    ort: ortVersion,
  };
}

// ---------------------------------------------------------------------------------------------
// main

interface CaseResult {
  network: string;
  sizes: number[];
  samples: number;
  flops: ReturnType<typeof ecFlops>;
  ec: { totals: number[]; median: number; phases: PhaseTimings };
  /** ecprune with MALLOC_ENV, each run in a fresh process (N <= TORCH_VARIANT_MAX_N) */
  ecMalloc?: { totals: number[]; median: number };
  /** the 1-minute load average before each repeat and at the end */
  loads: number[];
  rss: ScoreOnce;
  torch: Record<string, TorchRun | { skipped: string }>;
  agreement: Record<
    string,
    { importance: ReturnType<typeof agreement>; delta: ReturnType<typeof agreement> }
  >;
}

async function main() {
  if (flags.render) {
    const saved = JSON.parse(await readFile(flags.render, 'utf8')) as Parameters<typeof renderReport>[0] & {
      startedAt: string;
    };
    await writeAtomic(
      flags.out!,
      renderReport({
        ...saved,
        startedAt: new Date(saved.startedAt),
        torchVersion: Object.values(saved.torchPeaks)[0]?.torch,
      }),
    );
    log(`re-rendered ${path.relative(root, flags.out!)} from ${flags.render}`);
    return;
  }
  const startedAt = new Date();
  const info = { ...machine(), pageFault: pageFaultCost() };
  log(`machine: ${info.cpu}, ${info.cores} cores; cache ${CACHE}`);
  await mkdir(CACHE, { recursive: true });

  // data and models
  const dataFile = (n: number) => path.join(CACHE, `x-${n}x784.npy`);
  for (const n of SAMPLE_COUNTS) {
    log(`data: ${n} x 784`);
    await ensureData(dataFile(n), n, 784, 1000 + n);
  }
  const models = new Map<string, Mlp>();
  for (const net of NETWORKS) {
    const mlp = heMlp(net.sizes, net.seed);
    models.set(net.name, mlp);
    await writeModelDir(path.join(CACHE, 'models', net.name), mlp);
  }

  // GEMM peaks
  log('GEMM peak (onnxruntime, 2048^3)');
  // the peak is re-measured before every case and at the end: on a shared machine one measurement
  // can land in a busy moment; the report uses the best of all of them
  const peaks = [await ortPeak(2048, 7)];
  log(`  ${peaks[0].toFixed(1)} GFLOP/s with ${CORES} threads`);

  const variants: TorchVariant[] = [];
  const torchPeaks: Record<string, TorchPeak> = {};
  if (!flags['no-torch']) {
    const add = (
      label: string,
      backend: TorchVariant['backend'],
      method: TorchVariant['method'],
      env: NodeJS.ProcessEnv,
      limited: boolean,
      peakOf = label,
    ) => variants.push({ label, backend, method, env, limited, peakOf });
    add('torch-onednn', 'onednn', 'batched', {}, false);
    add('torch-onednn+malloc', 'onednn', 'batched', MALLOC_ENV, false, 'torch-onednn');
    add('torch-mm', 'mm', 'batched', {}, true);
    add('torch-autograd', 'mm', 'autograd', {}, true, 'torch-mm');
    if (TORCH_BLAS_DIR) {
      const blas = {
        LD_LIBRARY_PATH: [TORCH_BLAS_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
      };
      add('torch-mm+openblas', 'mm', 'batched', blas, true);
      add('torch-autograd+openblas', 'mm', 'autograd', blas, true, 'torch-mm+openblas');
      add('torch-mm+openblas+malloc', 'mm', 'batched', { ...blas, ...MALLOC_ENV }, true, 'torch-mm+openblas');
      add(
        'torch-autograd+openblas+malloc',
        'mm',
        'autograd',
        { ...blas, ...MALLOC_ENV },
        true,
        'torch-mm+openblas',
      );
    }
    for (const v of variants) {
      if (v.peakOf !== v.label) continue;
      log(`GEMM peak (${v.label}, 2048^3)`);
      torchPeaks[v.label] = await torchPeak(v, 2048);
      log(
        `  ${torchPeaks[v.label].peak_gflops.toFixed(1)} GFLOP/s via ${torchPeaks[v.label].libraries.join(', ')}`,
      );
    }
  }
  const bestTorchPeak = Math.max(0, ...Object.values(torchPeaks).map((p) => p.peak_gflops));
  /** a variant whose GEMMs run at < 1/10 of the best one (the reference BLAS) only runs at N = 1,000 */
  const variantPeak = (v: TorchVariant) => torchPeaks[v.peakOf];
  const hopeless = (v: TorchVariant) => (variantPeak(v)?.peak_gflops ?? bestTorchPeak) < bestTorchPeak / 10;

  const cases: CaseResult[] = [];
  /** per network, the fastest PyTorch variant at N = 10,000 (also run above TORCH_VARIANT_MAX_N) */
  const fastestAt10k = new Map<string, string>();
  for (const net of NETWORKS) {
    const mlp = models.get(net.name)!;
    const modelDir = path.join(CACHE, 'models', net.name);
    for (const n of SAMPLE_COUNTS) {
      const data = dataFile(n);
      const active = variants.filter((v) => {
        if (v.limited && n > TORCH_VARIANT_MAX_N && fastestAt10k.get(net.name) !== v.label) return false;
        return !(hopeless(v) && n > 1000);
      });
      peaks.push(await ortPeak(2048, 7));
      // repeats interleaved (ecprune, then each PyTorch variant), so that changes in the machine's
      // load hit both alike
      const gemm = await createOrtGemm();
      await score(mlp, await openDataFile(dataFile(1000)), { method: 'ec', gemm, batchSize: BATCH }); // warm-up
      const ecTotals: number[] = [];
      const ecPhases: PhaseTimings[] = [];
      const ecMalloc: number[] = [];
      const loads: number[] = [];
      const torchRuns = new Map<string, TorchRun[]>(active.map((v) => [v.label, []]));
      let last: Awaited<ReturnType<typeof score>> | undefined;
      for (let r = 0; r < REPEATS; r++) {
        loads.push(os.loadavg()[0]);
        const timings: PhaseTimings = {};
        const start = performance.now();
        last = await score(mlp, await openDataFile(data), { method: 'ec', gemm, batchSize: BATCH, timings });
        ecTotals.push(performance.now() - start);
        ecPhases.push(timings);
        log(
          `${net.name} N=${n} run ${r + 1}/${REPEATS}: ecprune ${(ecTotals[r] / 1000).toFixed(2)} s ${JSON.stringify(timings)}`,
        );
        if (n <= TORCH_VARIANT_MAX_N) {
          const run = await scoreInFreshProcess(modelDir, data, MALLOC_ENV, dataFile(1000));
          ecMalloc.push(run.ms);
          log(`  ecprune+malloc (fresh process) ${(run.ms / 1000).toFixed(2)} s`);
        }
        for (const v of active) {
          const outDir =
            r === REPEATS - 1 ? path.join(CACHE, 'scores', net.name, String(n), v.label) : undefined;
          const run = await torchScore(v, modelDir, data, outDir);
          torchRuns.get(v.label)!.push(run);
          log(`  ${v.label} ${run.median_s.toFixed(2)} s`);
        }
      }
      loads.push(os.loadavg()[0]);
      await gemm.dispose?.();
      log(`${net.name} N=${n}: ecprune peak RSS (fresh process)`);
      const rss = await scoreInFreshProcess(modelDir, data);
      log(`  ${(rss.maxRssKB / 1024).toFixed(0)} MB`);
      const result: CaseResult = {
        network: net.name,
        sizes: net.sizes,
        samples: n,
        flops: ecFlops(net.sizes, n),
        ec: { totals: ecTotals, median: median(ecTotals), phases: ecPhases[medianIndex(ecTotals)] },
        ecMalloc: ecMalloc.length ? { totals: ecMalloc, median: median(ecMalloc) } : undefined,
        loads,
        rss,
        torch: {},
        agreement: {},
      };
      const count = mlp.layers.length;
      const scoresOf = async (dir: string) => ({
        importance: await readNpyLayers(dir, 'I', count),
        delta: await readNpyLayers(dir, 'D', count),
      });
      const compare = (
        label: string,
        ours: { importance: ArrayLike<number>[]; delta: ArrayLike<number>[] },
        theirs: typeof ours,
      ) => {
        result.agreement[label] = {
          importance: agreement(ours.importance, theirs.importance),
          delta: agreement(ours.delta, theirs.delta),
        };
      };
      const ecScores = { importance: last!.importance, delta: last!.deltaBias! };
      for (const v of variants) {
        const runs = torchRuns.get(v.label);
        if (runs === undefined) {
          result.torch[v.label] = {
            skipped:
              v.limited && n > TORCH_VARIANT_MAX_N
                ? `only run up to N = ${TORCH_VARIANT_MAX_N}`
                : 'reference BLAS: only N = 1,000',
          };
          continue;
        }
        const totals = runs.map((run) => run.median_s);
        result.torch[v.label] = {
          ...runs[0],
          runs_s: totals,
          median_s: median(totals),
          median_phases_s: runs[medianIndex(totals)].median_phases_s,
        };
        compare(
          `ecprune vs ${v.label}`,
          ecScores,
          await scoresOf(path.join(CACHE, 'scores', net.name, String(n), v.label)),
        );
      }
      if (n === 10_000) {
        const best = bestTorch(result);
        if (best) fastestAt10k.set(net.name, best.label);
      }
      // a float64 reference (torch.mm in double precision), for N <= 10,000
      const f64Blas = TORCH_BLAS_DIR ? variants.find((v) => v.label === 'torch-mm+openblas') : undefined;
      if (!flags['no-torch'] && n <= TORCH_VARIANT_MAX_N && (f64Blas || n <= 1000)) {
        log(`${net.name} N=${n}: float64 reference`);
        const f64Dir = path.join(CACHE, 'scores', net.name, String(n), 'float64');
        const variant: TorchVariant = {
          label: 'float64',
          backend: 'mm',
          method: 'batched',
          env: f64Blas?.env ?? {},
          limited: true,
          peakOf: '',
        };
        await torchScore(variant, modelDir, data, f64Dir, 'float64');
        const f64 = await scoresOf(f64Dir);
        compare('ecprune vs float64', ecScores, f64);
        if (isRun(result.torch['torch-onednn'])) {
          compare(
            'torch-onednn vs float64',
            await scoresOf(path.join(CACHE, 'scores', net.name, String(n), 'torch-onednn')),
            f64,
          );
        }
      }
      cases.push(result);
    }
  }

  peaks.push(await ortPeak(2048, 7));
  const peak = Math.max(...peaks);
  log(
    `GEMM peak (onnxruntime, ${CORES} threads), all measurements: ${peaks.map((p) => p.toFixed(1)).join(', ')}`,
  );
  for (const v of variants) {
    if (v.peakOf !== v.label || hopeless(v)) continue;
    const again = await torchPeak(v, 2048);
    if (again.peak_gflops > torchPeaks[v.label].peak_gflops) torchPeaks[v.label] = again;
  }

  // the sparse runtime's own benchmark, when another engineer's bench/sparse-runtime.ts provides it
  let sparseMarkdown: string | undefined;
  try {
    const modulePath = pathToFileURL(path.join(here, 'sparse-runtime.ts')).href;
    const mod = (await import(modulePath)) as { benchSparseRuntime?: (options?: object) => Promise<string> };
    if (typeof mod.benchSparseRuntime === 'function') {
      log('sparse runtime (bench/sparse-runtime.ts)');
      sparseMarkdown = await mod.benchSparseRuntime(QUICK ? { minMs: 200 } : {});
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ERR_MODULE_NOT_FOUND')
      sparseMarkdown = `(bench/sparse-runtime.ts failed: ${(error as Error).message})`;
  }
  log('graph networks (bench/graph/time-graphs.ts)');
  let graphMarkdown: string;
  try {
    graphMarkdown = await benchGraphNetworks({ cache: CACHE, repeats: REPEATS });
  } catch (error) {
    graphMarkdown = `(bench/graph/time-graphs.ts failed: ${(error as Error).message})`;
  }
  log('compression (bench/compression.ts)');
  let compressionMarkdown: string;
  try {
    compressionMarkdown = await benchCompression(
      QUICK ? { epochs: 2, finetuneEpochs: 1, centroidEpochs: 1 } : {},
    );
  } catch (error) {
    compressionMarkdown = `(bench/compression.ts failed: ${(error as Error).message})`;
  }

  const torchVersion = Object.values(torchPeaks)[0]?.torch;
  const report = renderReport({
    startedAt,
    info,
    peak,
    peaks,
    torchPeaks,
    torchVersion,
    cases,
    graphMarkdown,
    sparseMarkdown,
    compressionMarkdown,
    seconds: (Date.now() - startedAt.getTime()) / 1000,
  });
  await writeAtomic(flags.out!, report);
  const jsonOut = flags.out!.replace(/\.md$/, '') + '.json';
  const seconds = (Date.now() - startedAt.getTime()) / 1000;
  await writeAtomic(
    jsonOut,
    JSON.stringify(
      {
        startedAt,
        info,
        peak,
        peaks,
        torchPeaks,
        cases,
        graphMarkdown,
        sparseMarkdown,
        compressionMarkdown,
        seconds,
      },
      null,
      1,
    ),
  );
  log(`wrote ${path.relative(root, flags.out!)} and ${path.relative(root, jsonOut)}`);
}

// ---------------------------------------------------------------------------------------------
// report

const s = (ms: number) => (ms / 1000).toFixed(ms < 10_000 ? 3 : 2);
const f1 = (x: number) => x.toFixed(1);
const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
const num = (n: number) => n.toLocaleString('en-US');
const sci = (x: number) => (x === 0 ? '0' : x.toExponential(1));

function isRun(r: TorchRun | { skipped: string } | undefined): r is TorchRun {
  return r !== undefined && 'median_s' in r;
}

function bestTorch(c: CaseResult): { label: string; run: TorchRun } | undefined {
  let best: { label: string; run: TorchRun } | undefined;
  for (const [label, run] of Object.entries(c.torch)) {
    if (isRun(run) && (best === undefined || run.median_s < best.run.median_s)) best = { label, run };
  }
  return best;
}

/** The PyTorch variant with the fastest single run (on a shared machine: the least disturbed one). */
function fastestTorchRun(c: CaseResult): { label: string; seconds: number } | undefined {
  let best: { label: string; seconds: number } | undefined;
  for (const [label, run] of Object.entries(c.torch)) {
    if (!isRun(run)) continue;
    const seconds = Math.min(...run.runs_s);
    if (best === undefined || seconds < best.seconds) best = { label, seconds };
  }
  return best;
}

function renderReport(r: {
  startedAt: Date;
  info: ReturnType<typeof machine> & { pageFault: ReturnType<typeof pageFaultCost> };
  peak: number;
  peaks: number[];
  torchPeaks: Record<string, TorchPeak>;
  torchVersion?: string;
  cases: CaseResult[];
  graphMarkdown?: string;
  sparseMarkdown?: string;
  compressionMarkdown?: string;
  seconds: number;
}): string {
  const { info, peak, cases } = r;

  const lines: string[] = [];
  const command = `npx tsx bench/run.ts${QUICK ? ' --quick' : ''}${REPEATS !== 3 ? ` --repeats ${REPEATS}` : ''}`;
  lines.push('# Benchmark results: EC scoring speed and scale', '');
  lines.push(
    'Written by the harness; the analysis (where the time goes, and the measured effect of each proposed optimisation) is in [ANALYSIS.md](ANALYSIS.md) (written by hand from prototype runs; the prototypes were removed once their measured optimisations landed in src/).',
    '',
  );
  lines.push(
    `Generated by \`bench/run.ts\` on ${r.startedAt.toISOString().slice(0, 10)} (run took ${Math.round(r.seconds)} s).`,
    '',
  );
  lines.push('| | |', '|---|---|');
  lines.push(`| command | \`${TORCH_BLAS_DIR ? 'BENCH_TORCH_BLAS_DIR=… ' : ''}${command}\` |`);
  lines.push(`| CPU | ${info.cpu} |`);
  lines.push(`| cores | ${info.cores} |`);
  lines.push(`| memory | ${info.memoryGB.toFixed(1)} GiB |`);
  lines.push(`| OS | ${info.os} |`);
  lines.push(
    `| fresh memory | ${info.pageFault.microsPerFault.toFixed(1)} µs per 4 KiB page fault = ${info.pageFault.msPerMB.toFixed(2)} ms per MB first written (a new 64 MB Float32Array filled once; typical bare-metal Linux: ~0.1–0.3 ms per MB) |`,
  );
  lines.push(`| Node | ${info.node} |`);
  lines.push(
    `| onnxruntime-node | ${info.ort} (CPU provider; \`score\` runs with \`createOrtGemm()\`: ${CORES} intra-op threads (os.availableParallelism()), each calibration batch as one ONNX graph, src/graph/emit/calibration.ts) |`,
  );
  if (r.torchVersion)
    lines.push(
      `| PyTorch | ${r.torchVersion} (Debian python3-torch, \`torch.set_num_threads(${THREADS})\`, float32) |`,
    );
  lines.push(`| batch size | ${BATCH} (ecprune and PyTorch) |`);
  lines.push(
    `| timing | median of ${REPEATS} runs. ecprune: in-process after a warm-up run, wall time of the whole \`score()\` call (reading the .npy batches included). PyTorch: each run in a fresh process after an untimed 2-batch warm-up, timing the streaming loop (reading the batches from the memory-mapped .npy included) and the final I/Δ. The repeats are interleaved (ecprune, PyTorch variants, ecprune, …) so that load changes hit both |`,
  );
  lines.push(
    `| machine load | the machine was shared with other work; the 1-minute load average during each case is listed (2 cores: load > 2 means the benchmark did not have the cores to itself) |`,
  );
  lines.push('');
  lines.push(
    'Networks: random ReLU MLPs, He-normal weights, biases N(0, 0.01²), identity output, seeded; data: uniform [0, 1) float32 .npy, 784 features.',
  );
  lines.push('');
  lines.push('FLOPs counted (GEMMs only, 2 per multiply-add), with widths n_0..n_L and K = n_L:');
  lines.push('');
  lines.push('- forward: 2·N·Σ_l n_l·n_{l−1}');
  lines.push('- sensitivity: 2·N·K·Σ_{l<L} n_l·n_{l+1} (the backward GEMMs on the B·K-row cotangent matrix)');
  lines.push('- statistics: 2·N·Σ_l n_l·2·n_{l−1} (one GEMM Sᵀ[A−c | (A−c)²] per layer)');
  lines.push('');

  lines.push('## GEMM peak (fp32, 2048³, same run)', '');
  lines.push(
    `Best of 7 products, measured ${r.peaks.length} times through the run (onnxruntime with ${CORES} threads: ${r.peaks.map((p) => f1(p)).join(', ')} GFLOP/s; PyTorch: at the start and the end); the table gives the best.`,
    '',
  );
  lines.push('| backend | GFLOP/s |', '|---|---|');
  lines.push(`| onnxruntime-node, \`createOrtGemm(${CORES})\` (${CORES} intra-op threads) | ${f1(peak)} |`);
  for (const [label, p] of Object.entries(r.torchPeaks)) {
    lines.push(
      `| ${label} (${p.libraries.map((x) => path.basename(x)).join(', ') || '?'}) | ${f1(p.peak_gflops)} |`,
    );
  }
  lines.push(
    '',
    `"% of peak" below is relative to the onnxruntime figure with ${CORES} threads, ${f1(peak)} GFLOP/s (the machine's peak through ecprune's backend).`,
    '',
  );

  lines.push('## ecprune: time per phase (s, median run)', '');
  lines.push(
    '`score()` runs each calibration batch as one ONNX graph (forward, sensitivities and moment sums fused, src/graph/emit/calibration.ts), timed as `graph`; `compile` builds that graph and its onnxruntime session (once per `score()` call: the PyTorch timing has no counterpart: setup and warm-up are untimed there); `shift` is a graph run on the first 256 samples for the shift c (src/score/statistics-graph.ts); `other` = total − phases: reading the .npy batches, the float64 sums across batches.',
    '',
  );
  lines.push(
    '| network | N | total | compile | shift | graph | select | other | GFLOP | GFLOP/s in the graph | GFLOP/s overall | % of peak | runs (s) | load avg |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|');
  for (const c of cases) {
    const p = c.ec.phases;
    // with the graph, `statistics` holds forward + sensitivity + statistics (see src/cli/timings.ts)
    const graph = (p.sensitivity ?? 0) + (p.statistics ?? 0);
    const phaseSum = (p.compile ?? 0) + (p.forward ?? 0) + graph + (p.select ?? 0);
    const total = c.ec.median;
    const rate = c.flops.total / (total / 1000) / 1e9;
    lines.push(
      `| ${c.network} | ${num(c.samples)} | ${s(total)} | ${s(p.compile ?? 0)} | ${s(p.forward ?? 0)} | ${s(graph)} | ${s(p.select ?? 0)} | ${s(total - phaseSum)} | ${f1(c.flops.total / 1e9)} | ${f1(c.flops.total / (graph / 1000) / 1e9)} | ${f1(rate)} | ${pct(rate / peak)} | ${c.ec.totals.map((t) => (t / 1000).toFixed(2)).join(', ')} | ${Math.min(...c.loads).toFixed(1)}–${Math.max(...c.loads).toFixed(1)} |`,
    );
  }
  lines.push('');

  const labels = [...new Set(cases.flatMap((c) => Object.keys(c.torch)))];
  if (labels.length > 0) {
    lines.push('## PyTorch (bench/reference/ec_torch.py, same files, same batches)', '');
    lines.push(
      "Variants: `torch-onednn` = the batched B·K-row cotangent computation with every GEMM through the oneDNN kernel bundled in libtorch (`torch._C._nn.mkldnn_linear`); `torch-mm` = the same with `torch.mm`/`torch.addmm`, i.e. the BLAS libtorch is linked to; `torch-autograd` = `torch.autograd.grad(..., is_grads_batched=True)` (autograd's vmap over the K one-hot cotangents) + the same statistics GEMMs via `torch.mm`. `+openblas`: with Debian's OpenBLAS 0.3.21 (libopenblas0-pthread) on LD_LIBRARY_PATH instead of the netlib reference BLAS that python3-torch is linked to by default. `+malloc`: with `MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=8589934592`, so glibc reuses freed large blocks instead of mapping fresh pages for every tensor (see `fresh memory` above). Every variant runs with " +
        THREADS +
        ' threads (torch.set_num_threads, OMP/OpenBLAS/MKL_NUM_THREADS). Only `torch-onednn` and `torch-onednn+malloc` run at every N; the others run at N ≤ ' +
        num(TORCH_VARIANT_MAX_N) +
        ' (the reference-BLAS ones only at N = 1,000), except the fastest variant at N = 10,000, which also runs at larger N.',
      '',
    );
    lines.push('### Summary', '');
    lines.push(
      '| network | N | ecprune (s) | best PyTorch (s) | best PyTorch variant | ecprune / best PyTorch | fastest runs: ecprune / PyTorch (s) | ratio of the fastest runs | torch-onednn, default allocator (s) | ecprune / torch-onednn | ecprune+malloc (s) |',
    );
    lines.push('|---|---:|---:|---:|---|---:|---|---:|---:|---:|---:|');
    for (const c of cases) {
      const best = bestTorch(c);
      const fastest = fastestTorchRun(c);
      const ecBest = Math.min(...c.ec.totals) / 1000;
      const onednn = c.torch['torch-onednn'];
      lines.push(
        `| ${c.network} | ${num(c.samples)} | ${s(c.ec.median)} | ${best ? best.run.median_s.toFixed(3) : '–'} | ${best?.label ?? '–'} | ${best ? (c.ec.median / 1000 / best.run.median_s).toFixed(2) : '–'} | ${fastest ? `${ecBest.toFixed(3)} / ${fastest.seconds.toFixed(3)} (${fastest.label})` : '–'} | ${fastest ? (ecBest / fastest.seconds).toFixed(2) : '–'} | ${isRun(onednn) ? onednn.median_s.toFixed(3) : '–'} | ${isRun(onednn) ? (c.ec.median / 1000 / onednn.median_s).toFixed(2) : '–'} | ${c.ecMalloc ? s(c.ecMalloc.median) : '–'} |`,
      );
    }
    lines.push('');
    lines.push(
      "`ecprune+malloc`: the same library call with the `+malloc` environment, each run in a fresh process (`bench/score-once.ts`, after a warm-up scoring of the N = 1,000 file), to show how much of ecprune's time is the fresh-memory cost of this machine.",
      '',
    );
    lines.push('### Every variant (median s, and the runs)', '');
    lines.push('| network | N | implementation | median (s) | runs (s) | ecprune / this |');
    lines.push('|---|---:|---|---:|---|---:|');
    for (const c of cases) {
      lines.push(
        `| ${c.network} | ${num(c.samples)} | **ecprune** | ${s(c.ec.median)} | ${c.ec.totals.map((t) => (t / 1000).toFixed(2)).join(', ')} | 1.00 |`,
      );
      if (c.ecMalloc) {
        lines.push(
          `| ${c.network} | ${num(c.samples)} | ecprune+malloc | ${s(c.ecMalloc.median)} | ${c.ecMalloc.totals.map((t) => (t / 1000).toFixed(2)).join(', ')} | ${(c.ec.median / c.ecMalloc.median).toFixed(2)} |`,
        );
      }
      for (const label of labels) {
        const run = c.torch[label];
        if (isRun(run)) {
          lines.push(
            `| ${c.network} | ${num(c.samples)} | ${label} | ${run.median_s.toFixed(3)} | ${run.runs_s.map((t) => t.toFixed(2)).join(', ')} | ${(c.ec.median / 1000 / run.median_s).toFixed(2)} |`,
          );
        } else if (run) {
          lines.push(`| ${c.network} | ${num(c.samples)} | ${label} | – | ${run.skipped} | – |`);
        }
      }
    }
    lines.push('', 'Times in seconds (median of the timed runs); `–` = not run (see notes).', '');
    lines.push('### PyTorch phases (s, best variant)', '');
    lines.push('| network | N | variant | read | forward | sensitivity | statistics | select |');
    lines.push('|---|---:|---|---:|---:|---:|---:|---:|');
    for (const c of cases) {
      const best = bestTorch(c);
      if (!best) continue;
      const p = best.run.median_phases_s;
      const g = (k: string) => (p[k] ?? 0).toFixed(3);
      lines.push(
        `| ${c.network} | ${num(c.samples)} | ${best.label} | ${g('read')} | ${g('forward')} | ${g('sensitivity')} | ${g('statistics')} | ${g('select')} |`,
      );
    }
    lines.push('');
    lines.push('## Agreement of the scores', '');
    lines.push(
      '`a vs b`: max rel = the largest |a − b| / |b| over the entries of b above 1e-3 × its largest entry (`compared`); `> 1e-3` = how many of those differ by more than 1e-3 relatively; norm rel = ‖a − b‖₂ / ‖b‖₂ over all weights. `float64` = the same computation in double precision (torch.mm), the closest thing to exact.',
      '',
    );
    lines.push(
      '| network | N | a vs b | I: max rel | I: > 1e-3 | I: norm rel | I: compared | Δ: max rel | Δ: > 1e-3 | Δ: norm rel |',
    );
    lines.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const c of cases) {
      for (const [label, a] of Object.entries(c.agreement)) {
        lines.push(
          `| ${c.network} | ${num(c.samples)} | ${label} | ${sci(a.importance.maxRelative)} | ${num(a.importance.over)} | ${sci(a.importance.normRelative)} | ${num(a.importance.compared)} / ${num(a.importance.total)} | ${sci(a.delta.maxRelative)} | ${num(a.delta.over)} | ${sci(a.delta.normRelative)} |`,
        );
      }
    }
    lines.push('');
  }

  lines.push('## ecprune peak memory (fresh process per run: `node --import tsx bench/score-once.ts`)', '');
  lines.push(
    '| network | N | RSS before scoring (MB) | peak RSS (MB) | peak / peak at N = 10,000 | time in that process (s) |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const c of cases) {
    const ref = cases.find((d) => d.network === c.network && d.samples === 10_000);
    lines.push(
      `| ${c.network} | ${num(c.samples)} | ${(c.rss.rssBeforeKB / 1024).toFixed(0)} | ${(c.rss.maxRssKB / 1024).toFixed(0)} | ${ref ? (c.rss.maxRssKB / ref.rss.maxRssKB).toFixed(2) : '–'} | ${s(c.rss.ms)} |`,
    );
  }
  lines.push('');

  lines.push('## Targets (issue "Speed and scale")', '');
  lines.push('| target | measured | met? |', '|---|---|---|');
  for (const net of NETWORKS) {
    const c = cases.find((d) => d.network === net.name && d.samples === 10_000);
    const best = c && bestTorch(c);
    const fastest = c && fastestTorchRun(c);
    if (c && best && fastest) {
      const ratio = c.ec.median / 1000 / best.run.median_s;
      const ecBest = Math.min(...c.ec.totals) / 1000;
      const bestRatio = ecBest / fastest.seconds;
      const verdict =
        ratio <= 1 && bestRatio <= 1
          ? 'met'
          : ratio > 1 && bestRatio > 1
            ? 'not met'
            : `unclear: ${ratio <= 1 ? 'met' : 'not met'} on medians, ${bestRatio <= 1 ? 'met' : 'not met'} on the fastest runs (load)`;
      lines.push(
        `| scoring time ≤ PyTorch's, ${net.name}, N = 10,000 | medians: ecprune ${s(c.ec.median)} s vs ${best.label} ${best.run.median_s.toFixed(3)} s (×${ratio.toFixed(2)}); fastest runs: ecprune ${ecBest.toFixed(3)} s vs ${fastest.label} ${fastest.seconds.toFixed(3)} s (×${bestRatio.toFixed(2)}) | ${verdict} |`,
      );
    }
  }
  const big = cases.filter((c) => c.network === '784-1024-1024-10');
  const bigTop = big[big.length - 1];
  if (bigTop) {
    const rate = bigTop.flops.total / (bigTop.ec.median / 1000) / 1e9;
    lines.push(
      `| ≥ 50 % of the measured GEMM peak, 784-1024-1024-10 (N = ${num(bigTop.samples)}) | ${f1(rate)} of ${f1(peak)} GFLOP/s = ${pct(rate / peak)} | ${rate >= 0.5 * peak ? 'met' : 'not met'} |`,
    );
  }
  for (const net of NETWORKS) {
    const a = cases.find((d) => d.network === net.name && d.samples === 10_000);
    const b = cases.find((d) => d.network === net.name && d.samples === 100_000);
    if (a && b) {
      const ratio = b.rss.maxRssKB / a.rss.maxRssKB;
      lines.push(
        `| peak memory at N = 100,000 ≤ 1.25 × N = 10,000, ${net.name} | ${(b.rss.maxRssKB / 1024).toFixed(0)} MB vs ${(a.rss.maxRssKB / 1024).toFixed(0)} MB (×${ratio.toFixed(2)}) | ${ratio <= 1.25 ? 'met' : 'not met'} |`,
      );
    } else if (a) {
      lines.push(
        `| peak memory at N = 100,000 ≤ 1.25 × N = 10,000, ${net.name} | not measured (--quick) | – |`,
      );
    }
  }
  lines.push('');
  if (r.graphMarkdown) lines.push(r.graphMarkdown.trim(), '');
  if (r.sparseMarkdown) {
    lines.push('## Sparse runtime (bench/sparse-runtime.ts)', '', r.sparseMarkdown.trim(), '');
  }
  if (r.compressionMarkdown) lines.push(r.compressionMarkdown.trim(), '');
  return `${lines.join('\n')}\n`;
}

await main();
