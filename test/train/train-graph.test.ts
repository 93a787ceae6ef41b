/**
 * Training on graphs: the loss gradient of every fully-connected layer through the whole graph
 * against central finite differences in float64 (a residual + BatchNorm + LayerNorm graph with a
 * softmax head, and a chain), and fine-tuning of pruned producer-zoo graphs (test/fixtures/zoo):
 * the training loss falls, the zeros stay, and the written model runs in onnxruntime-node.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { inMemoryDataset, type Targets } from '../../src/data/dataset.js';
import { setDefaultGemm } from '../../src/gemm/default.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { type DenseLayer, type Graph, withLayers } from '../../src/graph/graph.js';
import { type LossKind, sampleLosses } from '../../src/graph/loss.js';
import { logitsGraph } from '../../src/graph/mlp-graph.js';
import { forward, forwardTrace } from '../../src/graph/run.js';
import { writeNpy } from '../../src/io/npy.js';
import type { Matrix } from '../../src/model/matrix.js';
import { nonzeroWeightCount } from '../../src/model/mlp.js';
import { loadModel, saveModel } from '../../src/node/models.js';
import { lazyOrtGemm } from '../../src/node/ort-gemm.js';
import { prune } from '../../src/pipeline/prune.js';
import { evaluate } from '../../src/train/evaluate.js';
import { finetune, keepMasksOf, lossAndGradients } from '../../src/train/train.js';
import { cli, tempDir } from '../cli/run.js';
import { buildGraph, type GraphSpec, randomInput, residualSpec } from '../graph/build.js';
import { manifest, npy, ZOO } from '../helpers/zoo.js';

const BATCH = 5;

/** The graph with float64 weights and biases, so that finite differences see float64 everywhere. */
function inFloat64(graph: Graph): Graph {
  const layers = graph.layers.map(
    (layer): DenseLayer => ({
      ...layer,
      weight: { ...layer.weight, data: Float64Array.from(layer.weight.data) as unknown as Float32Array },
      bias: Float64Array.from(layer.bias) as unknown as Float32Array,
    }),
  );
  return withLayers(graph, layers);
}

/** The batch-mean loss as `lossAndGradients` defines it (CE on the logits behind a softmax head). */
async function meanLoss(graph: Graph, x: Matrix, y: Targets, loss: LossKind): Promise<number> {
  const measured = loss === 'ce' ? logitsGraph(graph) : graph;
  const { output } = await forwardTrace(measured, x, tsGemm);
  return sampleLosses(output, y, loss).reduce((s, v) => s + v, 0) / x.rows;
}

/** Worst relative error of every weight and bias gradient against central differences. */
async function gradientError(spec: GraphSpec, loss: LossKind, outputs: number): Promise<number> {
  const graph = inFloat64(buildGraph(spec));
  const features = spec.input.reduce((p, n) => p * n, 1);
  const input = randomInput(BATCH, features, 3);
  const x = { rows: BATCH, cols: features, data: input.data as Float32Array };
  const y: Targets =
    loss === 'ce'
      ? { kind: 'classes', values: Int32Array.from({ length: BATCH }, (_, n) => (3 * n + 1) % outputs) }
      : {
          kind: 'values',
          values: {
            rows: BATCH,
            cols: outputs,
            data: randomInput(BATCH, outputs, 4, false).data as Float32Array,
          },
        };
  const gradients = await lossAndGradients(graph, x, y, loss, tsGemm);
  assert.ok(
    Math.abs(gradients.loss - (await meanLoss(graph, x, y, loss))) < 1e-9,
    'the loss is the batch mean',
  );
  const h = 1e-6;
  let worst = 0;
  for (const [l, layer] of graph.layers.entries()) {
    for (const [values, analytic] of [
      [layer.weight.data, gradients.weight[l]],
      [layer.bias, gradients.bias[l]],
    ] as const) {
      for (let k = 0; k < values.length; k++) {
        const v = values[k];
        values[k] = v + h;
        const up = await meanLoss(graph, x, y, loss);
        values[k] = v - h;
        const down = await meanLoss(graph, x, y, loss);
        values[k] = v;
        const numeric = (up - down) / (2 * h);
        worst = Math.max(worst, Math.abs(analytic[k] - numeric) / Math.max(1e-3, Math.abs(numeric)));
      }
    }
  }
  return worst;
}

