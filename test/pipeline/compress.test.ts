import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { type Dataset, inMemoryDataset } from '../../src/data/dataset.js';
import { EcpruneError } from '../../src/errors.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import type { Matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import { type CompressResult, compress } from '../../src/pipeline/compress.js';
import { loadEcsr } from '../../src/runtime/index.js';
import { trainModel } from '../../src/train/train.js';
import { assertClose } from '../core/helpers.js';
import { buildGraph, residualSpec } from '../graph/build.js';
import { randomMatrix, randomMlp } from '../helpers/random.js';

const SIZES = [16, 32, 32, 4];

function argMax(row: ArrayLike<number>): number {
  let best = 0;
  for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
  return best;
}

function labelsOf(outputs: ArrayLike<number>, rows: number, classes: number): Int32Array {
  return Int32Array.from({ length: rows }, (_, r) =>
    argMax(Array.prototype.slice.call(outputs, r * classes, (r + 1) * classes)),
  );
}

/**
 * A classification task whose labels are the arg-max of a seeded teacher network, and a student
 * trained on it (the dense model to compress): pruning and sharing cost it accuracy gradually.
 */
async function teacherTask(): Promise<{
  dense: Mlp;
  train: Dataset;
  validation: Dataset;
  validationX: Matrix;
  validationLabels: Int32Array;
}> {
  const teacher = randomMlp(SIZES, { kind: 'relu' }, 1);
  const labelled = async (rows: number, seed: number, name: string) => {
    const x = randomMatrix(rows, SIZES[0], seed);
    const labels = labelsOf((await forward(teacher, x, tsGemm)).data, rows, 4);
    return { x, labels, data: inMemoryDataset(x, { kind: 'classes', values: labels }, name) };
  };
  const train = await labelled(1000, 2, 'train');
  const validation = await labelled(500, 3, 'validation');
  const { model: dense } = await trainModel(
    { sizes: SIZES, activation: { kind: 'relu' }, seed: 4 },
    train.data,
    { epochs: 30, seed: 0, gemm: tsGemm, learningRate: 3e-3 },
  );
  return {
    dense,
    train: train.data,
    validation: validation.data,
    validationX: validation.x,
    validationLabels: validation.labels,
  };
}

/** Top-1 accuracy of a `.ecsr` file as the runtime runs it: independent of the pipeline's evaluation. */
function runtimeAccuracy(file: Uint8Array, x: Matrix, labels: Int32Array): number {
  const predicted = labelsOf(loadEcsr(file).run(x.data, x.rows), x.rows, 4);
  return predicted.reduce((right, label, r) => right + +(label === labels[r]), 0) / x.rows;
}

