/**
 * Graphs written as TF.js functional models (issue #11: "convert between formats that can express
 * the graph; a clear error otherwise", TF.js "written back so that the real tfjs-layers loads it").
 * Every ONNX model of the producer zoo (written by the real torch.onnx.export) without a frozen
 * prefix, as read and pruned to 50 % with EC, is written both as ONNX and as a TF.js model.json by
 * ecprune; the real tfjs-layers (`loadLayersModel`) runs the model.json and its outputs on the
 * fixture's calibration inputs equal onnxruntime-node's on the ONNX file. A model with an op no
 * tfjs-layers layer computes is refused in one line naming the node and the op, and nothing is written.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { setDefaultGemm } from '../../src/gemm/default.js';
import type { Graph } from '../../src/graph/graph.js';
import { loadModel, saveModel } from '../../src/node/models.js';
import { lazyOrtGemm } from '../../src/node/ort-gemm.js';
import { prune } from '../../src/pipeline/prune.js';
import { cli } from '../cli/run.js';
import { consumerOutputs } from '../helpers/consumers.js';
import { assertClose, calibrationRows, type Fixture, onnxFixtures, ZOO } from '../helpers/zoo.js';

setDefaultGemm(lazyOrtGemm());

const work = mkdtempSync(path.join(tmpdir(), 'ecprune-zoo-tfjs-graph-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The zoo models tfjs-layers cannot express, and the node and op each refusal names (no layer takes a square root). */
const REFUSED: Readonly<Record<string, string>> = {
  arith_consts: "node '/Sqrt' (op Sqrt",
};

/**
 * The activations the Dense layers take for exported activations (decomposed ones recognised as
 * one), checked in the written model.json.
 */
const DENSE_ACTIVATIONS: Readonly<Record<string, readonly string[]>> = {
  silu: ['swish', 'swish', 'linear'],
  gelu_erf: ['gelu', 'gelu', 'linear'],
  softsign: ['softsign', 'softsign', 'linear'],
  mish: ['mish', 'mish', 'linear'],
  relu6: ['relu6', 'relu6', 'linear'],
  selu: ['selu', 'selu', 'linear'],
  softmax_head: ['relu', 'relu', 'softmax'],
  logsoftmax_head: ['tanh', 'tanh', 'log_softmax'],
};

const fixtures = onnxFixtures.filter((f) => f.prefix.length === 0);

/** The fixture's model as read, and pruned to 50 % with EC on its calibration inputs. */
async function variants(fixture: Fixture) {
  const model = await loadModel(path.join(ZOO, fixture.file));
  const calibration = inMemoryDataset(calibrationRows(fixture.name), undefined, 'calib.npy');
  const pruned = await prune(model.graph, calibration, { method: 'ec', sparsity: 0.5 });
  return { model, graphs: { dense: model.graph, pruned: pruned.model as Graph } };
}

describe('ONNX zoo models written as TF.js functional models, run by tfjs-layers', () => {
  for (const fixture of fixtures) {
    const refusal = REFUSED[fixture.name];
    if (refusal !== undefined) {
      it(`${fixture.name}: refused in one line naming ${refusal}), nothing written`, async () => {
        const { model } = await variants(fixture);
        const out = path.join(work, fixture.name, 'refused', 'model.json');
        await assert.rejects(saveModel(out, model.graph, { like: model }), (error: Error) => {
          const prefix = `${out}: a TF.js model.json cannot hold ${refusal}: `;
          assert.equal(error.message.slice(0, prefix.length), prefix, error.message);
          assert.match(
            error.message.slice(prefix.length),
            /^[^:\n]+\): write \.onnx$/,
            'why, and what to do',
          );
          return true;
        });
        assert.equal(existsSync(out), false, 'nothing is written');
      });
      continue;
    }
    it(`${fixture.name}: tfjs-layers' outputs equal onnxruntime's, as read and pruned to 50 %`, async () => {
      const { model, graphs } = await variants(fixture);
      const x = calibrationRows(fixture.name);
      for (const [which, graph] of Object.entries(graphs)) {
        const dir = path.join(work, fixture.name, which);
        await saveModel(path.join(dir, 'model.onnx'), graph, { like: model });
        await saveModel(path.join(dir, 'model.json'), graph, { like: model });
        const ioDtype = fixture.ioDtype === 'float64' ? 'float64' : 'float32';
        const onnx = await consumerOutputs(path.join(dir, 'model.onnx'), x, fixture.inputShape, ioDtype);
        const tfjs = await consumerOutputs(path.join(dir, 'model.json'), x, fixture.inputShape);
        assertClose(tfjs, onnx, { ...fixture, name: `${fixture.name} (${which})` });
        const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
        assert.equal(json.modelTopology.class_name, 'Model', 'a functional model');
        const dense = (
          json.modelTopology.config.layers as { class_name: string; config: { activation?: string } }[]
        )
          .filter((l) => l.class_name === 'Dense')
          .map((l) => l.config.activation);
        if (DENSE_ACTIVATIONS[fixture.name])
          assert.deepEqual(dense, DENSE_ACTIVATIONS[fixture.name], 'Dense activations');
      }
    });
  }
});

