/**
 * Neuron removal on graphs (issue #11): a hidden layer's units are removed with the matching input
 * columns of every layer that reads them, through activations and BatchNorm (its per-unit
 * parameters sliced); a hidden layer whose units feed a residual Add, LayerNorm or Concat is left
 * whole (named, with the op) while the others lose units; only a model where no hidden layer can
 * lose one is refused, in one line. The written file is run by the real consumer (onnxruntime-node,
 * tfjs-layers) and must compute what ecprune's own forward of the pruned graph computes, and what
 * the zeroed-neuron, bias-folded original computes (a second construction of the same model).
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
import { initMlp } from '../../src/train/train.js';
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

/** `ecprune prune <zoo model> --structure neuron --sparsity <fraction>`. */
const pruneNeuronsCli = (name: string, out: string, sparsity = '0.5') =>
  cli(
    'prune',
    path.join(ZOO, name, 'model.onnx'),
    '--calib',
    path.join(ZOO, name, 'calib.npy'),
    '--structure',
    'neuron',
    '--sparsity',
    sparsity,
    '--quiet',
    '-o',
    out,
  );

/**
 * Each fixture with the hidden layers it must leave whole (index, op their units feed), read off the
 * producer scripts (test/fixtures/zoo/make_zoo_*): the layers writing a residual stream, feeding a
 * LayerNorm or a Concat.
 */
const CASES: readonly (readonly [string, readonly (readonly [number, string])[]])[] = [
  // CNN head (frozen prefix), BatchNorm with and without the layer's bias, PReLU, the Erf form of GELU, a softmax head, TF.js BatchNorm + swish
  ['cnn_head', []],
  ['batchnorm', []],
  ['batchnorm_nobias', []],
  ['prelu', []],
  ['gelu_erf', []],
  ['softmax_head', []],
  ['tfjs_batchnorm_swish', []],
  // stem, blocks.0.fc2 and blocks.1.fc2 write the residual stream (the stem's first reader is the pre-norm's ReduceMean)
  [
    'residual',
    [
      [0, 'ReduceMean'],
      [2, 'Add'],
      [4, 'Add'],
    ],
  ],
  [
    'tfjs_residual',
    [
      [0, 'Add'],
      [2, 'Add'],
      [4, 'Add'],
    ],
  ],
  ['layernorm_opset13', [[0, 'ReduceMean']]],
  ['layernorm_opset17', [[0, 'LayerNormalization']]],
  ['tfjs_layernorm_dropout', [[0, 'LayerNormalization']]],
  [
    'tfjs_concat',
    [
      [0, 'Concat'],
      [1, 'Concat'],
    ],
  ],
];

const maxAbs = (values: ArrayLike<number>) => Math.max(...Array.from(values, Math.abs));

