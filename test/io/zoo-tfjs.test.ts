import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { type Graph, withLayers } from '../../src/graph/graph.js';
import { forward } from '../../src/graph/run.js';
import { readNpy } from '../../src/io/npy.js';
import { readTfjs, type TfjsFiles, writeTfjs, writeTfjsGraph } from '../../src/io/tfjs.js';

// Every TF.js fixture of the producer zoo (test/fixtures/zoo, saved by the real tfjs-layers) read
// into the graph: its forward pass against tfjs-layers' own outputs, and every model written back
// (as read, with weights and biases changed, and without its model.json as a functional model) run
// by the real tfjs-layers' loadLayersModel.
const ZOO = new URL('../fixtures/zoo/', import.meta.url).pathname;
tf.env().set('IS_TEST', true);

interface Fixture {
  readonly name: string;
  readonly producer: string;
  readonly file: string;
  readonly inputShape: number[];
}
const fixtures = (
  JSON.parse(readFileSync(path.join(ZOO, 'zoo.json'), 'utf8')) as { fixtures: Fixture[] }
).fixtures.filter((f) => f.producer === 'tfjs');

function load(fixture: Fixture) {
  const file = path.join(ZOO, fixture.file);
  const text = readFileSync(file, 'utf8');
  return readTfjs(text, (shard) => new Uint8Array(readFileSync(path.join(path.dirname(file), shard))), file);
}

function calibration(fixture: Fixture) {
  const calib = readNpy(readFileSync(path.join(ZOO, fixture.name, 'calib.npy')));
  const rows = calib.shape[0];
  return { rows, cols: calib.data.length / rows, data: Float32Array.from(calib.data as Float32Array) };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  // the zoo's tolerance (test/io/zoo.test.ts): 1e-5 relative, 1e-6 absolute near zero
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    assert.ok(error <= 1e-5 * Math.abs(expected[i]) + 1e-6, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** What the real tfjs-layers predicts for the model writeTfjs wrote. */
async function tfjsPredict(written: TfjsFiles, fixture: Fixture): Promise<Float32Array> {
  const json = JSON.parse(written.modelJson);
  const [shard] = [...written.shards.values()];
  const model = await tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights,
      weightData: shard.slice().buffer,
    }),
  );
  const x = calibration(fixture);
  const y = tf.tidy(() =>
    (model.predict(tf.tensor(x.data, [x.rows, ...fixture.inputShape])) as tf.Tensor).dataSync(),
  );
  model.dispose();
  return Float32Array.from(y);
}

/** Every second weight of each Dense layer zeroed, every bias (also of bias-free layers) shifted. */
function modified(graph: Graph): Graph {
  return withLayers(
    graph,
    graph.layers.map((layer) => ({
      ...layer,
      weight: { ...layer.weight, data: layer.weight.data.map((w, i) => (i % 2 === 1 ? 0 : w)) },
      bias: layer.bias.map((b, i) => b + 0.05 * ((i % 3) - 1)),
    })),
  );
}

describe('TF.js zoo: read into the graph, written back, run by tfjs-layers', () => {
  for (const fixture of fixtures) {
    it(`${fixture.name}: the graph's forward pass equals tfjs-layers' outputs`, async () => {
      const { graph } = load(fixture);
      const expected = readNpy(readFileSync(path.join(ZOO, fixture.name, 'outputs.npy')));
      const y = await forward(graph, calibration(fixture), tsGemm);
      assertClose(y.data, expected.data as Float32Array, fixture.name);
    });

    it(`${fixture.name}: written back unchanged, tfjs-layers predicts the same outputs`, async () => {
      const { graph, template } = load(fixture);
      const expected = readNpy(readFileSync(path.join(ZOO, fixture.name, 'outputs.npy')));
      assertClose(
        await tfjsPredict(writeTfjs(graph, template), fixture),
        expected.data as Float32Array,
        fixture.name,
      );
    });

    it(`${fixture.name}: written without its model.json as a functional model, tfjs-layers predicts the same outputs`, async () => {
      const { graph } = load(fixture);
      const expected = readNpy(readFileSync(path.join(ZOO, fixture.name, 'outputs.npy')));
      const written = await writeTfjsGraph(graph);
      assert.equal(JSON.parse(written.modelJson).modelTopology.class_name, 'Model');
      assertClose(await tfjsPredict(written, fixture), expected.data as Float32Array, fixture.name);
    });

    it(`${fixture.name}: with Dense weights zeroed and biases changed, tfjs-layers runs the changed graph`, async () => {
      const { graph, template } = load(fixture);
      const changed = modified(graph);
      const ours = await forward(changed, calibration(fixture), tsGemm);
      const original = await forward(graph, calibration(fixture), tsGemm);
      assert.ok(
        ours.data.some((v, i) => Math.abs(v - original.data[i]) > 1e-3),
        'the change changes the outputs',
      );
      const written = writeTfjs(changed, template);
      assertClose(await tfjsPredict(written, fixture), ours.data, fixture.name);
      // a bias-free Dense keeps its structure when a BatchNormalization takes its bias, else gains one
      const configs = new Map(
        (
          JSON.parse(written.modelJson).modelTopology.config.layers as {
            config: { name: string; use_bias?: boolean };
          }[]
        ).map((l) => [l.config.name, l.config.use_bias]),
      );
      for (const t of template.layers) {
        assert.equal(
          configs.get(t.name),
          t.biasName !== undefined || t.foldInto === undefined,
          `${t.name} use_bias`,
        );
      }
    });
  }
});
