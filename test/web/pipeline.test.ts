/**
 * The demo page's logic (web/pipeline.ts) in Node, on the bundled demo files: the study's chosen
 * model is exactly what `prune` gives, its file reads back in the input's format with the chosen
 * sparsity, and TF.js models come in as model.json + shards and go out as a zip of both.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { unzipSync } from 'fflate';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { chainOf, graphFromMlp } from '../../src/graph/mlp-graph.js';
import { readOnnx } from '../../src/io/onnx.js';
import { readTfjs, TFJS_SHARD_NAME, writeTfjs } from '../../src/io/tfjs.js';
import { type Mlp, nonzeroWeightCount, weightCount } from '../../src/model/mlp.js';
import { prune } from '../../src/pipeline/prune.js';
import { pruneCount } from '../../src/select/select.js';
import {
  CURVE_SPARSITIES,
  errorChartSvg,
  type NamedBytes,
  prunedModelFile,
  readCalibration,
  readModelFiles,
  runStudy,
} from '../../web/pipeline.js';
import { readOnnxMlp } from '../helpers/onnx-chain.js';

const demo = (name: string): NamedBytes => ({
  name,
  bytes: readFileSync(new URL(`../../web/demo/${name}`, import.meta.url)),
});

const sameParameters = (actual: Mlp, expected: Mlp) =>
  assert.deepEqual(
    actual.layers.map((l) => [[...l.weight.data], [...l.bias]]),
    expected.layers.map((l) => [[...l.weight.data], [...l.bias]]),
  );

describe('web/pipeline.ts on the demo files', async () => {
  const model = readModelFiles([demo('model.onnx')]);
  const calibration = readCalibration(demo('calib.npy'), demo('labels.npy'));
  const study = await runStudy(model.mlp, calibration, { method: 'ec', sparsity: 0.8, gemm: tsGemm });

  it('reads the demo model and its labelled calibration slice', () => {
    assert.deepEqual(
      model.mlp.layers.map((l) => [l.weight.rows, l.weight.cols]),
      [
        [64, 196],
        [10, 64],
      ],
    );
    assert.deepEqual(
      [calibration.samples, calibration.features, calibration.targetKind],
      [512, 196, 'classes'],
    );
  });

  it('measures ec and the magnitude baseline at every curve sparsity', () => {
    assert.deepEqual(
      study.rows.map((row) => `${row.method} ${row.sparsity}`),
      ['ec', 'magnitude'].flatMap((method) => CURVE_SPARSITIES.map((s) => `${method} ${s}`)),
    );
    const n = weightCount(model.mlp);
    for (const row of study.rows) assert.equal(row.nonzero, n - pruneCount(row.sparsity, n));
    assert.ok(study.rows.every((row) => row.outputMse > 0 && row.accuracy !== undefined));
  });

  it('prunes exactly as prune() does', async () => {
    const reference = await prune(model.mlp, calibration, { method: 'ec', sparsity: 0.8, gemm: tsGemm });
    assert.deepEqual(study.keepMasks, reference.keepMasks);
    sameParameters(study.pruned, reference.model);
  });

  it('draws the output error of both methods', async () => {
    const svg = await errorChartSvg(study.rows);
    assert.match(svg, /^<svg/);
    for (const method of ['ec', 'magnitude']) assert.match(svg, new RegExp(`method: ${method}[;"]`));
  });

  it('writes an ONNX input back as ONNX with the chosen sparsity and the settings in its metadata', () => {
    const file = prunedModelFile(model, study, calibration.name);
    assert.equal(file.name, 'model-pruned.onnx');
    const { template } = readOnnx(file.bytes);
    const mlp = readOnnxMlp(file.bytes);
    sameParameters(mlp, study.pruned);
    assert.equal(weightCount(mlp) - nonzeroWeightCount(mlp), pruneCount(0.8, weightCount(mlp)));
    assert.equal(template.metadata.ecprune_method, 'ec');
    assert.equal(template.metadata.ecprune_sparsity, '0.8');
  });

  it('reads a TF.js model.json with its shard and writes a zip of both', () => {
    const { modelJson, shards } = writeTfjs(graphFromMlp(model.mlp));
    const files = [
      { name: 'model.json', bytes: new TextEncoder().encode(modelJson) },
      { name: TFJS_SHARD_NAME, bytes: shards.get(TFJS_SHARD_NAME)! },
    ];
    const tfjs = readModelFiles(files);
    sameParameters(tfjs.mlp, model.mlp);
    assert.throws(
      () => readModelFiles(files.slice(0, 1)),
      /model\.json: weight shard 'group1-shard1of1\.bin' is missing/,
    );

    const file = prunedModelFile(tfjs, study, calibration.name);
    assert.equal(file.name, 'model-pruned-tfjs.zip');
    const zip = unzipSync(file.bytes);
    assert.deepEqual(Object.keys(zip).sort(), [TFJS_SHARD_NAME, 'model.json']);
    const back = readTfjs(new TextDecoder().decode(zip['model.json']), (path) => zip[path]);
    sameParameters(chainOf(back.graph)!, study.pruned);
  });

  it('says what is missing when no model file is given', () => {
    assert.throws(() => readModelFiles([]), /choose an \.onnx file/);
  });
});
