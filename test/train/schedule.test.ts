/**
 * Gradual pruning (src/train/schedule.ts): the polynomial decay against values worked by hand, the
 * pruning steps, and training runs on a chain and on a graph that hit the schedule's sparsity
 * exactly at every pruning step (zeros counted in the weights), hold the masks between steps, end
 * exactly at the final sparsity, and compensate every step with EC's bias shift.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { inMemoryDataset, type Targets } from '../../src/data/dataset.js';
import { createRandom } from '../../src/data/random.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { type Graph, type Model, withLayers } from '../../src/graph/graph.js';
import { writeNpy } from '../../src/io/npy.js';
import { type Matrix, matrix } from '../../src/model/matrix.js';
import type { Layered } from '../../src/model/mlp.js';
import { loadModel } from '../../src/node/models.js';
import { pruneStep, pruneToSparsity } from '../../src/pipeline/gradual.js';
import { score } from '../../src/pipeline/score.js';
import type { KeepMask } from '../../src/select/select.js';
import { checkSchedule, isPruningStep, type PruningStepInfo, sparsityAt } from '../../src/train/schedule.js';
import { initMlp, trainModel } from '../../src/train/train.js';
import { cli, tempDir } from '../cli/run.js';
import { buildGraph, randomInput, residualSpec } from '../graph/build.js';

describe('the polynomial-decay schedule', () => {
  const schedule = checkSchedule(
    { initialSparsity: 0.1, finalSparsity: 0.9, begin: 10, end: 50, frequency: 10, power: 3 },
    60,
  );
  it('s(t) = s1 + (s0 − s1)(1 − (t − begin)/(end − begin))^power, s0 before begin, s1 after end', () => {
    // by hand: at t = 30, (1 - 20/40)^3 = 1/8, 0.9 - 0.8/8 = 0.8; at t = 20, (3/4)^3 = 27/64
    assert.equal(sparsityAt(schedule, 0), 0.1);
    assert.equal(sparsityAt(schedule, 10), 0.1);
    assert.ok(Math.abs(sparsityAt(schedule, 30) - 0.8) < 1e-15, 'the middle');
    assert.ok(Math.abs(sparsityAt(schedule, 20) - (0.9 - (0.8 * 27) / 64)) < 1e-15, 'a quarter in');
    assert.equal(sparsityAt(schedule, 50), 0.9);
    assert.equal(sparsityAt(schedule, 60), 0.9);
  });
  it('prunes every `frequency` steps from begin, and at end even off the grid', () => {
    const steps = (s: ReturnType<typeof checkSchedule>) =>
      Array.from({ length: 61 }, (_, t) => t).filter((t) => isPruningStep(s, t));
    assert.deepEqual(steps(schedule), [10, 20, 30, 40, 50]);
    assert.deepEqual(steps({ ...schedule, end: 45 }), [10, 20, 30, 40, 45]);
  });
  it('refuses schedules that cannot run, with one line each', () => {
    const base = { finalSparsity: 0.5, end: 10 };
    assert.throws(() => checkSchedule({ ...base, end: 11 }, 10), /ends at step 11, after the 10 steps/);
    assert.throws(() => checkSchedule({ ...base, begin: 5, end: 4 }, 10), /begin <= end/);
    assert.throws(() => checkSchedule({ ...base, initialSparsity: 0.6 }, 10), /below the initial/);
    assert.throws(() => checkSchedule({ ...base, finalSparsity: 1 }, 10), /sparsity must be in \[0, 1\)/);
    assert.throws(() => checkSchedule({ ...base, frequency: 0 }, 10), /frequency/);
  });
});

// --- training with a schedule ---------------------------------------------------------------------

/** Three Gaussian blobs of `features` dimensions, classes 0..2. */
function blobs(samples: number, features: number, seed: number): { x: Matrix; y: Targets } {
  const random = createRandom(seed);
  const x = matrix(samples, features);
  const values = new Int32Array(samples);
  for (let n = 0; n < samples; n++) {
    const c = random.int(3);
    values[n] = c;
    for (let f = 0; f < features; f++) x.data[n * features + f] = (f % 3 === c ? 2 : 0) + random.normal();
  }
  return { x, y: { kind: 'classes', values } };
}

