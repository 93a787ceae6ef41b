import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';

const { onnx } = onnxProto;
function model(): Uint8Array {
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
const opts = JSON.parse(process.argv[2] ?? '{}');
const s = await ort.InferenceSession.create(model(), {
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