describe('convert and prune write a graph as TF.js through the CLI', () => {
  it('residual (LayerNorm, residual additions) -> model.json that tfjs-layers runs; back to ONNX', async () => {
    const fixture = fixtures.find((f) => f.name === 'residual')!;
    const out = path.join(work, 'cli', 'model.json');
    const run = await cli('convert', path.join(ZOO, fixture.file), '-o', out);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    const layers = fixture.fcLayers.length;
    assert.match(
      run.stdout,
      new RegExp(`^onnx model, a graph of ${layers} fully-connected layers \\(`),
      'a graph, not a chain of widths',
    );
    const x = calibrationRows(fixture.name);
    const reference = await consumerOutputs(path.join(ZOO, fixture.file), x, fixture.inputShape);
    assertClose(await consumerOutputs(out, x, fixture.inputShape), reference, fixture);
    const classes = JSON.parse(readFileSync(out, 'utf8')).modelTopology.config.layers.map(
      (l: { class_name: string }) => l.class_name,
    );
    assert.deepEqual(
      [...new Set(classes)].sort(),
      ['Add', 'Dense', 'InputLayer', 'LayerNormalization'],
      'the decomposed LayerNorm is one LayerNormalization layer',
    );
    // ecprune reads what it wrote: back to ONNX, onnxruntime computes the same
    const back = path.join(work, 'cli', 'back.onnx');
    const again = await cli('convert', out, '-o', back);
    assert.equal(again.code, 0, again.stderr);
    assertClose(await consumerOutputs(back, x, fixture.inputShape), reference, fixture);
  });

  it('prune -o model.json: a bias-free Linear before BatchNorm stays bias-free, its compensation in the moving mean', async () => {
    const fixture = fixtures.find((f) => f.name === 'batchnorm_nobias')!;
    const calib = path.join(ZOO, fixture.name, 'calib.npy');
    const outputs = [];
    for (const file of ['model.json', 'model.onnx']) {
      const out = path.join(work, 'cli-prune', file);
      const args = ['--calib', calib, '--method', 'ec', '--sparsity', '0.5', '-o', out];
      const run = await cli('prune', path.join(ZOO, fixture.file), ...args);
      assert.equal(run.code, 0, run.stderr);
      outputs.push(await consumerOutputs(out, calibrationRows(fixture.name), fixture.inputShape));
    }
    assertClose(outputs[0], outputs[1], fixture);
    const layers = JSON.parse(readFileSync(path.join(work, 'cli-prune', 'model.json'), 'utf8')).modelTopology
      .config.layers as { class_name: string; config: { use_bias?: boolean } }[];
    assert.deepEqual(
      layers.filter((l) => l.class_name === 'Dense').map((l) => l.config.use_bias),
      [false, true, true],
      'the first Dense keeps use_bias false',
    );
    assert.equal(layers[2].class_name, 'BatchNormalization');
  });
});