const CHAIN: GraphSpec = {
  input: [4],
  layers: [
    [6, 4],
    [5, 6],
    [3, 5],
  ],
  nodes: [
    ['Dense', ['x'], ['z0'], { layer: 0 }],
    ['Tanh', ['z0'], ['a0']],
    ['Dense', ['a0'], ['z1'], { layer: 1 }],
    ['Relu', ['z1'], ['a1']],
    ['Dense', ['a1'], ['y'], { layer: 2 }],
  ],
  output: 'y',
};

describe('the loss gradient of every fully-connected layer through the graph (float64, central differences)', () => {
  for (const loss of ['ce', 'mse'] as const) {
    it(`residual + BatchNorm + LayerNorm + softmax head, ${loss}`, async () => {
      const error = await gradientError(residualSpec(5), loss, 4);
      // the gradients are float32 arrays (what training updates): float32 rounding, not the method
      assert.ok(error < 1e-5, `relative error ${error}`);
    });
    it(`a chain (Dense, Tanh, Dense, Relu, Dense), ${loss}`, async () => {
      const error = await gradientError(CHAIN, loss, 3);
      assert.ok(error < 1e-5, `relative error ${error}`);
    });
  }
});

// --- fine-tuning pruned producer graphs ---------------------------------------------------------

const dir = tempDir('ecprune-train-graph-');
after(() => rmSync(dir, { recursive: true, force: true }));

/** Labels the model does not predict yet: its own arg-max class shifted by one. */
function shiftedLabels(outputs: Float32Array | Float64Array, rows: number): Int32Array {
  const k = outputs.length / rows;
  return Int32Array.from({ length: rows }, (_, n) => {
    let best = 0;
    for (let c = 1; c < k; c++) if (outputs[n * k + c] > outputs[n * k + best]) best = c;
    return (best + 1) % k;
  });
}

async function runOnnx(file: string, x: Float32Array, shape: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(readFileSync(file));
  const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, shape) });
  return result[session.outputNames[0]].data as Float32Array;
}

