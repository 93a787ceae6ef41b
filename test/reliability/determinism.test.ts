/**
 * Reproducible results: the same inputs and seed give byte-identical outputs; other batch sizes
 * and the other GEMM backend give the same scores up to float rounding (tolerances measured on a
 * trained MNIST network and recorded in docs/RELIABILITY.md).
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Dataset, firstSamples } from '../../src/data/dataset.js';
import { setDefaultGemm } from '../../src/gemm/default.js';
import { type Gemm, withoutGraphs } from '../../src/gemm/gemm.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import type { Mlp } from '../../src/model/mlp.js';
import { openNamedDataset } from '../../src/node/datasets.js';
import { createOrtGemm, lazyOrtGemm } from '../../src/node/ort-gemm.js';
import { prune } from '../../src/pipeline/prune.js';
import { type ScoreResult, score } from '../../src/pipeline/score.js';
import { trainModel } from '../../src/train/train.js';
import { cli, tempDir } from '../cli/run.js';
import { writeInputs } from './inputs.js';

const root = tempDir('ecprune-determinism-');
after(() => rmSync(root, { recursive: true, force: true }));
const inputs = writeInputs(path.join(root, 'inputs'));
let runs = 0;

/** Runs a command writing `-o <fresh file>`; returns the file's bytes. */
async function output(name: string, ...argv: string[]): Promise<Buffer> {
  const file = path.join(root, `${runs++}-${name}`);
  const run = await cli(...argv, '--quiet', '-o', file);
  assert.equal(run.code, 0, run.stderr);
  return readFileSync(file);
}

describe('the same inputs and seed give byte-identical outputs', () => {
  for (const backend of ['ts', 'onnxruntime'] as const) {
    it(`prune (ec, random) and score, ${backend} GEMM`, async () => {
      setDefaultGemm(backend === 'ts' ? tsGemm : lazyOrtGemm());
      try {
        const base = ['prune', inputs.model, '--calib', inputs.x, '--labels', inputs.y];
        assert.deepEqual(await output('a.onnx', ...base), await output('b.onnx', ...base));
        const gradmag = [...base, '--method', 'gradmag', '--scope', 'layer', '--sparsity', '0.5'];
        assert.deepEqual(await output('g1.onnx', ...gradmag), await output('g2.onnx', ...gradmag));
        const random = (seed: string) =>
          output(`r${seed}.onnx`, ...base, '--method', 'random', '--seed', seed);
        const [r3, r3again, r4] = [await random('3'), await random('3'), await random('4')];
        assert.deepEqual(r3, r3again);
        assert.notDeepEqual(r3, r4, 'another seed, another selection');
        const scores = ['score', inputs.model, '--calib', inputs.xy];
        assert.deepEqual(await output('s1.npz', ...scores), await output('s2.npz', ...scores));
      } finally {
        setDefaultGemm(tsGemm);
      }
    });
  }
});

/** max |a - b| / max |a|: rounding relative to the array's scale. */
function relativeToScale(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(a[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/** max over elements of |a - b| / max(|a|, 1e-3 max |a|): per element, but not for the tiniest. */
function relativePerElement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i]));
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), 1e-3 * scale, Number.MIN_VALUE));
  }
  return worst;
}

/** The tolerances of docs/RELIABILITY.md: 5-6x the largest difference measured. */
const TOLERANCE = { importance: 1e-5, importancePerElement: 5e-5, delta: 6e-6 };

function assertAgree(a: ScoreResult, b: ScoreResult, what: string): void {
  a.importance.forEach((importance, l) => {
    const scale = relativeToScale(importance, b.importance[l]);
    const element = relativePerElement(importance, b.importance[l]);
    const delta = relativeToScale(a.deltaBias![l], b.deltaBias![l]);
    assert.ok(
      scale <= TOLERANCE.importance,
      `${what}, layer ${l}: importance differs by ${scale} of its scale`,
    );
    assert.ok(
      element <= TOLERANCE.importancePerElement,
      `${what}, layer ${l}: importance differs by ${element} per element`,
    );
    assert.ok(delta <= TOLERANCE.delta, `${what}, layer ${l}: delta differs by ${delta} of its scale`);
  });
}

describe('other batch sizes and GEMM backends agree up to float rounding', () => {
  let model: Mlp;
  let calibration: Dataset;
  let ort: Gemm;
  before(async () => {
    // a real-ish network: 784-64-32-10 ReLU trained for one epoch on 4,000 MNIST digits
    const train = firstSamples(await openNamedDataset('mnist', 'train'), 4000);
    ({ model } = await trainModel(
      { sizes: [784, 64, 32, 10], activation: { kind: 'relu' }, seed: 1 },
      train,
      {
        epochs: 1,
        seed: 1,
        gemm: tsGemm,
      },
    ));
    calibration = firstSamples(await openNamedDataset('mnist', 'test'), 1000);
    ort = await createOrtGemm();
  });
  after(async () => ort?.dispose?.());

  const run = (batchSize: number, gemm: Gemm = tsGemm) =>
    score(model, calibration, { method: 'ec', batchSize, gemm, withDelta: true });

  it('batch 1 and 7 against batch 1000 (TS GEMM)', async () => {
    const reference = await run(1000);
    assertAgree(reference, await run(1), 'batch 1 vs 1000');
    assertAgree(reference, await run(7), 'batch 7 vs 1000');
  });

  it('onnxruntime (one graph per batch, and GEMM by GEMM) against the TS loop (batch 1000), and onnxruntime twice identical', async () => {
    const reference = await run(1000);
    assertAgree(reference, await run(1000, withoutGraphs(ort)), 'onnxruntime GEMM by GEMM vs TS');
    const fast = await run(1000, ort);
    assertAgree(reference, fast, 'onnxruntime graph vs TS');
    const again = await run(1000, ort);
    assert.deepEqual(again.importance, fast.importance);
    assert.deepEqual(again.deltaBias, fast.deltaBias);
  });

  it('the same weights are pruned at sparsity 0.9 whatever the batch size or backend', async () => {
    const reference = await prune(model, calibration, { sparsity: 0.9, batchSize: 1000, gemm: tsGemm });
    for (const [what, batchSize, gemm] of [
      ['batch 1', 1, tsGemm],
      ['onnxruntime', 1000, ort],
    ] as const) {
      const other = await prune(model, calibration, { sparsity: 0.9, batchSize, gemm });
      other.keepMasks.forEach((mask, l) => {
        assert.deepEqual(mask, reference.keepMasks[l], `${what}: layer ${l} mask`);
      });
      other.model.layers.forEach((layer, l) => {
        const bias = relativeToScale(reference.model.layers[l].bias, layer.bias);
        assert.ok(bias <= TOLERANCE.delta, `${what}: layer ${l} compensated bias differs by ${bias}`);
      });
    }
  });
});
