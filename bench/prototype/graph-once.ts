/** Peak RSS and time of one prototype graph scoring in a fresh process (compare bench/score-once.ts). */
import { readModelDir } from '../lib.js';
import { ecStatisticsGraph } from './ec-graph.js';
import { reusedNpyDataset } from './fast-npy.js';
const [modelDir, dataFile, threads] = process.argv.slice(2);
const mlp = await readModelDir(modelDir);
const start = performance.now();
await ecStatisticsGraph(mlp, await reusedNpyDataset(dataFile), { batchSize: 500, threads: Number(threads ?? 2) });
console.log(JSON.stringify({ ms: performance.now() - start, maxRssKB: process.resourceUsage().maxRSS }));