function assertZerosKept(before: Graph, after: Graph, name: string): void {
  let trained = 0;
  before.layers.forEach((layer, l) => {
    layer.weight.data.forEach((w, k) => {
      const now = after.layers[l].weight.data[k];
      if (w === 0) assert.equal(now, 0, `${name}: layer ${l} weight ${k} stays zero`);
      else if (now !== w) trained++;
    });
  });
  assert.ok(trained > 0, `${name}: the kept weights train`);
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, name: string): void {
  assert.equal(actual.length, expected.length, `${name}: output length`);
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    assert.ok(error <= 1e-5 * Math.abs(expected[i]) + 1e-6, `${name}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

describe('finetune of pruned zoo graphs (exported by torch)', () => {
  for (const name of ['residual', 'layernorm_opset17', 'batchnorm_nobias', 'softmax_head']) {
    it(`${name}: the training loss falls, zeros stay, onnxruntime runs the written model`, async () => {
      const fixture = manifest.fixtures.find((f) => f.name === name)!;
      const model = await loadModel(path.join(ZOO, fixture.file));
      const calib = npy(fixture, 'calib.npy');
      const rows = calib.shape[0];
      const x = { rows, cols: calib.data.length / rows, data: Float32Array.from(calib.data) };
      const y: Targets = {
        kind: 'classes',
        values: shiftedLabels(npy(fixture, 'outputs.npy').data as Float32Array, rows),
      };
      const data = inMemoryDataset(x, y, name);
      const pruned = (await prune(model.graph, data, { sparsity: 0.5, gemm: tsGemm })).model as Graph;
      const lossBefore = (await evaluate(pruned, data, { gemm: tsGemm })).meanLoss!;
      const { model: tuned } = await finetune(pruned, data, {
        epochs: 30,
        batchSize: 16,
        learningRate: 1e-2,
        seed: 1,
        gemm: tsGemm,
      });
      const lossAfter = (await evaluate(tuned, data, { gemm: tsGemm })).meanLoss!;
      assert.ok(lossAfter < 0.8 * lossBefore, `${name}: training loss ${lossBefore} → ${lossAfter}`);
      assertZerosKept(pruned, tuned, name);
      tuned.layers.forEach((layer, l) => {
        if (!pruned.layers[l].hasBias)
          assert.deepEqual(
            layer.bias,
            pruned.layers[l].bias,
            `${name}: a layer stored without a bias keeps it`,
          );
      });

      const file = path.join(dir, `${name}.onnx`);
      await saveModel(file, tuned, { like: model, force: true });
      const written = await loadModel(file);
      assert.deepEqual(keepMasksOf(written.graph), keepMasksOf(tuned), `${name}: the zeros are in the file`);
      const ours = await forward(tuned, x, tsGemm);
      assertClose(await runOnnx(file, x.data, [rows, ...fixture.inputShape]), ours.data, name);
    });
  }
});

/**
 * A zoo model pruned to 50 % and fine-tuned 2 epochs by `ecprune prune --finetune-epochs`, then
 * fine-tuned again by `ecprune finetune ... finetuneArgs`, on its calibration inputs with labels it
 * does not predict yet.
 */
async function pruneThenFinetune(name: string, finetuneArgs: string[]) {
  const fixture = manifest.fixtures.find((f) => f.name === name)!;
  const calib = npy(fixture, 'calib.npy');
  const rows = calib.shape[0];
  const labels = path.join(dir, `${name}-y.npy`);
  const outputs = npy(fixture, 'outputs.npy').data as Float32Array;
  writeFileSync(labels, writeNpy({ shape: [rows], data: shiftedLabels(outputs, rows) }));
  const calibFile = path.join(ZOO, name, 'calib.npy');
  const output = (stage: string) => path.join(dir, name, stage, path.basename(fixture.file));
  const common = ['--quiet', '--batch-size', '16'];
  const pruneArgs = ['--calib', calibFile, '--calib-labels', labels, '--sparsity', '0.5'];
  const prune = await cli(
    'prune',
    path.join(ZOO, fixture.file),
    ...pruneArgs,
    '--finetune-epochs',
    '2',
    ...common,
    '-o',
    output('pruned'),
  );
  assert.equal(prune.code, 0, prune.stderr);
  const run = await cli(
    'finetune',
    output('pruned'),
    '--data',
    calibFile,
    '--labels',
    labels,
    ...finetuneArgs,
    ...common,
    '-o',
    output('tuned'),
  );
  assert.equal(run.code, 0, run.stderr);
  const [pruned, tuned] = [await loadModel(output('pruned')), await loadModel(output('tuned'))];
  assertZerosKept(pruned.graph, tuned.graph, name);
  return { fixture, calib, rows, tuned, tunedFile: output('tuned'), stdout: run.stdout };
}

describe('the CLI fine-tunes graph models', () => {
  // as the `ecprune` entry point does: the frozen prefix runs in onnxruntime
  before(() => setDefaultGemm(lazyOrtGemm()));
  after(() => setDefaultGemm(tsGemm));

  it('cnn_head (a frozen Conv prefix): prune --finetune-epochs, then finetune; onnxruntime runs the result', async () => {
    const { fixture, calib, rows, tuned, tunedFile } = await pruneThenFinetune('cnn_head', ['--epochs', '5']);
    assert.ok(tuned.prefix, 'the frozen prefix is still there');
    const output = await runOnnx(tunedFile, Float32Array.from(calib.data), [rows, ...fixture.inputShape]);
    assert.equal(output.length, rows * fixture.outputShape[0]);
    assert.ok(
      output.every((v) => Number.isFinite(v)),
      'onnxruntime runs the fine-tuned model',
    );
  });

  it('tfjs_residual (a TF.js functional model): finetune with a pruning schedule ends exactly at its sparsity', async () => {
    const schedule = ['--epochs', '3', '--prune-to', '0.75', '--prune-end', '2', '--prune-every', '2'];
    const { tuned, stdout } = await pruneThenFinetune('tfjs_residual', schedule);
    const total = tuned.graph.layers.reduce((sum, layer) => sum + layer.weight.data.length, 0);
    const zeros = total - nonzeroWeightCount(tuned.graph);
    assert.equal(zeros, Math.floor(0.75 * total + 0.5), 'the final sparsity, counted in the written model');
    assert.match(stdout, /epoch 3\/3 .*sparsity 75\.0 %/);
  });
});
