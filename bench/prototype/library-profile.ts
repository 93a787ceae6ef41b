/**
 * Where the library's own `score()` spends its time: the GEMM backend is wrapped to time every
 * call (classified by kind: forward x Wᵀ, backward g W, statistics Sᵀ C) with its FLOPs and the
 * minor page faults taken inside it; the rest of each phase is JS work.
 *
 *   npx tsx bench/prototype/library-profile.ts MODEL_DIR DATA.npy [rounds]
 */
import type { Gemm } from '../../src/gemm/gemm.js';
import { productShape } from '../../src/gemm/gemm.js';
import { openDataFile } from '../../src/node/datasets.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
import { score } from '../../src/prune.js';
import type { PhaseTimings } from '../../src/timings.js';
import { readModelDir } from '../lib.js';

const [modelDir, dataFile, roundsText] = process.argv.slice(2);
const mlp = await readModelDir(modelDir);
const ort = await createOrtGemm();
const stats = new Map<string, { ms: number; flops: number; calls: number; faults: number }>();
const timed: Gemm = {
  name: 'timed-ort',
  async matmul(a, b, options = {}) {
    const [m, k, n] = productShape(a, b, options);
    const kind = options.transA
      ? 'statistics Sᵀ[A−c|(A−c)²]'
      : options.transB
        ? 'forward A Wᵀ'
        : k < 64
          ? 'backward, one-hot cotangents × W_L'
          : 'backward g W';
    const faults = process.resourceUsage().minorPageFault;
    const start = performance.now();
    const out = await ort.matmul(a, b, options);
    const s = stats.get(kind) ?? { ms: 0, flops: 0, calls: 0, faults: 0 };
    s.ms += performance.now() - start;
    s.flops += 2 * m * k * n;
    s.calls++;
    s.faults += process.resourceUsage().minorPageFault - faults;
    stats.set(kind, s);
    return out;
  },
};
for (let r = 0; r <= Number(roundsText ?? 2); r++) {
  stats.clear();
  const timings: PhaseTimings = {};
  const faults = process.resourceUsage().minorPageFault;
  const start = performance.now();
  await score(mlp, await openDataFile(dataFile), { method: 'ec', gemm: timed, batchSize: 1000, timings });
  const total = performance.now() - start;
  const allFaults = process.resourceUsage().minorPageFault - faults;
  if (r === 0) continue;
  let gemmMs = 0;
  let gemmFaults = 0;
  console.log(
    `\nround ${r}: total ${(total / 1000).toFixed(3)} s, ${allFaults} minor page faults; phases ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, +(v / 1000).toFixed(3)])))}`,
  );
  console.log('| GEMM kind | calls | time (s) | GFLOP/s | minor faults inside |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [kind, s] of stats) {
    gemmMs += s.ms;
    gemmFaults += s.faults;
    console.log(
      `| ${kind} | ${s.calls} | ${(s.ms / 1000).toFixed(3)} | ${(s.flops / s.ms / 1e6).toFixed(1)} | ${s.faults} |`,
    );
  }
  console.log(`| all GEMMs | | ${(gemmMs / 1000).toFixed(3)} | | ${gemmFaults} |`);
  console.log(
    `| outside GEMMs (JS loops, reading, allocation) | | ${((total - gemmMs) / 1000).toFixed(3)} | | ${allFaults - gemmFaults} |`,
  );
}
await ort.dispose?.();
