/**
 * Sparsity from a quality budget (src/pipeline/budget.ts), on a small net whose labels it makes
 * itself (a teacher: dense accuracy 100 %, dense MSE 0), calibration and held-out samples apart.
 * The truth each choice is checked against is a fresh `prune` at that sparsity (no reused
 * statistics), measured by `evaluate` on the held-out set.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { type Dataset, inMemoryDataset, materialize } from '../../src/data/dataset.js';
import { EcpruneError } from '../../src/errors.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { writeNpy } from '../../src/io/npy.js';
import type { Mlp } from '../../src/model/mlp.js';
import { saveModel } from '../../src/node/models.js';
import { type BudgetOptions, pruneToBudget } from '../../src/pipeline/budget.js';
import { prune } from '../../src/pipeline/prune.js';
import type { MethodName } from '../../src/score/methods.js';
import { evaluate } from '../../src/train/evaluate.js';
import { cli, tempDir } from '../cli/run.js';
import { randomData, randomMlp } from './helpers.js';

const gemm = tsGemm;
const teacher = randomMlp([12, 24, 16, 5], { kind: 'relu' }, 3);

/** Samples labelled by the teacher itself: class ids (arg-max) or its outputs as values. */
async function labelled(samples: number, seed: number, kind: 'classes' | 'values'): Promise<Dataset> {
  const { x } = await materialize(randomData(samples, 12, seed));
  const y = await forward(teacher, x, gemm);
  if (kind === 'values') return inMemoryDataset(x, { kind: 'values', values: y }, `values-${seed}`);
  const classes = Int32Array.from({ length: samples }, (_, n) => {
    let best = 0;
    for (let k = 1; k < y.cols; k++) if (y.data[n * y.cols + k] > y.data[n * y.cols + best]) best = k;
    return best;
  });
  return inMemoryDataset(x, { kind: 'classes', values: classes }, `classes-${seed}`);
}

/** The held-out quality of a fresh prune at `sparsity`. */
async function freshly(
  model: Mlp,
  calibration: Dataset,
  heldOut: Dataset,
  sparsity: number,
  method: MethodName,
) {
  const { model: pruned } = await prune(model, calibration, { method, sparsity, gemm });
  return evaluate(pruned, heldOut, { gemm });
}

describe('pruneToBudget', () => {
  for (const method of ['ec', 'magnitude'] as const) {
    it(`${method}, --min-accuracy: the chosen sparsity meets it on the held-out set and the next probed one does not`, async () => {
      const calibration = await labelled(300, 1, 'classes');
      const heldOut = await labelled(400, 2, 'classes');
      const options: BudgetOptions = { method, minAccuracy: 0.9, resolution: 0.02, gemm };
      const search = await pruneToBudget(teacher, calibration, heldOut, options);
      assert.ok(search.sparsity > 0 && search.sparsity < 0.98, `chose ${search.sparsity}`);
      const above = search.failedAbove;
      assert.ok(above !== undefined && !above.met, 'a failing probe above the choice');
      const chosen = await freshly(teacher, calibration, heldOut, search.sparsity, method);
      assert.ok(chosen.accuracy! >= 0.9, `accuracy ${chosen.accuracy} at ${search.sparsity}`);
      const next = await freshly(teacher, calibration, heldOut, above.sparsity, method);
      assert.ok(next.accuracy! < 0.9, `accuracy ${next.accuracy} at ${above.sparsity}`);
      assert.ok(
        Math.abs(above.sparsity - search.sparsity - 0.02) < 1e-9,
        `bisection to the resolution: ${search.sparsity} then ${above.sparsity}`,
      );
      // the returned model is the pruning at the chosen sparsity, on the reused statistics
      const returned = await evaluate(search.result.model, heldOut, { gemm });
      assert.equal(returned.accuracy, chosen.accuracy, 'the returned model is the fresh pruning');
      assert.deepEqual(
        search.probes.map((p) => p.sparsity),
        [...search.probes.map((p) => p.sparsity)].sort((a, b) => a - b),
        'probes by sparsity',
      );
    });
  }

  it('--max-loss-increase on values: loss increase over the dense model within the budget, above it not', async () => {
    const calibration = await labelled(300, 1, 'values');
    const heldOut = await labelled(400, 2, 'values');
    const dense = await evaluate(teacher, heldOut, { gemm });
    const search = await pruneToBudget(teacher, calibration, heldOut, {
      method: 'ec',
      maxLossIncrease: 0.05,
      gemm,
    });
    const chosen = await freshly(teacher, calibration, heldOut, search.sparsity, 'ec');
    assert.ok(chosen.meanLoss! - dense.meanLoss! <= 0.05, `increase ${chosen.meanLoss! - dense.meanLoss!}`);
    const above = search.failedAbove!;
    const next = await freshly(teacher, calibration, heldOut, above.sparsity, 'ec');
    assert.ok(next.meanLoss! - dense.meanLoss! > 0.05, `increase ${next.meanLoss! - dense.meanLoss!} above`);
  });

  it('a recipe that cannot reuse the statistics (sequential) prunes afresh at every probe', async () => {
    const calibration = await labelled(300, 1, 'classes');
    const heldOut = await labelled(400, 2, 'classes');
    const search = await pruneToBudget(teacher, calibration, heldOut, {
      minAccuracy: 0.8,
      resolution: 0.05,
      sequential: true,
      gemm,
    });
    const fresh = async (sparsity: number) =>
      evaluate((await prune(teacher, calibration, { sparsity, sequential: true, gemm })).model, heldOut, {
        gemm,
      });
    assert.ok((await fresh(search.sparsity)).accuracy! >= 0.8, `chose ${search.sparsity}`);
    assert.ok(
      (await fresh(search.failedAbove!.sparsity)).accuracy! < 0.8,
      `${search.failedAbove!.sparsity} fails`,
    );
    // the paper's one-shot ec: statistics to reuse (the default recipe takes steps)
    const { statistics } = await prune(teacher, calibration, { method: 'ec', sparsity: 0.5, gemm });
    await assert.rejects(
      prune(teacher, calibration, { sparsity: 0.5, sequential: true, statistics, gemm }),
      /reused statistics are for one-shot pruning/,
    );
    await assert.rejects(
      prune(teacher, await labelled(100, 5, 'classes'), { method: 'ec', sparsity: 0.5, statistics, gemm }),
      /are not of this model and calibration set/,
    );
  });

  it('an infeasible budget is a usage error naming the held-out set', async () => {
    const calibration = await labelled(200, 1, 'classes');
    const heldOut = await labelled(200, 2, 'classes');
    await assert.rejects(
      pruneToBudget(teacher, calibration, heldOut, { minAccuracy: 1, resolution: 0.3, gemm }),
      (error: unknown) =>
        error instanceof EcpruneError &&
        error.code === 'usage' &&
        /^classes-2: no sparsity meets the budget/.test(error.message),
    );
  });
});

