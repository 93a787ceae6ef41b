// Relative error of onnxruntime's float32 GEMM against a float64 product, per shape.
import type { GemmOptions } from '../../src/gemm/gemm.js';
import { matmulTs } from '../../src/gemm/ts-gemm.js';
import { matrix } from '../../src/model/matrix.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';

const gemm = await createOrtGemm();
const fill = (r: number, c: number, f: () => number) => {
  const m = matrix(r, c);
  for (let i = 0; i < m.data.length; i++) m.data[i] = f();
  return m;
};
function f64(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
) {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const av = transA ? a[p * m + i] : a[i * k + p];
      for (let j = 0; j < n; j++) out[i * n + j] += av * (transB ? b[j * k + p] : b[p * n + j]);
    }
  return out;
}
const cases: [string, number, number, number, GemmOptions, () => number, () => number][] = [
  [
    'stats Sᵀ C (positive)',
    300,
    1000,
    1568,
    { transA: true },
    () => Math.random() * 0.1,
    () => Math.random(),
  ],
  ['stats no trans (positive)', 300, 1000, 1568, {}, () => Math.random() * 0.1, () => Math.random()],
  ['forward x Wᵀ', 1000, 784, 300, { transB: true }, () => Math.random(), () => Math.random() - 0.5],
];
for (const [name, m, k, n, opts, fa, fb] of cases) {
  const a = opts.transA ? fill(k, m, fa) : fill(m, k, fa);
  const b = opts.transB ? fill(n, k, fb) : fill(k, n, fb);
  const exact = f64(a.data, b.data, m, k, n, !!opts.transA, !!opts.transB);
  for (const [label, out] of [
    ['ort', (await gemm.matmul(a, b, opts)).data],
    ['ts', matmulTs(a, b, opts).data],
  ] as const) {
    let worst = 0,
      sum = 0;
    for (let i = 0; i < exact.length; i++) {
      const r = Math.abs(out[i] - exact[i]) / Math.abs(exact[i]);
      worst = Math.max(worst, r);
      sum += r;
    }
    console.log(
      `${name} ${m}x${k}x${n} ${label}: max rel ${worst.toExponential(2)}, mean rel ${(sum / exact.length).toExponential(2)}`,
    );
  }
}
