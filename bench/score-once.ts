/**
 * One EC scoring in a fresh process, for peak-memory measurements (bench/run.ts starts it with
 * `node --import tsx bench/score-once.ts --model DIR --data FILE [--batch-size 1000] [--out DIR]`).
 * Prints one JSON line: wall time, phase timings, the RSS before scoring and the peak RSS of the
 * whole process (`process.resourceUsage().maxRSS`, kB) at exit. `--warmup-data FILE` scores FILE
 * first, untimed (for timing runs; not for memory runs).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeNpy } from '../src/io/npy.js';
import { openDataFile } from '../src/node/datasets.js';
import { createOrtGemm } from '../src/node/ort-gemm.js';
import { score } from '../src/pipeline/score.js';
import type { PhaseTimings } from '../src/timings.js';
import { readModelDir, writeAtomic } from './lib.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    'batch-size': { type: 'string', default: '1000' },
    out: { type: 'string' },
    /** score this (small) file once first, untimed: JIT and ORT session warm-up */
    'warmup-data': { type: 'string' },
  },
});
if (!values.model || !values.data)
  throw new Error('usage: score-once.ts --model DIR --data FILE [--batch-size B] [--out DIR]');

const mlp = await readModelDir(values.model);
const gemm = await createOrtGemm();
if (values['warmup-data']) {
  await score(mlp, await openDataFile(values['warmup-data']), {
    method: 'ec',
    gemm,
    batchSize: Number(values['batch-size']),
  });
}
const dataset = await openDataFile(values.data);
const rssBeforeKB = Math.round(process.memoryUsage().rss / 1024);
const timings: PhaseTimings = {};
const start = performance.now();
const result = await score(mlp, dataset, {
  method: 'ec',
  gemm,
  batchSize: Number(values['batch-size']),
  timings,
});
const ms = performance.now() - start;
if (values.out) {
  await mkdir(values.out, { recursive: true });
  for (const [l, layer] of mlp.layers.entries()) {
    const shape = [layer.weight.rows, layer.weight.cols];
    await writeAtomic(
      path.join(values.out, `I${l}.npy`),
      writeNpy({ shape, data: Float32Array.from(result.importance[l]) }),
    );
    await writeAtomic(
      path.join(values.out, `D${l}.npy`),
      writeNpy({ shape, data: Float32Array.from(result.deltaBias![l]) }),
    );
  }
}
await gemm.dispose?.();
const maxRssKB = process.resourceUsage().maxRSS;
process.stdout.write(`${JSON.stringify({ ms, timings, rssBeforeKB, maxRssKB })}\n`);