describe('prune --min-accuracy / --max-loss-increase', () => {
  const dir = tempDir();
  const write = async () => {
    const model = path.join(dir, 'teacher.onnx');
    await saveModel(model, teacher, { force: true });
    const files = async (name: string, samples: number, seed: number) => {
      const { x, y } = await materialize(await labelled(samples, seed, 'classes'));
      const inputs = path.join(dir, `x_${name}.npy`);
      const labels = path.join(dir, `y_${name}.npy`);
      writeFileSync(inputs, writeNpy({ shape: [x.rows, x.cols], data: x.data }));
      writeFileSync(labels, writeNpy({ shape: [x.rows], data: Int32Array.from(y!.values as Int32Array) }));
      return [inputs, labels];
    };
    const [calib, calibLabels] = await files('calib', 200, 1);
    const [test, testLabels] = await files('test', 300, 2);
    return { model, calib, calibLabels, test, testLabels };
  };

  it('prints the curve and the choice, and writes the model at the chosen sparsity', async () => {
    const f = await write();
    const out = path.join(dir, 'budget.onnx');
    const run = await cli(
      'prune',
      f.model,
      '--calib',
      f.calib,
      '--data',
      f.test,
      '--labels',
      f.testLabels,
      '--min-accuracy',
      '0.75',
      '--resolution',
      '0.02',
      '--quiet',
      '-o',
      out,
    );
    assert.equal(run.code, 0, run.stderr);
    const chosen = /chose sparsity ([\d.]+) \(([\d.]+), the next probed above/.exec(run.stdout);
    assert.ok(chosen, run.stdout);
    const curve = run.stdout.split('the curve, by sparsity:')[1];
    const rows = [...curve.matchAll(/^ {2}([\d.]+) +([\d.]+) +([\d.]+) {2}(yes|no)/gm)].map((m) => ({
      sparsity: Number(m[1]),
      accuracy: Number(m[3]),
      met: m[4] === 'yes',
    }));
    assert.ok(rows.length >= 3, curve);
    for (const row of rows) assert.equal(row.met, row.accuracy >= 0.75, `row ${JSON.stringify(row)}`);
    assert.ok(rows.find((r) => r.sparsity === Number(chosen[1]))?.met, 'the choice meets the budget');
    assert.equal(rows.find((r) => r.sparsity === Number(chosen[2]))?.met, false, 'the next one does not');
    assert.match(run.stdout, new RegExp(`pruned .* \\(${(100 * Number(chosen[1])).toFixed(1)} %\\)`));
  });

  it('infeasible, no held-out data, held-out = calibration, --sparsity with a budget: one line, exit 2', async () => {
    const f = await write();
    const out = path.join(dir, 'bad.onnx');
    const base = ['prune', f.model, '--calib', f.calib, '--quiet', '-o', out];
    const cases: [string[], RegExp][] = [
      [
        ['--data', f.test, '--labels', f.testLabels, '--min-accuracy', '1', '--resolution', '0.3'],
        /no sparsity meets the budget \(accuracy >= 1 \(--min-accuracy\)\)/,
      ],
      [['--min-accuracy', '0.9'], /give --data <inputs> --labels <targets>/],
      [['--data', f.calib, '--labels', f.calibLabels, '--min-accuracy', '0.9'], /other samples than --calib/],
      [
        ['--data', f.test, '--labels', f.testLabels, '--min-accuracy', '0.9', '--sparsity', '0.5'],
        /exclude each other/,
      ],
      [['--data', f.test, '--labels', f.testLabels], /add --max-loss-increase or --min-accuracy/],
    ];
    for (const [extra, message] of cases) {
      const run = await cli(...base, ...extra);
      assert.equal(run.code, 2, `${extra.join(' ')}: ${run.stderr}`);
      const lines = run.stderr.trim().split('\n');
      assert.match(lines.at(-1)!, message);
      assert.match(lines.at(-1)!, /^ecprune: /);
    }
  });
});
