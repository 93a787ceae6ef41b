/**
 * The onnxruntime-web GEMM in Node (the same wasm the browser demo runs): its products equal the
 * TS loop's for every transpose pair, and pruning through it gives the TS loop's masks.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { createRandom } from '../../src/data/random.js';
import type { GemmOptions } from '../../src/gemm/gemm.js';
import { createOrtWebGemm } from '../../src/gemm/ort-web-gemm.js';
import { matmulTs, tsGemm } from '../../src/gemm/ts-gemm.js';
import { type Matrix, matrix } from '../../src/model/matrix.js';
import { prune } from '../../src/pipeline/prune.js';
import { ecScore } from '../../src/score/ec.js';
import { collectStatistics } from '../../src/score/statistics.js';
import { randomMlp } from '../helpers/random.js';

const WASM = new URL('../../node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm', import.meta.url);

function randomMatrix(rows: number, cols: number, seed: number): Matrix {
  const random = createRandom(seed);
  const m = matrix(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = random.normal();
  return m;
}

const absolute = (m: Matrix): Matrix => ({ ...m, data: m.data.map(Math.abs) });

/**
 * Two float32 products of the same operands differ by at most the summation error bound of each:
 * |C1 - C2| <= 2 · k · 2^-24 · (|A| · |B|) entry by entry (the order of the additions may differ).
 */
function assertWithinRounding(
  actual: Matrix,
  expected: Matrix,
  a: Matrix,
  b: Matrix,
  options: GemmOptions,
): void {
  const k = options.transA ? a.rows : a.cols;
  const bound = matmulTs(absolute(a), absolute(b), options).data;
  for (let i = 0; i < expected.data.length; i++) {
    const error = Math.abs(actual.data[i] - expected.data[i]);
    assert.ok(error <= 2 * k * 2 ** -24 * bound[i], `entry ${i}: ${actual.data[i]} vs ${expected.data[i]}`);
  }
}

describe('onnxruntime-web GEMM (wasm, in Node)', () => {
  const fallbacks: unknown[] = [];
  // threshold 0: even tiny products go through onnxruntime-web
  const ort = createOrtWebGemm({
    wasmBinary: readFileSync(WASM),
    smallFlops: 0,
    onFallback: (e) => fallbacks.push(e),
  });
  after(async () => (await ort).dispose?.());

  it('starts (no fallback to the TS loop)', async () => {
    assert.equal((await ort).name, 'onnxruntime-web');
    assert.deepEqual(fallbacks, []);
  });

  it('gives the products of matmulTs for every transpose pair and for empty shapes', async () => {
    const gemm = await ort;
    for (const [m, k, n] of [
      [23, 37, 19],
      [1, 300, 1],
      [128, 196, 64],
    ]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const a = randomMatrix(transA ? k : m, transA ? m : k, m + k);
          const b = randomMatrix(transB ? n : k, transB ? k : n, k + n);
          const product = await gemm.matmul(a, b, { transA, transB });
          const expected = matmulTs(a, b, { transA, transB });
          assert.deepEqual([product.rows, product.cols], [m, n]);
          assertWithinRounding(product, expected, a, b, { transA, transB });
        }
      }
    }
    const empty = await gemm.matmul(matrix(3, 0), matrix(0, 4));
    assert.deepEqual([empty.rows, empty.cols, [...empty.data]], [3, 4, Array(12).fill(0)]);
  });

  it('prunes the same weights as the TS loop', async () => {
    const gemm = await ort;
    const random = createRandom(5);
    const layer = (nOut: number, nIn: number, last: boolean) => ({
      weight: randomMatrix(nOut, nIn, nOut * nIn),
      bias: Float32Array.from({ length: nOut }, () => 0.1 * random.normal()),
      activation: last ? ({ kind: 'identity' } as const) : ({ kind: 'relu' } as const),
    });
    const net = { layers: [layer(32, 20, false), layer(10, 32, true)] };
    const data = inMemoryDataset(randomMatrix(200, 20, 9));
    const reference = await prune(net, data, { sparsity: 0.7, gemm: tsGemm });
    const other = await prune(net, data, { sparsity: 0.7, gemm });
    assert.deepEqual(other.keepMasks, reference.keepMasks);
  });

  it("runs the calibration pass as one graph per batch, with the GEMM path's sums", async () => {
    const gemm = await ort;
    assert.ok(gemm.createSession, 'onnxruntime-web runs graphs');
    const net = randomMlp([20, 32, 16, 10], { kind: 'gelu' }, 6);
    const data = inMemoryDataset(randomMatrix(300, 20, 7), {
      kind: 'classes',
      values: new Int32Array(300).fill(3),
    });
    const options = { batchSize: 128, lossGradient: 'ce' } as const;
    const reference = await collectStatistics(net, data, { ...options, gemm: tsGemm });
    const graph = await collectStatistics(net, data, { ...options, gemm });
    // m1, m2 are sums about a shift the two paths choose differently: compare what is shift-free
    const [importance, expectedImportance] = [ecScore(net, graph, {}), ecScore(net, reference, {})];
    graph.layers.forEach((layer, l) => {
      const compared = {
        m0: [layer.m0, reference.layers[l].m0],
        'EC importance': [importance[l], expectedImportance[l]],
        lossGradient: [layer.lossGradient!, reference.layers[l].lossGradient!],
      };
      for (const [key, [a, b]] of Object.entries(compared)) {
        const scale = Math.max(...b.map(Math.abs));
        const gap = Math.max(...a.map((v, i) => Math.abs(v - b[i])));
        assert.ok(gap <= 2e-5 * scale, `layer ${l} ${key}: ${gap} vs scale ${scale}`);
      }
    });
  });
});
