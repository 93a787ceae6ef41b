import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { createRandom } from '../../src/data/random.js';
import { setDefaultGemm } from '../../src/gemm/default.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { readNpy, toFeatureMatrix, writeNpy } from '../../src/io/npy.js';
import { readNpz } from '../../src/io/npz.js';
import { nonzeroWeightCount, weightCount } from '../../src/model/mlp.js';
import { lazyOrtGemm } from '../../src/node/ort-gemm.js';
import { score } from '../../src/pipeline/score.js';
import { assertClose } from '../core/helpers.js';
import { readOnnxMlp } from '../helpers/onnx-chain.js';
import { cli, FIXTURES, tempDir } from './run.js';

const MODEL = path.join(FIXTURES, 'onnx', 'mlp_activations.onnx');
const model = { mlp: readOnnxMlp(readFileSync(MODEL), MODEL) };
const features = model.mlp.layers[0].weight.cols;
const outputs = model.mlp.layers.at(-1)!.weight.rows;

/** A calibration set and class labels in a temp folder, as .npy files a user would bring. */
function writeData(dir: string, samples = 64) {
  const random = createRandom(5);
  const x = Float32Array.from({ length: samples * features }, () => random.normal());
  const y = Int32Array.from({ length: samples }, () => random.int(outputs));
  const files = { x: path.join(dir, 'x.npy'), y: path.join(dir, 'y.npy') };
  writeFileSync(files.x, writeNpy({ shape: [samples, features], data: x }));
  writeFileSync(files.y, writeNpy({ shape: [samples], data: y }));
  return { files, x: { rows: samples, cols: features, data: x }, y };
}

async function runOnnx(file: string, x: Float32Array, rows: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(readFileSync(file));
  const result = await session.run({
    [session.inputNames[0]]: new ort.Tensor('float32', x, [rows, features]),
  });
  return result[session.outputNames[0]].data as Float32Array;
}

describe('ecprune prune', () => {
  it('writes a pruned ONNX that onnxruntime runs with our outputs, at the requested sparsity', async () => {
    const dir = tempDir();
    const { files, x } = writeData(dir);
    const out = path.join(dir, 'pruned.onnx');
    const run = await cli('prune', MODEL, '--calib', files.x, '--sparsity', '0.6', '-o', out, '--timings');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /pruned 450 of 750 weights/);
    const timings = JSON.parse(run.stderr.trim().split('\n').at(-1)!);
    for (const phase of [
      'load',
      'compile',
      'forward',
      'sensitivity',
      'statistics',
      'select',
      'write',
      'total',
    ]) {
      assert.equal(typeof timings[phase], 'number', `timing ${phase}`);
    }
    const pruned = { mlp: readOnnxMlp(readFileSync(out), out) };
    assert.equal(weightCount(pruned.mlp) - nonzeroWeightCount(pruned.mlp), 450);
    const ours = await forward(pruned.mlp, x, tsGemm);
    assertClose(await runOnnx(out, x.data, x.rows), ours.data, 'onnxruntime vs ours', 1e-5);
    const metadata = readFileSync(out).toString('latin1');
    for (const key of [
      'ecprune_version',
      'ecprune_method',
      'ecprune_sparsity',
      'ecprune_calibration_samples',
    ]) {
      assert.ok(metadata.includes(key), `metadata ${key}`);
    }
  });

  it('--no-graph runs the calibration pass GEMM by GEMM: the same pruned weights, the phases timed apart', async () => {
    const dir = tempDir();
    const { files } = writeData(dir);
    const runs = [];
    const backend = lazyOrtGemm(); // what the ecprune binary installs (the in-process CLI defaults to the TS loop)
    try {
      for (const flags of [[], ['--no-graph']]) {
        const out = path.join(dir, `pruned${flags.length}.onnx`);
        setDefaultGemm(backend);
        const run = await cli(
          'prune',
          MODEL,
          '--calib',
          files.x,
          '--sparsity',
          '0.6',
          '--method',
          'ec',
          '-o',
          out,
          '--timings',
          ...flags,
        );
        assert.equal(run.code, 0, run.stderr);
        const zeros = readOnnxMlp(readFileSync(out), out).layers.map((l) =>
          l.weight.data.map((w) => +(w === 0)),
        );
        runs.push({ zeros, timings: JSON.parse(run.stderr.trim().split('\n').at(-1)!) });
      }
    } finally {
      setDefaultGemm(tsGemm);
      await backend.dispose?.();
    }
    assert.deepEqual(runs[1].zeros, runs[0].zeros);
    assert.equal(runs[0].timings.sensitivity, 0, 'fused into statistics with the graph');
    assert.ok(runs[1].timings.sensitivity > 0, 'timed apart without it');
  });

  it('never overwrites an existing output without --force, nor an input even with it', async () => {
    const dir = tempDir();
    const { files } = writeData(dir);
    const out = path.join(dir, 'out.onnx');
    writeFileSync(out, 'precious');
    const refused = await cli('prune', MODEL, '--calib', files.x, '-o', out);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /out\.onnx: already exists \(use --force to overwrite\)/);
    assert.equal(readFileSync(out, 'utf8'), 'precious');
    const before = readFileSync(files.x);
    const input = await cli('prune', MODEL, '--calib', files.x, '-o', files.x, '--force');
    assert.equal(input.code, 2);
    assert.match(input.stderr, /x\.npy: is also an input/);
    assert.deepEqual(readFileSync(files.x), before);
    assert.equal((await cli('prune', MODEL, '--calib', files.x, '-o', out, '--force')).code, 0);
    assert.ok(statSync(out).size > 1000);
  });
});

