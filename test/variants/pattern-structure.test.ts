import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyPruning } from '../../src/compensate/apply.js';
import { materialize } from '../../src/data/dataset.js';
import { createRandom } from '../../src/data/random.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { prune } from '../../src/pipeline/prune.js';
import { ecScore } from '../../src/score/ec.js';
import { collectStatistics } from '../../src/score/statistics.js';
import { satisfiesPattern, selectPatternLayer } from '../../src/select/pattern.js';
import { neuronKeepMasks, neuronScores } from '../../src/select/structure.js';
import { assertClose } from '../core/helpers.js';
import { randomData, randomMlp } from './helpers.js';

const base = { gemm: tsGemm, batchSize: 16 } as const;

describe('N:M pattern', () => {
  it('every group keeps exactly min(n, group size), the highest scores (random shapes and scores)', () => {
    const random = createRandom(3);
    for (let trial = 0; trial < 40; trial++) {
      const m = 1 + random.int(8);
      const n = 1 + random.int(m);
      const rows = 1 + random.int(5);
      const cols = 1 + random.int(20);
      // few distinct values, so that ties happen
      const scores = Float64Array.from({ length: rows * cols }, () => random.int(4));
      const keep = selectPatternLayer(scores, rows, cols, { n, m });
      assert.ok(satisfiesPattern(keep, rows, cols, { n, m }));
      for (let i = 0; i < rows; i++) {
        for (let start = 0; start < cols; start += m) {
          const group = Array.from({ length: Math.min(m, cols - start) }, (_, g) => i * cols + start + g);
          const kept = group.filter((p) => keep[p]);
          assert.equal(kept.length, Math.min(n, group.length), `${n}:${m} row ${i} group at ${start}`);
          const lowestKept = Math.min(...kept.map((p) => scores[p]));
          for (const p of group) if (!keep[p]) assert.ok(scores[p] <= lowestKept);
        }
      }
    }
  });

  for (const steps of [1, 2]) {
    it(`prune 2:4 (steps ${steps}): the model satisfies the pattern, sparsity 0.5`, async () => {
      const mlp = randomMlp([8, 12, 6, 3], { kind: 'relu' }, 41);
      const data = randomData(30, 8, 42, 3);
      const result = await prune(mlp, data, {
        ...base,
        pattern: { n: 2, m: 4 },
        steps,
        sequential: steps === 2,
      });
      assert.equal(result.sparsity, 0.5);
      result.model.layers.forEach((layer, l) => {
        const { rows, cols, data: w } = layer.weight;
        const nonzero = Uint8Array.from(w, (v) => +(v !== 0));
        assert.ok(satisfiesPattern(nonzero, rows, cols, { n: 2, m: 4 }), `layer ${l}`);
        assert.ok(satisfiesPattern(result.keepMasks[l], rows, cols, { n: 2, m: 4 }), `layer ${l} mask`);
        assert.equal(
          result.keepMasks[l].reduce((a, b) => a + b, 0),
          rows * Math.floor(cols / 4) * 2 + rows * Math.min(2, cols % 4),
        );
      });
    });
  }
});

describe('neuron removal', () => {
  const mlp = randomMlp([7, 12, 10, 4], { kind: 'tanh' }, 51);
  const data = randomData(35, 7, 52);

  for (const scope of ['global', 'layer'] as const) {
    it(`the shrunk network equals the zeroed-neuron, bias-folded one (${scope})`, async () => {
      const result = await prune(mlp, data, { ...base, structure: 'neuron', sparsity: 0.5, scope });
      const keep = result.neurons!.keep;
      const removed = keep.reduce((sum, k) => sum + k.length - k.reduce((a, b) => a + b, 0), 0);
      assert.equal(removed, 11); // round(0.5 · 22)
      const [kept0, kept1] = keep.map((k) => k.reduce((a, b) => a + b, 0));
      const shapes = result.model.layers.map((layer) => [layer.weight.rows, layer.weight.cols]);
      assert.deepEqual(shapes, [
        [kept0, 7],
        [kept1, kept0],
        [4, kept1],
      ]);
      const masked = applyPruning(mlp, neuronKeepMasks(mlp, keep), result.deltaBias);
      const { x } = await materialize(data);
      const [small, zeroed] = [await forward(result.model, x, tsGemm), await forward(masked, x, tsGemm)];
      assertClose(small.data, zeroed.data, 'outputs', 1e-5, 1e-2);
      for (let i = 0; i < small.data.length; i++) assert.ok(Math.abs(small.data[i] - zeroed.data[i]) < 1e-5);
    });
  }

  it('neuron scores are the column sums of the next layer’s EC scores', async () => {
    const statistics = await collectStatistics(mlp, data, base);
    const scores = ecScore(mlp, statistics, {});
    const neurons = neuronScores(mlp, scores);
    const { rows, cols } = mlp.layers[2].weight;
    for (let k = 0; k < cols; k++) {
      let sum = 0;
      for (let i = 0; i < rows; i++) sum += scores[2][i * cols + k];
      assert.equal(neurons[1][k], sum);
    }
  });

  it('a neuron whose activation is constant is removed for free: the fold absorbs it exactly', async () => {
    const net = randomMlp([3, 5, 2], { kind: 'relu' }, 61);
    // neuron 2: zero weights and a positive bias → constant activation 0.7 on every sample
    net.layers[0].weight.data.fill(0, 2 * 3, 3 * 3);
    net.layers[0].bias[2] = 0.7;
    const calibration = randomData(20, 3, 62);
    const result = await prune(net, calibration, { ...base, structure: 'neuron', sparsity: 0.2 });
    assert.deepEqual(Array.from(result.neurons!.keep[0]), [1, 1, 0, 1, 1]);
    const { x } = await materialize(calibration);
    assertClose(
      (await forward(result.model, x, tsGemm)).data,
      (await forward(net, x, tsGemm)).data,
      'outputs',
      1e-5,
    );
  });
});
