/**
 * EC scoring time on graph networks (issue #11): a residual MLP with LayerNorm and a CNN whose
 * classifier head is fully connected (its convolutions a frozen prefix run by onnxruntime), as
 * torch.onnx.export writes them (bench/graph/make_graph_networks.py), beside the plain
 * 784-300-100-10 MLP of bench/run.ts (same seeded network and N = 10,000 file), each timed with the
 * calibration pass emitted as one ONNX graph per batch (the default) and as the JS walk GEMM by
 * GEMM (`--no-graph`, `withoutGraphs`). Not a test. bench/run.ts includes the table; alone:
 *
 *   npx tsx bench/graph/time-graphs.ts [--cache DIR] [--repeats 3]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type Dataset, firstSamples } from '../../src/data/dataset.js';
import { type Gemm, withoutGraphs } from '../../src/gemm/gemm.js';
import { inputSize, type Model } from '../../src/graph/graph.js';
import { throughPrefix } from '../../src/graph/prefix.js';
import { openDataFile } from '../../src/node/datasets.js';
import { loadModel } from '../../src/node/models.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
import { score } from '../../src/pipeline/score.js';
import type { PhaseTimings } from '../../src/timings.js';
import { ensureData, heMlp, median, medianIndex } from '../lib.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const BATCH = 1000;
const SAMPLES = 10_000;

export interface GraphBenchOptions {
  /** where the networks and data are written (bench/run.ts's cache) */
  readonly cache: string;
  readonly repeats: number;
}

interface Network {
  readonly name: string;
  readonly what: string;
  /** the model and the data as its fully-connected part sees them */
  open(gemm: Gemm): Promise<{ model: Model; data: Dataset }>;
}

interface Timed {
  readonly totals: number[];
  /** CPU seconds (user + system, all threads) of each run: less sensitive to a shared machine's load */
  readonly cpu: number[];
  readonly phases: PhaseTimings;
}

/** Repeats stop once the runs so far took this long (the JS walk of the residual network: one run). */
const BUDGET_MS = 60_000;

/**
 * Median-of-`repeats` EC scoring, after an untimed warm-up on the first 1,000 samples; fewer runs
 * (at least one) when they exceed BUDGET_MS, to keep the benchmark short.
 */
async function timeScore(model: Model, data: Dataset, gemm: Gemm, repeats: number): Promise<Timed> {
  await score(model, firstSamples(data, 1000), { method: 'ec', gemm, batchSize: BATCH });
  const totals: number[] = [];
  const cpu: number[] = [];
  const phases: PhaseTimings[] = [];
  for (let r = 0; r < repeats && totals.reduce((sum, ms) => sum + ms, 0) < BUDGET_MS; r++) {
    const timings: PhaseTimings = {};
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    await score(model, data, { method: 'ec', gemm, batchSize: BATCH, timings });
    const used = process.cpuUsage(cpuStart);
    totals.push(performance.now() - start);
    cpu.push((used.user + used.system) / 1000);
    phases.push(timings);
  }
  return { totals, cpu, phases: phases[medianIndex(totals)] };
}

function networks(cache: string): Network[] {
  const graphDir = path.join(cache, 'graph');
  const digits = path.join(graphDir, 'digits-10000.npy');
  const onnx = (name: string, what: string): Network => ({
    name,
    what,
    async open(gemm) {
      const loaded = await loadModel(path.join(graphDir, `${name}.onnx`));
      const data = await openDataFile(digits);
      const { prefix } = loaded;
      return {
        model: loaded.graph,
        data: prefix ? throughPrefix(data, prefix, gemm, inputSize(loaded.graph)) : data,
      };
    },
  });
  return [
    {
      name: '784-300-100-10',
      what: 'the plain ReLU MLP of the tables above (seed 1; `x-10000x784.npy`)',
      async open() {
        const file = path.join(cache, `x-${SAMPLES}x784.npy`);
        await ensureData(file, SAMPLES, 784, 1000 + SAMPLES); // the file bench/run.ts writes
        return { model: heMlp([784, 300, 100, 10], 1), data: await openDataFile(file) };
      },
    },
    onnx(
      'residual-ln-1024',
      '784-1024, two pre-norm residual blocks x + fc2(relu(fc1(LayerNorm(x)))) of width 1024, LayerNorm, 10',
    ),
    onnx(
      'cnn-head',
      'Conv-ReLU-MaxPool x2 (16, 32 channels; the frozen prefix) on 1x28x28, then 1568-512-10',
    ),
  ];
}

