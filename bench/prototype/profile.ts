/** Per-phase split of the prototype's time into ORT GEMM calls and the rest (JS loops). */
import { openDataFile } from '../../src/node/datasets.js';
import type { PhaseTimings } from '../../src/timings.js';
import { readModelDir } from '../lib.js';
import { ecStatisticsFast, type FastOptions, gemmClock } from './ec-fast.js';

const [modelDir, dataFile, optionsJson, roundsText] = process.argv.slice(2);
const mlp = await readModelDir(modelDir);
const options = JSON.parse(optionsJson ?? '{}') as FastOptions;
for (let r = 0; r <= Number(roundsText ?? 2); r++) {
  gemmClock.ms = {};
  gemmClock.flops = {};
  const timings: PhaseTimings = {};
  const t = performance.now();
  await ecStatisticsFast(mlp, await openDataFile(dataFile), { ...options, timings });
  const total = performance.now() - t;
  if (r === 0) continue;
  const rows = ['forward', 'sensitivity', 'statistics'].map((p) => {
    const g = gemmClock.ms[p] ?? 0;
    return `${p}: ${(timings[p] / 1000).toFixed(3)} s (GEMM ${(g / 1000).toFixed(3)} s at ${((gemmClock.flops[p] ?? 0) / g / 1e6).toFixed(1)} GFLOP/s, rest ${((timings[p] - g) / 1000).toFixed(3)} s)`;
  });
  console.log(`total ${(total / 1000).toFixed(3)} s | ${rows.join(' | ')}`);
}
