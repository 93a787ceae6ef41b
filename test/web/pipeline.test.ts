/**
 * The demo page's logic (web/pipeline.ts) in Node, on the bundled demo files and on graph models of
 * the producer zoo: the study's chosen model is exactly what `prune` gives, accuracy and loss come
 * from the held-out file when one is given (and from the calibration samples, said so, when not),
 * the file written back reads in the input's format with the chosen sparsity, TF.js models come in
 * as model.json + shards and go out as a zip of both, and a CNN's frozen prefix runs through
 * onnxruntime and is written back unchanged.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { unzipSync } from 'fflate';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { type Graph, weightCount } from '../../src/graph/graph.js';
import { readOnnx } from '../../src/io/onnx.js';
import { readTfjs, TFJS_SHARD_NAME, writeTfjsGraph } from '../../src/io/tfjs.js';
import { nonzeroWeightCount } from '../../src/model/mlp.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
import { prune } from '../../src/pipeline/prune.js';
import { pruneCount } from '../../src/select/select.js';
import { evaluate } from '../../src/train/evaluate.js';
import {
  COMPARED,
  CURVE_SPARSITIES,
  dataForLayers,
  type NamedBytes,
  prunedModelFile,
  readData,
  readModelFiles,
  runStudy,
  studyCharts,
} from '../../web/pipeline.js';
import { ZOO } from '../helpers/zoo.js';

const demo = (name: string): NamedBytes => ({
  name,
  bytes: readFileSync(new URL(`../../web/demo/${name}`, import.meta.url)),
});
const zoo = (fixture: string, name: string): NamedBytes => ({
  name,
  bytes: readFileSync(path.join(ZOO, fixture, name)),
});

const sameParameters = (actual: Graph, expected: Graph) =>
  assert.deepEqual(
    actual.layers.map((l) => [[...l.weight.data], [...l.bias]]),
    expected.layers.map((l) => [[...l.weight.data], [...l.bias]]),
  );

describe('web/pipeline.ts on the demo files', async () => {
  const model = readModelFiles([demo('model.onnx')]);
  const calibration = readData(demo('calib.npy'), demo('labels.npy'));
  const heldOut = readData(demo('test.npy'), demo('test-labels.npy'));
  const study = await runStudy(model, calibration, { method: 'obd', sparsity: 0.8, gemm: tsGemm, heldOut });

  it('reads the demo model, its labelled calibration slice and its held-out digits', () => {
    assert.deepEqual(
      model.graph.layers.map((l) => [l.weight.rows, l.weight.cols]),
      [
        [64, 196],
        [10, 64],
      ],
    );
    assert.deepEqual(
      [calibration.samples, calibration.features, calibration.targetKind],
      [512, 196, 'classes'],
    );
    assert.deepEqual([heldOut.samples, heldOut.features, heldOut.targetKind], [500, 196, 'classes']);
  });

  it('measures the chosen method, ec and magnitude at every curve sparsity on the held-out data', async () => {
    assert.deepEqual(
      study.rows.map((row) => `${row.method} ${row.sparsity}`),
      ['dense 0', ...['obd', ...COMPARED].flatMap((method) => CURVE_SPARSITIES.map((s) => `${method} ${s}`))],
    );
    assert.deepEqual(
      [study.rows[0].accuracy, study.rows[0].testLoss],
      [study.dense.accuracy, study.dense.loss],
    );
    const n = weightCount(model.graph);
    for (const row of study.rows) assert.equal(row.nonzero, n - pruneCount(row.sparsity, n));
    assert.deepEqual(study.evaluatedOn, { name: 'test.npy', heldOut: true, samples: 500 });
    // the chosen model's numbers are evaluate()'s on the held-out file, not on the calibration slice
    const expected = await evaluate(study.pruned, heldOut, { reference: model.graph, gemm: tsGemm });
    assert.equal(study.chosen.accuracy, expected.accuracy);
    assert.equal(study.chosen.loss, expected.meanLoss);
    const row = study.rows.find((r) => r.method === 'obd' && r.sparsity === 0.8)!;
    assert.deepEqual(
      [row.accuracy, row.testLoss, row.outputMse],
      [expected.accuracy, expected.meanLoss, expected.outputMse],
    );
  });

  it('prunes exactly as prune() does', async () => {
    const reference = await prune(model.graph, calibration, { method: 'obd', sparsity: 0.8, gemm: tsGemm });
    assert.deepEqual(study.keepMasks, reference.keepMasks);
    sameParameters(study.pruned, reference.model as Graph);
  });

  it('draws accuracy and loss on the held-out file and the output error, every method in each', async () => {
    const charts = await studyCharts(study);
    assert.deepEqual(
      charts.map((c) => c.name),
      ['accuracy', 'test-loss', 'output-error'],
    );
    assert.match(charts[0].title, /^Accuracy on the held-out data vs sparsity \(test\.npy\)$/);
    for (const { svg, name } of charts) {
      for (const method of ['obd', ...COMPARED]) {
        const points = svg.match(
          // a recipe name holds '+': escaped
          new RegExp(
            `aria-label="method: ${method.replaceAll('+', '\\+')}; variant: global; sparsity: `,
            'g',
          ),
        );
        assert.equal(points?.length, CURVE_SPARSITIES.length, `${name}: the points of ${method}`);
      }
      // ties are all ringed: at least one ring at every sparsity
      const ringed = new Set([...svg.matchAll(/aria-label="best at (\d+)%/g)].map((m) => Number(m[1]) / 100));
      assert.deepEqual([...ringed].sort(), CURVE_SPARSITIES, `${name}: a ring at every sparsity`);
    }
  });

  it("says when there is no held-out data: the numbers are the calibration samples'", async () => {
    const own = await runStudy(model, calibration, { method: 'ec', sparsity: 0.8, gemm: tsGemm });
    assert.deepEqual(own.evaluatedOn, { name: 'calib.npy', heldOut: false, samples: 512 });
    const [accuracy] = await studyCharts(own);
    assert.match(accuracy.title, /no held-out data: measured on the calibration samples/);
    await assert.rejects(
      runStudy(model, calibration, {
        method: 'ec',
        sparsity: 0.8,
        gemm: tsGemm,
        heldOut: readData(demo('test.npy')),
      }),
      /test\.npy: held-out data needs its labels/,
    );
  });

  it('writes an ONNX input back as ONNX with the chosen sparsity and the settings in its metadata', () => {
    const file = prunedModelFile(model, study, calibration.name);
    assert.equal(file.name, 'model-pruned.onnx');
    const { graph, template } = readOnnx(file.bytes);
    sameParameters(graph, study.pruned);
    assert.equal(weightCount(graph) - nonzeroWeightCount(graph), pruneCount(0.8, weightCount(graph)));
    assert.equal(template.metadata.ecprune_method, 'obd');
    assert.equal(template.metadata.ecprune_sparsity, '0.8');
  });

  it('reads a TF.js model.json with its shard and writes a zip of both', async () => {
    const { modelJson, shards } = await writeTfjsGraph(model.graph);
    const files = [
      { name: 'model.json', bytes: new TextEncoder().encode(modelJson) },
      { name: TFJS_SHARD_NAME, bytes: shards.get(TFJS_SHARD_NAME)! },
    ];
    const tfjs = readModelFiles(files);
    sameParameters(tfjs.graph, model.graph);
    assert.throws(
      () => readModelFiles(files.slice(0, 1)),
      /model\.json: weight shard 'group1-shard1of1\.bin' is missing/,
    );

    const file = prunedModelFile(tfjs, study, calibration.name);
    assert.equal(file.name, 'model-pruned-tfjs.zip');
    const zip = unzipSync(file.bytes);
    assert.deepEqual(Object.keys(zip).sort(), [TFJS_SHARD_NAME, 'model.json']);
    const back = readTfjs(new TextDecoder().decode(zip['model.json']), (path) => zip[path]);
    sameParameters(back.graph, study.pruned);
  });

  it('says what is missing when no model file is given', () => {
    assert.throws(() => readModelFiles([]), /choose an \.onnx file/);
  });
});

describe('web/pipeline.ts on graph models of the zoo', async () => {
  // a CNN's frozen prefix runs in onnxruntime (onnxruntime-web in the page, -node here)
  const gemm = await createOrtGemm();
  after(() => gemm.dispose?.());

  for (const fixture of ['residual', 'batchnorm', 'softmax_head', 'cnn_head']) {
    it(`${fixture}: prunes as prune() does and writes the graph back with the zeros in place`, async () => {
      const model = readModelFiles([zoo(fixture, 'model.onnx')]);
      const calibration = readData(zoo(fixture, 'calib.npy'));
      assert.equal(model.prefix !== undefined, fixture === 'cnn_head', 'only the CNN has a frozen prefix');
      const study = await runStudy(model, calibration, { method: 'ec', sparsity: 0.5, gemm });
      const seen = await dataForLayers(model, calibration, gemm);
      const reference = await prune(model.graph, seen, { method: 'ec', sparsity: 0.5, gemm });
      assert.deepEqual(study.keepMasks, reference.keepMasks);
      sameParameters(study.pruned, reference.model as Graph); // prune() returns the kind it was given
      const { graph } = readOnnx(prunedModelFile(model, study, 'calib.npy').bytes);
      sameParameters(graph, study.pruned);
      const charts = await studyCharts(study);
      assert.deepEqual(
        charts.map((c) => c.name),
        ['output-error'],
        'no labels: only the output error',
      );
    });
  }

  it('tfjs_residual: a functional TF.js graph comes back as a zip that reads as the pruned graph', async () => {
    const files = ['model.json', 'weights.bin'].map((name) => zoo('tfjs_residual', name));
    const model = readModelFiles(files);
    const calibration = readData(zoo('tfjs_residual', 'calib.npy'));
    const study = await runStudy(model, calibration, { method: 'magnitude', sparsity: 0.7, gemm });
    const zip = unzipSync(prunedModelFile(model, study, 'calib.npy').bytes);
    const back = readTfjs(new TextDecoder().decode(zip['model.json']), (path) => zip[path]);
    sameParameters(back.graph, study.pruned);
    assert.equal(
      weightCount(back.graph) - nonzeroWeightCount(back.graph),
      pruneCount(0.7, weightCount(back.graph)),
    );
  });

  it('refuses data that does not fit the prefix, naming the file', async () => {
    const model = readModelFiles([zoo('cnn_head', 'model.onnx')]);
    const wrong = inMemoryDataset({ rows: 2, cols: 5, data: new Float32Array(10) }, undefined, 'wrong.npy');
    await assert.rejects(
      runStudy(model, wrong, { method: 'ec', sparsity: 0.5, gemm }),
      /wrong\.npy: the data has 5 features per sample, the model takes 36/,
    );
  });
});