const zerosOf = (model: Layered) =>
  model.layers.map((layer) => Uint8Array.from(layer.weight.data, (w) => +(w === 0)));
const count = (masks: readonly Uint8Array[]) =>
  masks.reduce((sum, m) => sum + m.reduce((n, v) => n + v, 0), 0);
/** k = floor(s · n + 0.5): the project's rounding of a sparsity to a count (select.ts pruneCount). */
const expectedZeros = (sparsity: number, weights: number) => Math.floor(sparsity * weights + 0.5);

async function checkRun(init: Model, features: number, name: string): Promise<void> {
  const data = blobs(320, features, 2);
  const total = init.layers.reduce((sum, layer) => sum + layer.weight.data.length, 0);
  const steps: { info: PruningStepInfo; zeros: Uint8Array[] }[] = [];
  // 320 samples, batch 32: 10 steps an epoch, 40 in 4 epochs; pruning at 0, 6, 12, 18, 24, 25
  const schedule = { initialSparsity: 0, finalSparsity: 0.8, begin: 0, end: 25, frequency: 6 };
  const { model } = await trainModel(init, inMemoryDataset(data.x, data.y, name), {
    epochs: 4,
    batchSize: 32,
    learningRate: 1e-2,
    seed: 3,
    gemm: tsGemm,
    pruning: {
      schedule,
      calibrationSamples: 100,
      pruneTo: pruneStep({ gemm: tsGemm }),
      onPrune: (info) => steps.push({ info, zeros: zerosOf(info.model) }),
    },
  });
  assert.deepEqual(
    steps.map((s) => s.info.step),
    [0, 6, 12, 18, 24, 25],
    `${name}: the pruning steps`,
  );
  const checked = checkSchedule(schedule, 40);
  let previous: Uint8Array[] | undefined;
  for (const { info, zeros } of steps) {
    const target = sparsityAt(checked, info.step);
    assert.equal(info.targetSparsity, target);
    assert.equal(
      count(zeros),
      expectedZeros(target, total),
      `${name}: zeros at step ${info.step} (s = ${target})`,
    );
    for (const [l, mask] of (previous ?? []).entries()) {
      for (const [k, zero] of mask.entries()) {
        if (zero)
          assert.equal(zeros[l][k], 1, `${name}: step ${info.step} keeps layer ${l} weight ${k} pruned`);
      }
    }
    previous = zeros;
  }
  // after the last pruning step the masks are held: the same zeros, exactly the final sparsity
  assert.deepEqual(zerosOf(model), previous, `${name}: the masks are held after the end`);
  assert.equal(count(zerosOf(model)), expectedZeros(0.8, total), `${name}: the final sparsity`);
}

describe('training with a pruning schedule', () => {
  it('a chain: exact sparsity at every pruning step, masks held, exact final sparsity', async () => {
    await checkRun(initMlp({ sizes: [6, 16, 12, 3], activation: { kind: 'relu' }, seed: 4 }), 6, 'chain');
  });
  it('a graph (residual, BatchNorm, LayerNorm, softmax head): the same', async () => {
    await checkRun(buildGraph(residualSpec(6)), 6, 'graph');
  });
});

