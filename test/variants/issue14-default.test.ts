import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { openNamedDataset } from '../../src/node/datasets.js';
import { loadModel } from '../../src/node/models.js';
import { DEFAULT_RECIPE } from '../../src/pipeline/prune.js';
import { formatVariant } from '../../src/pipeline/variant-name.js';
import { evaluate } from '../../src/train/evaluate.js';
import { cli, FIXTURES, tempDir } from '../cli/run.js';

/**
 * Issue #14's model (test/fixtures/issue14/make_model.py: PyTorch 784-256-128-10 ReLU, Adam, 4
 * epochs on mnist's 8,000 training digits, torch.onnx.export), pruned by `prune --sparsity S` with
 * no method flags and 1,000 calibration samples, measured on the 2,000 held-out digits against
 * `--method magnitude`: the default must have the lower cross-entropy and lose at most 2 points.
 */
const MODEL = path.join(FIXTURES, 'issue14', 'mnist-784-256-128-10.onnx');

async function pruneAndMeasure(sparsity: number, ...method: string[]) {
  const out = path.join(tempDir(), 'pruned.onnx');
  const argv = ['prune', MODEL, '--dataset', 'mnist', '--calib-samples', '1000'];
  const run = await cli(...argv, '--sparsity', String(sparsity), ...method, '--quiet', '-o', out);
  assert.equal(run.code, 0, run.stderr);
  const measured = await evaluate((await loadModel(out)).graph, await openNamedDataset('mnist', 'test'));
  return { ...measured, summary: run.stdout };
}

describe("issue #14: the default beats magnitude on the issue's model", () => {
  for (const sparsity of [0.8, 0.9]) {
    it(`${100 * sparsity} %: lower held-out cross-entropy, accuracy within 2 points`, async () => {
      const recipe = await pruneAndMeasure(sparsity);
      const magnitude = await pruneAndMeasure(sparsity, '--method', 'magnitude');
      const report = `default ${recipe.meanLoss} / ${recipe.accuracy}, magnitude ${magnitude.meanLoss} / ${magnitude.accuracy}`;
      assert.ok(recipe.summary.startsWith(`${formatVariant(DEFAULT_RECIPE)}, global scope`), recipe.summary);
      assert.ok(recipe.meanLoss! < magnitude.meanLoss!, `cross-entropy: ${report}`);
      assert.ok(recipe.accuracy! >= magnitude.accuracy! - 0.02, `accuracy: ${report}`);
    });
  }
});
