/** Helpers shared by the sparse runtime's tests (ecsr.test.ts, wasm-kernels.test.ts). */
import assert from 'node:assert/strict';
import { createRandom } from '../../src/data/random.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import type { Activation } from '../../src/model/activations.js';
import { matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';

export const rng = (seed: number): (() => number) => createRandom(seed).next;

/** The activation of `kind`, with `alpha` where it takes one. */
export const withAlpha = (kind: Activation['kind'], alpha: number): Activation =>
  kind === 'leaky_relu' || kind === 'elu' ? { kind, alpha } : ({ kind } as Activation);

/** n inputs, a share `zeros` of them exactly ±0, the rest in ±[0.05, 2). */
export function inputWithZeros(n: number, zeros: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() < zeros ? 0 : 0.05 + 2 * r()) * (r() < 0.5 ? -1 : 1));
}

/** |actual - expected| <= tol, relative above 1: float32 sums of a few hundred terms differ by a few ulps of their size. */
export function assertClose(actual: Float32Array, expected: Float32Array, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= tol * Math.max(1, Math.abs(expected[i])))) {
      assert.fail(`${what}: [${i}] = ${actual[i]}, expected ${expected[i]} (error ${err})`);
    }
  }
}

/** The dense float32 forward pass (the TS GEMM) of `batch` samples: the reference outputs. */
export async function dense(mlp: Mlp, x: Float32Array, batch = 1): Promise<Float32Array> {
  return (await forward(mlp, matrix(batch, x.length / batch, x.slice()), tsGemm)).data;
}
