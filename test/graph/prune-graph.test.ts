/**
 * EC on graphs that are not chains (a bias-free layer with BatchNorm, LayerNorm, a residual Add, a
 * softmax head): the importance of a weight must be the output error left after its optimal bias
 * shift, measured through the real graph, and compensation must go where the graph can take it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { compensationTarget, type Graph, type Model, withLayers } from '../../src/graph/graph.js';
import { forward } from '../../src/graph/run.js';
import type { Matrix } from '../../src/model/matrix.js';
import { prune } from '../../src/pipeline/prune.js';
import { score } from '../../src/pipeline/score.js';
import { buildGraph, randomInput, residualSpec } from './build.js';

const N = 200;

function residualGraph(): Graph {
  const graph = buildGraph(residualSpec(5));
  const layers = graph.layers.map((layer, l) =>
    l === 0 ? { ...layer, bias: new Float32Array(layer.bias.length), hasBias: false } : layer,
  );
  return withLayers(graph, layers);
}

function calibration(): Matrix {
  const x = randomInput(N, 5, 11, false);
  return { rows: N, cols: 5, data: x.data as Float32Array };
}

async function outputError(a: Model, b: Model, x: Matrix): Promise<number> {
  const [ya, yb] = [await forward(a, x, tsGemm), await forward(b, x, tsGemm)];
  let sum = 0;
  for (let i = 0; i < ya.data.length; i++) sum += (ya.data[i] - yb.data[i]) ** 2;
  return sum / x.rows;
}

describe('EC on a graph with BatchNorm, LayerNorm, a residual Add and a softmax head', () => {
  it('importance = the output error left after the optimal shift, measured through the graph', async () => {
    const graph = residualGraph();
    const x = calibration();
    const { importance, deltaBias } = await score(graph, inMemoryDataset(x), { method: 'ec', gemm: tsGemm });
    // small weights, so that the first-order picture is exact to a few per cent
    let checked = 0;
    for (const [l, i, j] of [
      [0, 1, 2],
      [1, 3, 4],
      [1, 0, 5],
      [2, 2, 1],
    ] as const) {
      const cols = graph.layers[l].weight.cols;
      const layers = graph.layers.map((layer) => ({
        ...layer,
        weight: { ...layer.weight, data: layer.weight.data.slice() },
      }));
      layers[l].weight.data[i * cols + j] = 0.01;
      const small = withLayers(graph, layers);
      const scored = await score(small, inMemoryDataset(x), { method: 'ec', gemm: tsGemm });
      const removed = small.layers.map((layer) => ({
        ...layer,
        weight: { ...layer.weight, data: layer.weight.data.slice() },
        bias: layer.bias.slice(),
      }));
      removed[l].weight.data[i * cols + j] = 0;
      removed[l].bias[i] += scored.deltaBias![l][i * cols + j];
      const actual = await outputError(small, withLayers(graph, removed), x);
      const predicted = scored.importance[l][i * cols + j];
      assert.ok(
        Math.abs(actual - predicted) <= 0.05 * actual + 1e-12,
        `layer ${l} W[${i},${j}]: EC importance ${predicted}, measured ${actual}`,
      );
      checked++;
    }
    assert.equal(checked, 4);
    assert.equal(importance.length, 3);
    assert.ok(
      deltaBias![0].some((d) => d !== 0),
      'the bias-free layer has shifts to give',
    );
  });

  it('at 50 %, EC leaves less output error on the calibration set than magnitude pruning', async () => {
    const graph = residualGraph();
    const x = calibration();
    const data = inMemoryDataset(x);
    const ec = await prune(graph, data, { method: 'ec', sparsity: 0.5, gemm: tsGemm });
    const magnitude = await prune(graph, data, { method: 'magnitude', sparsity: 0.5, gemm: tsGemm });
    const [ecError, magnitudeError] = [
      await outputError(graph, ec.model, x),
      await outputError(graph, magnitude.model, x),
    ];
    assert.ok(ecError < magnitudeError, `EC ${ecError} vs magnitude ${magnitudeError}`);
    assert.equal((ec.model as Graph).nodes, graph.nodes, 'the graph keeps its nodes');
  });

  it('a bias-free layer before BatchNorm compensates through it; one with nothing after gains a bias, or none with newBias false', async () => {
    const graph = residualGraph();
    assert.equal(compensationTarget(graph, 0), 'batchnorm');
    const lastFree = withLayers(
      graph,
      graph.layers.map((layer, l) =>
        l === 2 ? { ...layer, bias: new Float32Array(4), hasBias: false } : layer,
      ),
    );
    assert.equal(compensationTarget(lastFree, 2), 'new-bias');
    const data = inMemoryDataset(calibration());
    const added = await prune(lastFree, data, { sparsity: 0.5, gemm: tsGemm });
    assert.deepEqual(added.addedBiases, ['layer2']);
    assert.ok(added.model.layers[2].bias.some((b) => b !== 0));
    const kept = await prune(lastFree, data, { sparsity: 0.5, gemm: tsGemm, newBias: false });
    assert.deepEqual(kept.uncompensated, ['layer2']);
    assert.ok(kept.model.layers[2].bias.every((b) => b === 0));
    assert.ok(
      kept.model.layers[0].bias.some((b) => b !== 0),
      'the BatchNorm layer is still compensated',
    );
  });

  it('--measure logits scores the tensor before the softmax head', async () => {
    const graph = residualGraph();
    const data = inMemoryDataset(calibration());
    const probabilities = await score(graph, data, { gemm: tsGemm });
    const logits = await score(graph, data, { gemm: tsGemm, measure: 'logits' });
    // the head's Jacobian shrinks the sensitivities: logits see larger importances
    const sum = (s: Float64Array[]) => s.reduce((p, a) => p + a.reduce((q, v) => q + v, 0), 0);
    assert.ok(sum(logits.importance) > sum(probabilities.importance));
  });
});
