/**
 * Neuron removal on graphs (issue #11): a hidden layer's units are removed with the matching input
 * columns of every layer that reads them, through activations and BatchNorm (its per-unit
 * parameters sliced); where they feed a residual Add, LayerNorm or Concat, a one-line refusal.
 * The written file is run by the real consumer (onnxruntime-node, tfjs-layers) and must compute
 * what the zeroed-neuron, bias-folded original computes (a second construction of the same model).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { applyPruning } from '../../src/compensate/apply.js';
import { inMemoryDataset, materialize } from '../../src/data/dataset.js';
import { EcpruneError } from '../../src/errors.js';
import { setDefaultGemm } from '../../src/gemm/default.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { dataForModel, loadModel, saveModel } from '../../src/node/models.js';
import { lazyOrtGemm } from '../../src/node/ort-gemm.js';
import { prune } from '../../src/pipeline/prune.js';
import { neuronKeepMasks } from '../../src/select/structure.js';
import { cli } from '../cli/run.js';
import { consumerOutputs } from '../helpers/consumers.js';
import { calibrationRows, manifest, ZOO } from '../helpers/zoo.js';

setDefaultGemm(lazyOrtGemm()); // the CNN head's frozen prefix runs in onnxruntime, as in the CLI
const work = mkdtempSync(path.join(tmpdir(), 'ecprune-neurons-'));
after(() => rmSync(work, { recursive: true, force: true }));

function fixture(name: string) {
  const found = manifest.fixtures.find((f) => f.name === name)!;
  return { file: path.join(ZOO, found.file), x: calibrationRows(name), inputShape: found.inputShape };
}

/** `ecprune prune <zoo model> --structure neuron --sparsity 0.5`. */
const pruneNeuronsCli = (name: string, out: string) =>
  cli(
    'prune',
    path.join(ZOO, name, 'model.onnx'),
    '--calib',
    path.join(ZOO, name, 'calib.npy'),
    '--structure',
    'neuron',
    '--sparsity',
    '0.5',
    '--quiet',
    '-o',
    out,
  );

describe('neuron removal on graph models of the producer zoo', () => {
  // CNN head (frozen prefix), BatchNorm with and without the layer's bias, PReLU, the Erf form of GELU, a softmax head, TF.js BatchNorm + swish
  for (const name of [
    'cnn_head',
    'batchnorm',
    'batchnorm_nobias',
    'prelu',
    'gelu_erf',
    'softmax_head',
    'tfjs_batchnorm_swish',
  ]) {
    it(`${name}: the shrunk file runs in the real consumer and equals the zeroed, folded original`, async () => {
      const { file, x, inputShape } = fixture(name);
      const model = await loadModel(file);
      const data = dataForModel(model, inMemoryDataset(x, undefined, 'calib.npy'));
      const result = await prune(model.graph, data, { structure: 'neuron', sparsity: 0.5 });
      const keep = result.neurons!.keep;
      const removed = keep.reduce((n, k) => n + k.length - k.reduce((a, b) => a + b, 0), 0);
      assert.ok(removed > 0, `${name}: neurons removed`);
      const out = path.join(work, name, path.basename(file));
      await saveModel(out, result.model, { like: model });
      const written = await loadModel(out);
      assert.deepEqual(
        written.graph.layers.map((l) => [l.weight.rows, l.weight.cols]),
        result.model.layers.map((l) => [l.weight.rows, l.weight.cols]),
        `${name}: the file holds the shrunk layers`,
      );
      assert.ok(
        written.graph.layers.some((l, i) => l.weight.rows < model.graph.layers[i].weight.rows),
        `${name}: a layer is narrower`,
      );
      // the second construction: the original with the removed rows and columns zeroed, the fold applied
      const zeroed = applyPruning(model.graph, neuronKeepMasks(model.graph, keep), result.deltaBias);
      const expected = await forward(zeroed, (await materialize(data)).x, tsGemm);
      const consumer = await consumerOutputs(out, x, inputShape);
      const scale = Math.max(...Array.from(expected.data, Math.abs));
      consumer.forEach((y, i) => {
        assert.ok(
          Math.abs(y - expected.data[i]) <= 1e-4 * scale,
          `${name}[${i}]: consumer ${y}, zeroed original ${expected.data[i]}`,
        );
      });
    });
  }

  for (const [name, op] of [
    ['residual', 'ReduceMean'],
    ['layernorm_opset17', 'LayerNormalization'],
    ['concat_features', 'Concat'],
    ['tfjs_residual', 'Add'],
  ] as const) {
    it(`${name}: refused in one line naming the layer and the ${op} that blocks it`, async () => {
      const { file, x } = fixture(name);
      const model = await loadModel(file);
      await assert.rejects(
        prune(model.graph, inMemoryDataset(x), { structure: 'neuron', sparsity: 0.5 }),
        (error: EcpruneError) => {
          assert.ok(error instanceof EcpruneError, String(error));
          assert.match(
            error.message,
            new RegExp(
              `^neuron removal cannot remove units of layer '${model.graph.layers[0].name}': they feed ${op} node '[^']+', .*structure: 'weight'`,
            ),
          );
          return true;
        },
      );
    });
  }

  it('the CLI: a residual model is refused before any work (exit 2, one line); a CNN head is shrunk', async () => {
    const refused = await pruneNeuronsCli('residual', path.join(work, 'refused.onnx'));
    assert.equal(refused.code, 2);
    assert.match(refused.stderr.trim(), /^[^\n]*layer 'stem'[^\n]*--structure weight[^\n]*$/);
    const out = path.join(work, 'cli', 'cnn.onnx');
    const run = await pruneNeuronsCli('cnn_head', out);
    assert.equal(run.code, 0, run.stderr);
    const inspected = JSON.parse((await cli('inspect', out, '--json')).stdout);
    assert.deepEqual(
      inspected.layers.map((l: { shape: number[] }) => l.shape),
      [
        [8, 36],
        [4, 8],
      ],
    );
  });
});
