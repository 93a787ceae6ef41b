/**
 * OBS on graphs (issue #11): each fully-connected layer's input comes from the graph's forward trace,
 * so OBS runs on residual, LayerNorm and CNN-head models read from the producer zoo. The written
 * file runs in onnxruntime with the zeros in place and computes what ecprune computes; on a chain,
 * the result equals OBS done layer by layer along the chain (inputs by Dense + activation), exactly.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { augmentedInputGram, obsPruneLayer } from '../../src/compensate/obs.js';
import { type Dataset, inMemoryDataset, materialize } from '../../src/data/dataset.js';
import { setDefaultGemm } from '../../src/gemm/default.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { chainOf } from '../../src/graph/mlp-graph.js';
import { denseForward } from '../../src/graph/ops/dense.js';
import { forward } from '../../src/graph/run.js';
import { applyActivation } from '../../src/model/activations.js';
import type { Matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import { dataForModel, type LoadedModel, loadModel, saveModel } from '../../src/node/models.js';
import { lazyOrtGemm } from '../../src/node/ort-gemm.js';
import { prune } from '../../src/pipeline/prune.js';
import { pruneCount } from '../../src/select/select.js';
import { consumerOutputs } from '../helpers/consumers.js';
import { calibrationRows, ZOO } from '../helpers/zoo.js';

setDefaultGemm(lazyOrtGemm()); // the CNN head's frozen prefix runs in onnxruntime, as in the CLI
const work = mkdtempSync(path.join(tmpdir(), 'ecprune-obs-graph-'));
after(() => rmSync(work, { recursive: true, force: true }));

async function load(name: string): Promise<{ model: LoadedModel; x: Matrix; data: Dataset }> {
  const model = await loadModel(path.join(ZOO, name, 'model.onnx'));
  const x = calibrationRows(name);
  return { model, x, data: dataForModel(model, inMemoryDataset(x, undefined, 'calib.npy')) };
}

function meanSquared(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return sum / a.length;
}

describe('OBS on graph models of the producer zoo', () => {
  for (const name of ['residual', 'layernorm_opset17', 'cnn_head', 'batchnorm_nobias']) {
    it(`${name}: onnxruntime runs the written file, zeros in place, ecprune's outputs, below magnitude's error`, async () => {
      const { model, x, data } = await load(name);
      const shape = (model.onnx!.input.dims ?? []).slice(1) as number[];
      const reference = await consumerOutputs(model.file, x, shape);
      const errors: Record<string, number> = {};
      for (const method of ['obs', 'magnitude'] as const) {
        const options = method === 'obs' ? { obs: true } : { method };
        const result = await prune(model.graph, data, { ...options, sparsity: 0.5 });
        const out = path.join(work, `${name}-${method}.onnx`);
        await saveModel(out, result.model, { like: model });
        const written = await loadModel(out);
        written.graph.layers.forEach((layer, l) => {
          result.keepMasks[l].forEach((keep, k) => {
            if (!keep) assert.equal(layer.weight.data[k], 0, `${name} ${method}: layer ${l} weight ${k}`);
          });
        });
        const consumer = await consumerOutputs(out, x, shape);
        errors[method] = meanSquared(consumer, reference);
        if (method !== 'obs') continue;
        assert.equal(
          (result.model as typeof model.graph).nodes,
          model.graph.nodes,
          'the graph keeps its nodes',
        );
        const moved = result.model.layers.some((layer, l) =>
          layer.weight.data.some((w, k) => w !== 0 && w !== model.graph.layers[l].weight.data[k]),
        );
        assert.ok(moved, `${name}: OBS moves surviving weights`);
        const ours = await forward(result.model, (await materialize(data)).x, tsGemm);
        const scale = Math.max(...Array.from(consumer, Math.abs));
        consumer.forEach((y, i) => {
          assert.ok(
            Math.abs(y - ours.data[i]) <= 1e-4 * scale,
            `${name}[${i}]: onnxruntime ${y}, ecprune ${ours.data[i]}`,
          );
        });
      }
      assert.ok(errors.obs < errors.magnitude, `${name}: OBS ${errors.obs} vs magnitude ${errors.magnitude}`);
    });
  }

  it('a bias-free layer gains a bias under OBS; with newBias false it keeps none', async () => {
    const { model, data } = await load('linear_nobias_last');
    const added = await prune(model.graph, data, { obs: true, sparsity: 0.5 });
    assert.deepEqual(added.addedBiases, [model.graph.layers[2].name]);
    assert.ok(
      added.model.layers[2].bias.some((b) => b !== 0),
      'the new bias takes the reconstruction',
    );
    const kept = await prune(model.graph, data, { obs: true, sparsity: 0.5, newBias: false });
    assert.deepEqual(kept.uncompensated, [model.graph.layers[2].name]);
    assert.ok(
      kept.model.layers[2].bias.every((b) => b === 0),
      'no bias appears',
    );
    const zeros = kept.keepMasks[2].reduce((n, k) => n + 1 - k, 0);
    assert.ok(zeros > 0, 'the bias-free layer is pruned');
  });

  it('on a chain read from ONNX, OBS on the graph equals OBS along the chain (Dense + activation), exactly', async () => {
    const { model, data } = await load('mlp_opset17');
    const chain = chainOf(model.graph)!;
    const result = await prune(model.graph, data, {
      obs: true,
      sparsity: 0.6,
      scope: 'layer',
      gemm: tsGemm,
      batchSize: 16,
    });
    // the second computation: each layer's inputs by the chain's own Dense + activation, layer by layer
    const layers = [...chain.layers];
    const { x } = await materialize(data);
    for (let l = 0; l < layers.length; l++) {
      let a = x;
      for (let k = 0; k < l; k++) {
        const z = await denseForward(layers[k], a, tsGemm);
        a = { rows: z.rows, cols: z.cols, data: applyActivation(layers[k].activation, z.data) };
      }
      const gram = await augmentedInputGram(
        { layers: [{ ...layers[l], activation: { kind: 'identity' } }] } satisfies Mlp,
        0,
        inMemoryDataset(a),
        tsGemm,
        16,
      );
      const count = pruneCount(0.6, layers[l].weight.data.length);
      layers[l] = obsPruneLayer(layers[l], gram, count).layer;
      assert.deepEqual(result.model.layers[l].weight.data, layers[l].weight.data, `W[${l}]`);
      assert.deepEqual(result.model.layers[l].bias, layers[l].bias, `b[${l}]`);
    }
  });
});
