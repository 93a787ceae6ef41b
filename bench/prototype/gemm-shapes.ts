// GEMM throughput of onnxruntime-node on the shapes of the EC pipeline (784-1024-1024-10, B = 1000).

import type { GemmOptions } from '../../src/gemm/gemm.js';
import { matrix } from '../../src/model/matrix.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';

const threads = Number(process.argv[2] ?? 0);
const gemm = await createOrtGemm(threads);
const rand = (r: number, c: number) => {
  const m = matrix(r, c);
  for (let i = 0; i < m.data.length; i++) m.data[i] = Math.random() - 0.5;
  return m;
};
const cases: [string, number, number, number, number, number, GemmOptions][] = [
  ['square 2048', 2048, 2048, 2048, 2048, 0, {}],
  ['fwd 1000x784 . 1024x784^T', 1000, 784, 1024, 784, 0, { transB: true }],
  ['fwd 1000x1024 . 1024x1024^T', 1000, 1024, 1024, 1024, 0, { transB: true }],
  ['bwd 10000x1024 . 1024x1024', 10000, 1024, 1024, 1024, 0, {}],
  ['bwd onehot 10000x10 . 10x1024', 10000, 10, 10, 1024, 0, {}],
  ['stat (1000x1024)^T . 1000x2048', 1000, 1024, 1000, 2048, 0, { transA: true }],
  ['stat (1000x1024)^T . 1000x1568', 1000, 1024, 1000, 1568, 0, { transA: true }],
  ['stat (1000x10)^T . 1000x2048', 1000, 10, 1000, 2048, 0, { transA: true }],
];
for (const [name, ar, ac, br, bc, , opts] of cases) {
  const a = rand(ar, ac),
    b = rand(br, bc);
  const m = opts.transA ? ac : ar,
    k = opts.transA ? ar : ac,
    n = opts.transB ? br : bc;
  await gemm.matmul(a, b, opts);
  const times: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t = performance.now();
    await gemm.matmul(a, b, opts);
    times.push(performance.now() - t);
  }
  times.sort((x, y) => x - y);
  const gf = (t: number) => ((2 * m * k * n) / t / 1e6).toFixed(1);
  console.log(
    `${name.padEnd(34)} best ${gf(times[0])}  median ${gf(times[3])} GFLOP/s  (${times[0].toFixed(2)} ms)`,
  );
}
console.log('load', (await import('node:os')).loadavg());