/** Writes the graph networks and their data with torch, once per cache folder. */
function ensureGraphNetworks(cache: string): void {
  const graphDir = path.join(cache, 'graph');
  if (
    ['residual-ln-1024.onnx', 'cnn-head.onnx', 'digits-10000.npy'].every((f) =>
      existsSync(path.join(graphDir, f)),
    )
  )
    return;
  const made = spawnSync(PYTHON, [path.join(here, 'make_graph_networks.py'), graphDir], {
    cwd: root,
    encoding: 'utf8',
  });
  if (made.status !== 0) throw new Error(`make_graph_networks.py failed:\n${made.stderr}`);
}

const s = (ms: number) => (ms / 1000).toFixed(3);

/** The table (markdown) of EC scoring times on the graph networks and the plain MLP. */
export async function benchGraphNetworks(options: GraphBenchOptions): Promise<string> {
  ensureGraphNetworks(options.cache);
  const gemm = await createOrtGemm();
  const rows: string[] = [];
  const loads: number[] = [os.loadavg()[0]];
  for (const net of networks(options.cache)) {
    const { model, data } = await net.open(gemm);
    const emitted = await timeScore(model, data, gemm, options.repeats);
    const walked = await timeScore(model, data, withoutGraphs(gemm), options.repeats);
    loads.push(os.loadavg()[0]);
    const [a, b] = [median(emitted.totals), median(walked.totals)];
    const runs = (t: Timed) => t.totals.map((ms) => (ms / 1000).toFixed(2)).join(', ');
    const graphPhase = (emitted.phases.sensitivity ?? 0) + (emitted.phases.statistics ?? 0);
    const [cpuA, cpuB] = [median(emitted.cpu), median(walked.cpu)];
    rows.push(
      `| ${net.name} | ${net.what} | ${model.layers.length} | ${s(a)} (${runs(emitted)}) | ${s(cpuA)} | ${s(emitted.phases.compile ?? 0)} | ${s(graphPhase)} | ${s(b)} (${runs(walked)}) | ${s(cpuB)} | ${(b / a).toFixed(2)} | ${(cpuB / cpuA).toFixed(2)} |`,
    );
  }
  await gemm.dispose?.();
  return [
    '## Graph networks (bench/graph/time-graphs.ts)',
    '',
    `EC scoring (\`score()\`, method ec) of N = ${SAMPLES.toLocaleString('en-US')} samples, batch ${BATCH}, onnxruntime-node with ${os.availableParallelism()} threads; median of ${options.repeats} runs after a warm-up on 1,000 samples, runs in brackets (s). ` +
      '"emitted graph": each calibration batch runs as one ONNX graph emitted from the graph by the ops\' forward/VJP definitions (src/graph/emit); "JS walk": `--no-graph` (`withoutGraphs`), the graph walked in JS with one onnxruntime GEMM per product. ' +
      "The graph networks are torch.onnx.export (opset 13) files with random weights from `bench/graph/make_graph_networks.py`, data uniform [0, 1) 1x28x28 (`digits-10000.npy`); the CNN head's convolutions run forward-only in onnxruntime as the frozen prefix, inside the timed call.",
    '',
    `Load average (1 min) ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} on ${os.cpus().length} cores; date ${new Date().toISOString().slice(0, 10)}. Command: \`npx tsx bench/graph/time-graphs.ts --repeats ${options.repeats}\` (also part of \`npm run bench\`).`,
    '',
    '| network | what | FC layers | emitted graph: wall (s) | CPU (s) | compile (s) | graph run (s) | JS walk: wall (s) | CPU (s) | walk / graph, wall | walk / graph, CPU |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      cache: { type: 'string', default: path.join(os.tmpdir(), 'ecprune-bench') },
      repeats: { type: 'string', default: '3' },
    },
  });
  console.log(
    await benchGraphNetworks({ cache: path.resolve(values.cache!), repeats: Number(values.repeats) }),
  );
}