describe('compress', () => {
  let task: Awaited<ReturnType<typeof teacherTask>>;
  let result: CompressResult;
  let denseAccuracy: number;
  const maxAccuracyDrop = 1;
  before(async () => {
    task = await teacherTask();
    const dense = labelsOf(
      (await forward(task.dense, task.validationX, tsGemm)).data,
      task.validationX.rows,
      4,
    );
    denseAccuracy =
      dense.reduce((n, label, r) => n + +(label === task.validationLabels[r]), 0) / dense.length;
    result = await compress(task.dense, task.train, {
      validation: task.validation,
      maxAccuracyDrop,
      finetuneEpochs: 2,
      sparsityProbes: 3,
      calibrationSamples: 200,
      gemm: tsGemm,
    });
  });

  /** The file keeps the budget as the runtime runs it; the probe beside it in each search did not. */
  function checkSearch(found: CompressResult, drop: number, maxSparsity: number): void {
    const threshold = denseAccuracy - drop / 100;
    const accuracy = runtimeAccuracy(found.file, task.validationX, task.validationLabels);
    assert.ok(accuracy >= threshold - 1e-12, `file ${accuracy} against the budget ${threshold}`);
    assert.equal(
      found.stages[2].validationAccuracy,
      accuracy,
      'the table reports the file as the runtime runs it',
    );
    for (const probe of found.probes) {
      assert.equal(
        probe.accepted,
        probe.validationAccuracy >= threshold - 1e-12,
        `probe ${JSON.stringify(probe)}`,
      );
    }
    if (found.sparsity < maxSparsity) {
      const above = found.probes.filter((p) => p.stage === 'prune' && p.sparsity > found.sparsity);
      assert.ok(above.length > 0, 'a sparser point was probed');
      const next = above.reduce((a, b) => (b.sparsity < a.sparsity ? b : a));
      assert.equal(next.accepted, false, `the next sparser probe ${next.sparsity} was refused`);
    }
    if (found.bits > 2) {
      const fewer = found.probes.find(
        (p) => p.stage === 'share' && p.sparsity === found.sparsity && p.bits === found.bits - 1,
      );
      assert.equal(fewer?.accepted, false, `${found.bits - 1} bits were probed and refused`);
    }
  }

  it('keeps the written file within the budget on the validation data, and the next sparser probe outside it', () => {
    checkSearch(result, maxAccuracyDrop, 0.98);
    assert.ok(result.sparsity > 0 && result.sparsity < 0.98, `an intermediate sparsity: ${result.sparsity}`);
  });

  it('takes the fewest codebook bits within the budget: one bit fewer was probed and refused', async () => {
    // no drop allowed, no centroid fine-tuning: the coarse codebooks cost accuracy
    const strict = await compress(task.dense, task.train, {
      validation: task.validation,
      maxAccuracyDrop: 0,
      maxSparsity: 0.3,
      sparsityProbes: 0,
      finetuneEpochs: 2,
      centroidEpochs: 0,
      calibrationSamples: 200,
      gemm: tsGemm,
    });
    assert.ok(strict.bits > 2 && strict.bits < 8, `an intermediate number of bits: ${strict.bits}`);
    assert.equal(strict.sparsity, 0.3, 'the first sparsity probe kept the budget');
    checkSearch(strict, 0, 0.3);
  });

  it('writes a .ecsr v2 file with the chosen sparsity and codebook that runs as the dequantised model to 1e-5', async () => {
    const runtime = loadEcsr(result.file);
    assert.equal(runtime.valueType, 'codebook');
    const stored = runtime.layers.reduce((n, layer) => n + layer.rowPtr[layer.nOut], 0);
    const weights = runtime.layers.reduce((n, layer) => n + layer.nOut * layer.nIn, 0);
    assert.ok(
      Math.abs(1 - stored / weights - result.sparsity) < 2 / weights + 1e-9,
      `stored ${stored} of ${weights} weights at sparsity ${result.sparsity}`,
    );
    result.model.layers.forEach((layer, l) => {
      const shared = new Set(Array.from(layer.weight.data).filter((w) => w !== 0));
      assert.ok(
        shared.size <= 2 ** result.bits,
        `layer ${l}: ${shared.size} distinct weights for ${result.bits} bits`,
      );
    });
    const x = task.validationX;
    const expected = await forward(result.model, x, tsGemm);
    // the same float32 weights summed in another order (sparse rows against dense GEMM): 1e-5 relative,
    // with outputs that cancel to near zero held to 1e-5 of a tenth of the largest output
    assertClose(runtime.run(x.data, x.rows), expected.data, 'runtime vs dequantised model', 1e-5, 0.1);
    assert.equal(result.stages[2].bytes, result.file.length);
    assert.equal(result.stages[0].bits, 32);
    assert.ok(result.stages[2].ratio > result.stages[1].ratio, 'sharing and coding shrink the pruned file');
  });

  it('refuses a graph the runtime cannot run, and data without class labels, before any work', async () => {
    const residual = buildGraph(residualSpec(16));
    await assert.rejects(
      compress(residual, task.train, { gemm: tsGemm }),
      (e: unknown) => e instanceof EcpruneError && e.code === 'unsupported' && /plain chain/.test(e.message),
    );
    const values = inMemoryDataset(task.validationX, {
      kind: 'values',
      values: { rows: task.validationX.rows, cols: 4, data: new Float32Array(4 * task.validationX.rows) },
    });
    await assert.rejects(
      compress(task.dense, values, { gemm: tsGemm }),
      (e: unknown) => e instanceof EcpruneError && e.code === 'input' && /class labels/.test(e.message),
    );
  });
});