describe('each pruning step compensates as its method does', () => {
  /** Kept weights moved a little, as training moves them between pruning steps. */
  function trained(model: Graph, seed: number): Graph {
    const random = createRandom(seed);
    return withLayers(
      model,
      model.layers.map((layer) => ({
        ...layer,
        weight: {
          ...layer.weight,
          data: layer.weight.data.map((w) => (w === 0 ? 0 : w * (1 + 0.1 * random.normal()))),
        },
      })),
    );
  }

  for (const method of ['ec', 'magnitude'] as const) {
    it(`${method}: the bias change of every step is ${method === 'ec' ? "EC's shift of the weights it removes" : 'none'}`, async () => {
      const x = randomInput(150, 5, 8, false);
      const calibration = inMemoryDataset({ rows: 150, cols: 5, data: x.data as Float32Array });
      let model = buildGraph(residualSpec(5));
      let masks: readonly KeepMask[] = model.layers.map((layer) =>
        new Uint8Array(layer.weight.data.length).fill(1),
      );
      for (const [t, sparsity] of [0.3, 0.55, 0.7].entries()) {
        const { deltaBias } = await score(model, calibration, { method: 'ec', gemm: tsGemm });
        const next = await pruneToSparsity(model, masks, sparsity, calibration, { method, gemm: tsGemm });
        next.model.layers.forEach((layer, l) => {
          const { rows, cols } = layer.weight;
          for (let i = 0; i < rows; i++) {
            let shift = 0;
            for (let j = 0; j < cols; j++) {
              const p = i * cols + j;
              if (masks[l][p] && !next.keepMasks[l][p]) shift += deltaBias![l][p];
              if (!masks[l][p]) assert.equal(next.keepMasks[l][p], 0, 'pruned weights stay pruned');
            }
            const expected = model.layers[l].bias[i] + (method === 'ec' ? shift : 0);
            const actual = layer.bias[i];
            assert.ok(
              Math.abs(actual - expected) <= 1e-6 * Math.max(1, Math.abs(expected)),
              `step ${t}, layer ${l}, neuron ${i}: bias ${actual}, expected ${expected}`,
            );
          }
        });
        assert.equal(count(zerosOf(next.model)), expectedZeros(sparsity, 30 + 36 + 24), `step ${t}: zeros`);
        masks = next.keepMasks;
        model = trained(next.model, t);
      }
    });
  }
});

describe('a pruning step without a method', () => {
  it("is the paper's EC (README: --prune-method default ec), not prune's multi-step default recipe", async () => {
    const x = randomInput(150, 5, 9, false);
    const calibration = inMemoryDataset({ rows: 150, cols: 5, data: x.data as Float32Array });
    const model = buildGraph(residualSpec(5));
    const masks = model.layers.map((layer) => new Uint8Array(layer.weight.data.length).fill(1));
    const [unnamed, ec] = await Promise.all(
      [{}, { method: 'ec' as const }].map((options) =>
        pruneToSparsity(model, masks, 0.5, calibration, { ...options, gemm: tsGemm }),
      ),
    );
    assert.deepEqual(unnamed.keepMasks, ec.keepMasks, 'the same masks as EC');
    unnamed.model.layers.forEach((layer, l) => {
      assert.deepEqual(layer.bias, ec.model.layers[l].bias, `layer ${l}: the same compensated biases`);
    });
  });
});

describe('ecprune train --prune-to', () => {
  it('writes a model at exactly the final sparsity, with its schedule in the metadata; bad ends are one line', async () => {
    const dir = tempDir();
    const data = blobs(200, 6, 5);
    const [x, y] = [path.join(dir, 'x.npy'), path.join(dir, 'y.npy')];
    writeFileSync(x, writeNpy({ shape: [200, 6], data: data.x.data }));
    writeFileSync(y, writeNpy({ shape: [200], data: (data.y as { values: Int32Array }).values }));
    const out = path.join(dir, 'm.onnx');
    const argv = ['train', '--data', x, '--labels', y, '--layers', '6,12,3', '--epochs', '3', '--quiet'];
    const schedule = [
      '--prune-to',
      '0.6',
      '--prune-begin',
      '0.5',
      '--prune-every',
      '2',
      '--batch-size',
      '20',
    ];
    const run = await cli(...argv, ...schedule, '-o', out);
    assert.equal(run.code, 0, run.stderr);
    const { graph } = await loadModel(out);
    assert.equal(count(zerosOf(graph)), expectedZeros(0.6, 6 * 12 + 12 * 3), 'the final sparsity');
    assert.match(readFileSync(out).toString('latin1'), /ecprune_pruning_schedule/);
    const refusals: [string[], string][] = [
      [
        [...argv, '--prune-to', '0.6', '--prune-end', '4'],
        '--prune-end 4 is after the last epoch (--epochs 3)',
      ],
      [
        ['finetune', out, '--data', x, '--labels', y, '--prune-to', '0.5'],
        "--prune-to 0.5 is below --prune-from 0.6019 (the model's own sparsity; give --prune-from)",
      ],
    ];
    for (const [args, message] of refusals) {
      const refused = await cli(...args, '-o', path.join(dir, 'refused.onnx'));
      assert.equal(refused.code, 2, args.join(' '));
      assert.equal(refused.stderr.trim(), `ecprune: ${message}`);
    }
    rmSync(dir, { recursive: true, force: true });
  });
});