describe('ecprune score', () => {
  it('writes importance_<l> and delta_<l> equal to the library scores', async () => {
    const dir = tempDir();
    const { files, x } = writeData(dir);
    const out = path.join(dir, 'scores.npz');
    const run = await cli('score', MODEL, '--calib', files.x, '-o', out);
    assert.equal(run.code, 0, run.stderr);
    const arrays = readNpz(readFileSync(out), out);
    const expected = await score(model.mlp, inMemoryDataset(x), { gemm: tsGemm });
    model.mlp.layers.forEach((layer, l) => {
      const importance = arrays.get(`importance_${l}`)!;
      assert.deepEqual(importance.shape, [layer.weight.rows, layer.weight.cols]);
      assertClose(importance.data, Float32Array.from(expected.importance[l]), `importance_${l}`, 1e-4, 1e-2);
      assertClose(
        arrays.get(`delta_${l}`)!.data,
        Float32Array.from(expected.deltaBias![l]),
        `delta_${l}`,
        1e-4,
        1e-2,
      );
    });
  });
});

describe('ecprune eval and inspect', () => {
  it('eval reads one-hot labels as the classes they encode, and says so in one note', async () => {
    const dir = tempDir();
    const { files, y } = writeData(dir);
    const oneHot = new Float32Array(y.length * outputs);
    y.forEach((label, n) => {
      oneHot[n * outputs + label] = 1;
    });
    const oneHotFile = path.join(dir, 'y_onehot.npy');
    writeFileSync(oneHotFile, writeNpy({ shape: [y.length, outputs], data: oneHot }));
    // one after the other: cli() captures the console
    const evalWith = async (labels: string) => {
      const run = await cli('eval', MODEL, '--data', files.x, '--labels', labels, '--json');
      return { ...run, result: run.code === 0 ? JSON.parse(run.stdout) : undefined };
    };
    const ids = await evalWith(files.y);
    const rows = await evalWith(oneHotFile);
    assert.equal(rows.code, 0, rows.stderr);
    assert.equal(rows.result.loss, 'ce');
    assert.equal(rows.result.accuracy, ids.result.accuracy);
    assert.match(rows.stderr, /^ecprune: note: .*y_onehot\.npy: one-hot rows, read as class ids/m);
    assert.doesNotMatch(ids.stderr, /one-hot/);
  });
  it('eval reports accuracy, cross-entropy and the output error against a reference', async () => {
    const dir = tempDir();
    const { files, x, y } = writeData(dir);
    const run = await cli(
      'eval',
      MODEL,
      '--data',
      files.x,
      '--labels',
      files.y,
      '--reference',
      MODEL,
      '--json',
    );
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout);
    const logits = await forward(model.mlp, x, tsGemm);
    let correct = 0;
    for (let n = 0; n < x.rows; n++) {
      const row = Array.from(logits.data.subarray(n * outputs, (n + 1) * outputs));
      if (row.indexOf(Math.max(...row)) === y[n]) correct++;
    }
    assert.equal(result.accuracy, correct / x.rows);
    assert.equal(result.outputMse, 0);
    assert.ok(result.meanLoss > 0);
  });

  it('inspect lists every layer with its shape, activation and sparsity', async () => {
    const run = await cli('inspect', MODEL, '--json');
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout);
    assert.equal(summary.layers.length, model.mlp.layers.length);
    assert.deepEqual(
      summary.layers.map((l: { activation: string }) => l.activation),
      ['relu', 'leaky_relu:0.2', 'tanh', 'sigmoid', 'gelu', 'softplus', 'elu:0.5', 'identity'],
    );
  });

  it('reads the PyTorch fixture input and reproduces the PyTorch output through the CLI model loader', async () => {
    const input = readNpy(readFileSync(path.join(FIXTURES, 'onnx', 'mlp_activations.input.npy')));
    const expected = readNpy(readFileSync(path.join(FIXTURES, 'onnx', 'mlp_activations.output.npy')));
    const ours = await forward(model.mlp, toFeatureMatrix(input), tsGemm);
    assertClose(ours.data, expected.data as Float32Array, 'PyTorch output', 1e-5);
  });
});