describe('neuron removal on graph models of the producer zoo', () => {
  for (const [name, whole] of CASES) {
    it(`${name}: the shrunk file runs in the real consumer and equals ecprune's forward and the zeroed, folded original${whole.length > 0 ? `; ${whole.length} layer(s) left whole` : ''}`, async () => {
      const { file, x, inputShape } = fixture(name);
      const model = await loadModel(file);
      const data = dataForModel(model, inMemoryDataset(x, undefined, 'calib.npy'));
      const result = await prune(model.graph, data, { structure: 'neuron', sparsity: 0.5 });
      const { keep, layers, leftWhole } = result.neurons!;
      const dense = model.graph.layers;
      assert.deepEqual(
        leftWhole.map(({ layer, name }) => [layer, name]),
        whole.map(([l]) => [l, dense[l].name]),
        `${name}: the layers left whole`,
      );
      leftWhole.forEach(({ name: layer, reason }, i) => {
        assert.match(reason, new RegExp(`^its units feed ${whole[i][1]} node '[^']+'$`), `${name}: ${layer}`);
      });
      // the sparsity counts the units of the layers that can lose them, and only those
      const units = layers.reduce((sum, l) => sum + dense[l].weight.rows, 0);
      const removed = keep.reduce((n, k) => n + k.length - k.reduce((a, b) => a + b, 0), 0);
      assert.equal(removed, Math.round(0.5 * units), `${name}: half of the ${units} units removed`);
      const out = path.join(work, name, path.basename(file));
      await saveModel(out, result.model, { like: model });
      const written = await loadModel(out);
      assert.deepEqual(
        written.graph.layers.map((l) => [l.weight.rows, l.weight.cols]),
        result.model.layers.map((l) => [l.weight.rows, l.weight.cols]),
        `${name}: the file holds the shrunk layers`,
      );
      for (const [l] of whole)
        assert.equal(
          written.graph.layers[l].weight.rows,
          dense[l].weight.rows,
          `${name}: layer ${l} keeps its width`,
        );
      layers.forEach((l, h) => {
        const kept = keep[h].reduce((a, b) => a + b, 0);
        assert.equal(
          written.graph.layers[l].weight.rows,
          kept,
          `${name}: layer ${l} keeps its ${kept} units`,
        );
      });
      const consumer = await consumerOutputs(out, x, inputShape);
      const { x: rows } = await materialize(data);
      // ecprune's own forward of the pruned graph, and the second construction: the original with
      // the removed rows and columns zeroed, the fold applied
      const own = await forward(result.model, rows, tsGemm);
      const zeroed = applyPruning(model.graph, neuronKeepMasks(model.graph, keep), result.deltaBias);
      const expected = await forward(zeroed, rows, tsGemm);
      const scale = maxAbs(expected.data);
      consumer.forEach((y, i) => {
        assert.ok(
          Math.abs(y - own.data[i]) <= 1e-4 * scale,
          `${name}[${i}]: consumer ${y}, ecprune's forward ${own.data[i]}`,
        );
        assert.ok(
          Math.abs(y - expected.data[i]) <= 1e-4 * scale,
          `${name}[${i}]: consumer ${y}, zeroed original ${expected.data[i]}`,
        );
      });
    });
  }

  const NOTHING = /^neuron removal has nothing to remove: /;

  it('concat_features (both hidden layers feed the Concat): refused in one line naming each layer and the op', async () => {
    const { file, x } = fixture('concat_features');
    const model = await loadModel(file);
    await assert.rejects(
      prune(model.graph, inMemoryDataset(x), { structure: 'neuron', sparsity: 0.5 }),
      (error: EcpruneError) => {
        assert.ok(error instanceof EcpruneError, String(error));
        assert.equal(
          error.message,
          "neuron removal has nothing to remove: no hidden layer can lose a unit: 'left' (its units feed Concat node '/Concat'), " +
            "'right' (its units feed Concat node '/Concat'); prune its weights instead (`structure: 'weight'`)",
        );
        return true;
      },
    );
  });

  it('a model without a hidden layer: refused in one line', async () => {
    const single = initMlp({ sizes: [5, 3], activation: { kind: 'relu' }, seed: 1 });
    const x = { rows: 4, cols: 5, data: new Float32Array(20).fill(0.5) };
    await assert.rejects(
      prune(single, inMemoryDataset(x), { structure: 'neuron', sparsity: 0.5 }),
      (error: EcpruneError) => {
        assert.ok(error instanceof EcpruneError, String(error));
        assert.match(error.message, NOTHING);
        assert.match(error.message, /no fully-connected layer of this model feeds another/);
        return true;
      },
    );
  });

  it('the CLI: a residual MLP loses units of its inner layers and says which layers it left whole; a CNN head is shrunk', async () => {
    const out = path.join(work, 'cli', 'residual.onnx');
    const run = await pruneNeuronsCli('residual', out, '0.25');
    assert.equal(run.code, 0, run.stderr);
    // the two inner layers have 24 units each: 12 of 48 is 25 %
    assert.match(
      run.stdout,
      /^ec\+neuron, global scope: removed 12 of 48 hidden units \(25\.0 %\) from the layers that can lose units \(blocks\.0\.fc1, blocks\.1\.fc1\), calibrated on 64 samples$/m,
    );
    assert.match(
      run.stdout,
      /^ {2}left whole: stem \(its units feed ReduceMean node '[^']+'\), blocks\.0\.fc2 \(its units feed Add node '[^']+'\), blocks\.1\.fc2 \(its units feed Add node '[^']+'\)$/m,
    );
    assert.doesNotMatch(run.stdout, /weights/, 'neuron removal counts units');
    const widths = JSON.parse((await cli('inspect', out, '--json')).stdout).layers.map(
      (l: { shape: number[] }) => l.shape,
    );
    assert.deepEqual(
      [widths[0], widths[2][0], widths[4][0], widths[5]],
      [[16, 10], 16, 16, [4, 16]],
      'the residual stream keeps its width',
    );
    assert.equal(widths[1][0] + widths[3][0], 36, 'the inner layers lost 12 units between them');
    const cnn = path.join(work, 'cli', 'cnn.onnx');
    const shrunk = await pruneNeuronsCli('cnn_head', cnn);
    assert.equal(shrunk.code, 0, shrunk.stderr);
    const inspected = JSON.parse((await cli('inspect', cnn, '--json')).stdout);
    assert.deepEqual(
      inspected.layers.map((l: { shape: number[] }) => l.shape),
      [
        [8, 36],
        [4, 8],
      ],
    );
  });

  it('the CLI: a model where no hidden layer can lose a unit is refused before any work (exit 2, one line)', async () => {
    const out = path.join(work, 'refused.onnx');
    const refused = await pruneNeuronsCli('concat_features', out);
    assert.equal(refused.code, 2);
    assert.equal(
      refused.stderr.trim(),
      "ecprune: neuron removal has nothing to remove: no hidden layer can lose a unit: 'left' (its units feed Concat node '/Concat'), " +
        "'right' (its units feed Concat node '/Concat'); prune its weights instead (--structure weight)",
    );
  });
});
