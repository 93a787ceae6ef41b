import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import {
  dequantize,
  dequantizeMlp,
  fineTuneCentroids,
  quantizeCodebook,
  quantizeInt8,
} from '../../src/quantize/quantize.js';
import { initMlp, keepMasksOf, lossAndGradients, trainModel } from '../../src/train/train.js';
import { rng } from '../runtime/helpers.js';

function randomLayer(rows: number, cols: number, keep: number, seed: number) {
  const r = rng(seed);
  const weight = matrix(
    rows,
    cols,
    Float32Array.from({ length: rows * cols }, () => (r() < keep ? 2 * r() - 1 : 0)),
  );
  return { weight, mask: Uint8Array.from(weight.data, (w) => +(w !== 0)) };
}

describe('quantisation of the kept weights', () => {
  it('int8: codes in -127..127, each weight within half a step of its row scale, dropped weights stay zero', () => {
    const { weight, mask } = randomLayer(20, 50, 0.3, 1);
    const q = quantizeInt8(weight, mask);
    assert.equal(
      q.codes.length,
      mask.reduce((a, b) => a + b, 0),
    );
    const back = dequantize(weight, mask, q);
    for (let p = 0; p < weight.data.length; p++) {
      const scale = q.scales[Math.floor(p / 50)];
      assert.ok(Math.abs(back.data[p] - weight.data[p]) <= scale / 2 + 1e-7, `weight ${p}`);
      if (!mask[p]) assert.equal(back.data[p], 0);
    }
    assert.ok(q.codes.every((c) => c >= -127 && c <= 127));
    assert.ok(q.codes.some((c) => Math.abs(c) === 127));
  });

  it('codebook: 2^bits centroids, every weight on its nearest centroid, same seed same codebook, error falls with bits', () => {
    const { weight, mask } = randomLayer(30, 40, 0.5, 2);
    let previousError = Number.POSITIVE_INFINITY;
    for (const bits of [2, 4, 6]) {
      const q = quantizeCodebook(weight, mask, { bits, seed: 5 });
      assert.equal(q.centroids.length, 2 ** bits);
      assert.deepEqual(quantizeCodebook(weight, mask, { bits, seed: 5 }), q);
      let k = 0;
      let error = 0;
      for (let p = 0; p < mask.length; p++) {
        if (!mask[p]) continue;
        const w = weight.data[p];
        const own = Math.abs(w - q.centroids[q.indices[k]]);
        for (const c of q.centroids)
          assert.ok(own <= Math.abs(w - c) + 1e-6, `weight ${p} is not on its nearest centroid`);
        error += own ** 2;
        k++;
      }
      assert.ok(error < previousError, `${bits} bits: squared error ${error}`);
      previousError = error;
    }
    assert.throws(() => quantizeCodebook(weight, mask, { bits: 9 }), /bits 9/);
  });

  it('centroid fine-tuning lowers the training loss, with the weights still tied to the codebook', async () => {
    const r = rng(3);
    const samples = 256;
    const x = matrix(
      samples,
      12,
      Float32Array.from({ length: samples * 12 }, () => 2 * r() - 1),
    );
    const labels = Int32Array.from(
      { length: samples },
      (_, n) => (x.data[n * 12] + x.data[n * 12 + 1] > 0 ? 1 : 0) + (x.data[n * 12 + 2] > 0.3 ? 2 : 0),
    );
    const y = { kind: 'classes' as const, values: labels };
    const data = inMemoryDataset(x, y);
    const initial = initMlp({ sizes: [12, 16, 4], activation: { kind: 'relu' }, seed: 1 });
    const { model: trained } = await trainModel(initial, data, {
      epochs: 30,
      batchSize: 32,
      learningRate: 0.01,
      loss: 'ce',
      gemm: tsGemm,
      seed: 1,
    });
    // prune half of the weights by magnitude, then a 2-bit codebook: coarse, so the loss rises
    const pruned = {
      layers: trained.layers.map((l) => {
        const sorted = Float32Array.from(l.weight.data, Math.abs).sort();
        const threshold = sorted[sorted.length >> 1];
        return {
          ...l,
          weight: { ...l.weight, data: l.weight.data.map((w) => (Math.abs(w) < threshold ? 0 : w)) },
        };
      }),
    };
    const masks = keepMasksOf(pruned);
    const codebooks = pruned.layers.map((l, i) => quantizeCodebook(l.weight, masks[i], { bits: 2, seed: i }));
    const lossOf = async (mlp: Mlp) => (await lossAndGradients(mlp, x, y, 'ce', tsGemm)).loss;
    const before = await lossOf(dequantizeMlp(pruned, masks, codebooks));
    const tuned = await fineTuneCentroids(pruned, masks, codebooks, data, {
      epochs: 20,
      batchSize: 64,
      learningRate: 0.05,
      loss: 'ce',
      gemm: tsGemm,
    });
    const after = await lossOf(tuned.mlp);
    assert.ok(after < 0.9 * before, `loss ${before} -> ${after}`);
    // still a codebook model: every kept weight is one of its layer's centroids, the rest zero
    tuned.mlp.layers.forEach((layer, l) => {
      const centroids = new Set(tuned.codebooks[l].centroids);
      layer.weight.data.forEach((w, p) => {
        assert.ok(masks[l][p] ? centroids.has(w) : w === 0, `layer ${l} weight ${p}`);
      });
      assert.deepEqual(tuned.codebooks[l].indices, codebooks[l].indices);
    });
  });
});
