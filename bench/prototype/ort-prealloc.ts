// Does onnxruntime-node write into a pre-allocated output tensor (fetches)? And what does it save?

import * as ort from 'onnxruntime-node';
import { gemmModelBytes } from '../../src/gemm/gemm-model.js';

const s = await ort.InferenceSession.create(gemmModelBytes(false, false), {
  intraOpNumThreads: 0,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
});
const rand = (n: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() - 0.5;
  return a;
};
for (const [m, k, n] of [
  [10000, 10, 1024],
  [10000, 1024, 1024],
  [1000, 1024, 2048],
]) {
  const A = new ort.Tensor('float32', rand(m * k), [m, k]);
  const B = new ort.Tensor('float32', rand(k * n), [k, n]);
  const out = new Float32Array(m * n);
  const Y = new ort.Tensor('float32', out, [m, n]);
  const fresh: number[] = [];
  const pre: number[] = [];
  let same = false;
  for (let r = 0; r < 6; r++) {
    let t = performance.now();
    const r1 = await s.run({ A, B });
    fresh.push(performance.now() - t);
    t = performance.now();
    await s.run({ A, B }, { Y });
    pre.push(performance.now() - t);
    out.fill(0);
    const r3 = await s.run({ A, B }, { Y });
    same =
      out[5] === (r1.Y.data as Float32Array)[5] && out[5] !== 0 && (r3.Y.data as Float32Array)[5] === out[5];
  }
  const best = (x: number[]) => Math.min(...x).toFixed(1);
  console.log(
    `${m}x${k}x${n}: fresh output best ${best(fresh)} ms, preallocated best ${best(pre)} ms; writes into ours: ${same}; GFLOP/s prealloc ${((2 * m * k * n) / Math.min(...pre) / 1e6).toFixed(1)}`,
  );
}
