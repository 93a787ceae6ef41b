import * as ort from 'onnxruntime-node';
import { gemmModelBytes } from '../../src/gemm/gemm-model.js';

const opts = JSON.parse(process.argv[2] ?? '{}');
const s = await ort.InferenceSession.create(gemmModelBytes(false, false), {
  intraOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  ...opts,
});
const m = 10000,
  k = 10,
  n = 1024;
const A = new ort.Tensor('float32', new Float32Array(m * k).fill(1), [m, k]);
const B = new ort.Tensor('float32', new Float32Array(k * n).fill(1), [k, n]);
const Y = new ort.Tensor('float32', new Float32Array(m * n).fill(0), [m, n]);
for (const pre of [false, true, false, true]) {
  for (let r = 0; r < 3; r++) {
    const f0 = process.resourceUsage().minorPageFault;
    const t = performance.now();
    await (pre ? s.run({ A, B }, { Y }) : s.run({ A, B }));
    const dt = performance.now() - t;
    console.log(
      pre ? 'prealloc' : 'fresh   ',
      dt.toFixed(1),
      'ms, minor faults',
      process.resourceUsage().minorPageFault - f0,
    );
  }
}
