// Does onnxruntime-node write into a pre-allocated output tensor (fetches)? And what does it save?

import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';

const { onnx } = onnxProto;
function gemmModel(): Uint8Array {
  const t = (name: string, dims: string[]) => ({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((dimParam) => ({ dimParam })) },
      },
    },
  });
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 7,
      opsetImport: [{ domain: '', version: 13 }],
      graph: {
        name: 'g',
        node: [{ opType: 'Gemm', input: ['A', 'B'], output: ['Y'] }],
        input: [t('A', ['m', 'k']), t('B', ['k', 'n'])],
        output: [t('Y', ['m', 'n'])],
      },
    }),
  ).finish();
}
const s = await ort.InferenceSession.create(gemmModel(), {
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
