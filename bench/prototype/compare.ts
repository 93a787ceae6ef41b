/**
 * A/B of the prototype optimisations (bench/prototype/ec-fast.ts) against the library's `score()`,
 * rounds interleaved so that the machine's changing load hits every variant alike.
 *
 *   npx tsx bench/prototype/compare.ts MODEL_DIR DATA.npy [rounds] [variant names...]
 */
import { openDataFile } from '../../src/node/datasets.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
import { score } from '../../src/prune.js';
import { ecScore } from '../../src/score/ec.js';
import type { PhaseTimings } from '../../src/timings.js';
import { agreement, median, readModelDir } from '../lib.js';
import { ecStatisticsFast, type FastOptions } from './ec-fast.js';
import { ecStatisticsGraph, type GraphOptions } from './ec-graph.js';
import { reusedNpyDataset } from './fast-npy.js';

const [modelDir, dataFile, roundsText, ...only] = process.argv.slice(2);
const rounds = Number(roundsText ?? 3);
const mlp = await readModelDir(modelDir);

const VARIANTS: Record<string, FastOptions | 'library' | 'library-t2' | { graph: GraphOptions; fastRead?: boolean }> = {
  library: 'library',
  /** the library with createOrtGemm(2): two intra-op threads instead of ORT's default */
  'library-t2': 'library-t2',
  proto: {},
  reuse: { reuse: true },
  onehot: { onehot: true },
  fused: { fused: true },
  chunk256: { chunk: 256 },
  'reuse+onehot': { reuse: true, onehot: true },
  'reuse+onehot+fused': { reuse: true, onehot: true, fused: true },
  'reuse+onehot+fused+fast32': { reuse: true, onehot: true, fused: true, fast32: true },
  all: { reuse: true, onehot: true, fused: true, fast32: true, chunk: 256 },
  'all-chunk100': { reuse: true, onehot: true, fused: true, fast32: true, chunk: 100 },
  'all-nospin': { reuse: true, onehot: true, fused: true, fast32: true, chunk: 256, spinning: false },
  'all-nochunk-nospin': { reuse: true, onehot: true, fused: true, fast32: true, spinning: false },
  graph: { graph: {} },
  'graph-nospin': { graph: { spinning: false } },
  'graph-b500': { graph: { batchSize: 500 } },
  'graph-b250': { graph: { batchSize: 250 } },
  'graph-b500+read': { graph: { batchSize: 500 }, fastRead: true },
  'graph+read': { graph: {}, fastRead: true },
  'all-chunk100-t2': { reuse: true, onehot: true, fused: true, fast32: true, chunk: 100, threads: 2 },
  'graph-b500+read-t2': { graph: { batchSize: 500, threads: 2 }, fastRead: true },
  'graph+read-t2': { graph: { threads: 2 }, fastRead: true },
  'graph-b500+read-t2-nospin': { graph: { batchSize: 500, threads: 2, spinning: false }, fastRead: true },
  'all-chunk100-t2-nospin': { reuse: true, onehot: true, fused: true, fast32: true, chunk: 100, threads: 2, spinning: false },
};
const names = only.length ? only : Object.keys(VARIANTS);

const libraryGemm = await createOrtGemm();
const libraryGemm2 = await createOrtGemm(2);
let reference: Float64Array[] | undefined;
const times = new Map<string, number[]>(names.map((n) => [n, []]));
const phases = new Map<string, PhaseTimings[]>(names.map((n) => [n, []]));
const agree = new Map<string, number>();
for (let r = 0; r <= rounds; r++) {
  for (const name of names) {
    const variant = VARIANTS[name];
    const timings: PhaseTimings = {};
    const faults0 = process.resourceUsage().minorPageFault;
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    let importance: Float64Array[];
    if (variant === 'library' || variant === 'library-t2') {
      const result = await score(mlp, await openDataFile(dataFile), {
        method: 'ec',
        gemm: variant === 'library' ? libraryGemm : libraryGemm2,
        batchSize: 1000,
        timings,
      });
      importance = result.importance;
    } else if ('graph' in variant) {
      const data = variant.fastRead ? await reusedNpyDataset(dataFile) : await openDataFile(dataFile);
      const stats = await ecStatisticsGraph(mlp, data, { ...variant.graph, timings });
      importance = ecScore(mlp, stats, {});
    } else {
      const stats = await ecStatisticsFast(mlp, await openDataFile(dataFile), { ...variant, timings });
      importance = ecScore(mlp, stats, {});
    }
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    const faults = process.resourceUsage().minorPageFault - faults0;
    if (r === 0) {
      // round 0 = warm-up, and the agreement check
      reference ??= importance;
      agree.set(name, agreement(importance, reference).maxRelative);
      continue;
    }
    times.get(name)!.push(ms);
    phases.get(name)!.push({ ...timings, user: cpu.user / 1000, system: cpu.system / 1000, faults });
    process.stderr.write(
      `round ${r} ${name}: ${(ms / 1000).toFixed(3)} s, ${faults} minor faults ${JSON.stringify(timings)}\n`,
    );
  }
}
const base = median(times.get(names[0])!);
console.log(
  `| variant | median s | best s | × vs ${names[0]} (median) | × (best) | forward | sensitivity | statistics | CPU user s | CPU sys s | minor page faults | runs | max rel diff of I vs ${names[0]} |`,
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|');
const bestBase = Math.min(...times.get(names[0])!);
for (const name of names) {
  const t = times.get(name)!;
  const p = phases.get(name)!;
  const med = (k: string) => (median(p.map((x) => x[k] ?? 0)) / 1000).toFixed(3);
  console.log(
    `| ${name} | ${(median(t) / 1000).toFixed(3)} | ${(Math.min(...t) / 1000).toFixed(3)} | ${(base / median(t)).toFixed(2)} | ${(bestBase / Math.min(...t)).toFixed(2)} | ${med('forward')} | ${med('sensitivity')} | ${med('statistics')} | ${med('user')} | ${med('system')} | ${median(p.map((x) => x.faults))} | ${t.map((x) => (x / 1000).toFixed(2)).join(', ')} | ${agree.get(name)!.toExponential(1)} |`,
  );
}
await libraryGemm.dispose?.();
await libraryGemm2.dispose?.();
