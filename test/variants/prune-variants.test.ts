import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cholesky,
  choleskyInverse,
  choleskySolve,
  outputError,
  refitBiases,
} from '../../src/compensate/refit.js';
import { createRandom } from '../../src/data/random.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import type { Mlp } from '../../src/model/mlp.js';
import { type PruneOptions, prune } from '../../src/pipeline/prune.js';
import type { MethodName } from '../../src/score/methods.js';
import { pruneCount } from '../../src/select/select.js';
import { assertSameModel, randomData, randomMlp } from './helpers.js';

const deep = randomMlp([6, 9, 8, 4], { kind: 'tanh' }, 21);
const data = randomData(40, 6, 22, 4);
const singleLayer = randomMlp([6, 5], { kind: 'relu' }, 23);
const base = { gemm: tsGemm, batchSize: 16 } as const;

async function assertSameAsPrune(mlp: Mlp, options: PruneOptions, label: string) {
  const { sequential: _s, steps: _k, refitBiases: _r, ...core } = options;
  // a variant named without a method is EC's: so is the plain prune it reduces to
  const expected = await prune(mlp, data, { ...base, method: 'ec', ...core });
  const actual = await prune(mlp, data, { ...base, ...options });
  assertSameModel(actual.model, expected.model, label);
  assert.deepEqual(actual.keepMasks, expected.keepMasks, `${label}: masks`);
  assert.deepEqual(actual.importance, expected.importance, `${label}: importance`);
}

describe('prune reduces to plain prune', () => {
  for (const method of [
    'ec',
    'ec-nocomp',
    'obd',
    'magnitude',
    'magnitude-comp',
    'gradmag',
    'random',
  ] as MethodName[]) {
    for (const scope of ['global', 'layer'] as const) {
      it(`with no variant: ${method} ${scope}, bit for bit`, () =>
        assertSameAsPrune(deep, { method, scope, sparsity: 0.6, seed: 4 }, method));
    }
  }
  it("steps = 1, refitBiases = 0, sensitivity 'output'", () =>
    assertSameAsPrune(
      deep,
      { method: 'ec', sparsity: 0.7, steps: 1, refitBiases: 0, sensitivity: 'output' },
      'explicit defaults',
    ));
  for (const scope of ['global', 'layer'] as const) {
    it(`sequential on a one-layer network (${scope})`, () =>
      assertSameAsPrune(singleLayer, { sparsity: 0.5, scope, sequential: true }, 'sequential'));
  }
});

describe('sequential', () => {
  it('compensates toward the dense outputs: the mean output error is 0 for every output', async () => {
    // the last layer is linear and its s_i = 1, so the s-weighted mean gap is the plain mean
    const mean = async (model: Mlp) => {
      const y = await forward(model, (await materialized()).x, tsGemm);
      const dense = await forward(deep, (await materialized()).x, tsGemm);
      return Array.from({ length: y.cols }, (_, k) => {
        let sum = 0;
        for (let n = 0; n < y.rows; n++) sum += y.data[n * y.cols + k] - dense.data[n * y.cols + k];
        return sum / y.rows;
      });
    };
    const oneShot = await prune(deep, data, { ...base, sparsity: 0.8 });
    const sequential = await prune(deep, data, { ...base, sparsity: 0.8, sequential: true });
    const [biasOneShot, biasSequential] = [await mean(oneShot.model), await mean(sequential.model)];
    console.log(
      `  mean output error, one-shot EC [${biasOneShot.map((v) => v.toFixed(4))}], sequential [${biasSequential.map((v) => v.toExponential(1))}]`,
    );
    for (const v of biasSequential) assert.ok(Math.abs(v) < 1e-5, `mean error ${v}`);
    assert.ok(
      Math.max(...biasOneShot.map(Math.abs)) > 1e-3,
      'one-shot EC leaves an upstream mean error (else the test proves nothing)',
    );
    assert.equal(countPruned(sequential.model), pruneCount(0.8, 6 * 9 + 9 * 8 + 8 * 4));
  });
});

describe('steps', () => {
  for (const scope of ['global', 'layer'] as const) {
    it(`reach the exact count, pruned weights are exactly 0 (${scope})`, async () => {
      const result = await prune(deep, data, { ...base, sparsity: 0.75, steps: 3, scope });
      result.keepMasks.forEach((keep, l) => {
        const weights = result.model.layers[l].weight.data;
        keep.forEach((k, p) => {
          assert.ok(k === 1 || weights[p] === 0);
        });
        if (scope === 'layer')
          assert.equal(keep.length - keep.reduce((a, b) => a + b, 0), pruneCount(0.75, keep.length));
      });
      const total = deep.layers.reduce((sum, layer) => sum + layer.weight.data.length, 0);
      const pruned = result.keepMasks.reduce(
        (sum, keep) => sum + keep.length - keep.reduce((a, b) => a + b, 0),
        0,
      );
      assert.equal(pruned, pruneCount(0.75, total));
    });
  }
});

describe('bias refit', () => {
  it('never increases the calibration output error (several seeds and sparsities)', async () => {
    for (let seed = 0; seed < 5; seed++) {
      const mlp = randomMlp([5, 10, 7, 3], { kind: seed % 2 ? 'tanh' : 'relu' }, 100 + seed);
      const calibration = randomData(50, 5, 200 + seed, 3);
      const sparsity = [0.5, 0.8, 0.9, 0.95, 0.7][seed];
      const plain = await prune(mlp, calibration, {
        ...base,
        sparsity,
        method: seed === 4 ? 'magnitude' : 'ec',
      });
      const refit = await refitBiases(plain.model, mlp, calibration, { iterations: 4, ...base });
      const before = await outputError(plain.model, mlp, calibration, base);
      const after = await outputError(refit.model, mlp, calibration, base);
      console.log(
        `  seed ${seed} sparsity ${sparsity}: output error ${before.toExponential(3)} → ${after.toExponential(3)} (${refit.acceptedSteps} steps)`,
      );
      assert.equal(refit.errorBefore, before);
      assert.equal(refit.errorAfter, after);
      assert.ok(after <= before);
      for (let k = 1; k < refit.history.length; k++) assert.ok(refit.history[k] <= refit.history[k - 1]);
      refit.model.layers.forEach((layer, l) => {
        assert.deepEqual(layer.weight, plain.model.layers[l].weight, 'weights untouched');
      });
    }
  });

  it('on a linear network reaches the least-squares biases (no bias move lowers the error)', async () => {
    const linear = randomMlp([5, 6, 3], { kind: 'identity' }, 31);
    const calibration = randomData(30, 5, 32);
    const plain = await prune(linear, calibration, { ...base, sparsity: 0.6, method: 'magnitude' });
    const refit = await refitBiases(plain.model, linear, calibration, { iterations: 3, ...base });
    const refitModel = refit.model as Mlp;
    assert.ok(refit.errorAfter < 0.999 * refit.errorBefore);
    const random = createRandom(5);
    for (let trial = 0; trial < 10; trial++) {
      const moved: Mlp = {
        layers: refitModel.layers.map((layer) => ({
          ...layer,
          bias: layer.bias.map((b) => b + 1e-2 * random.normal()),
        })),
      };
      assert.ok((await outputError(moved, linear, calibration, base)) >= refit.errorAfter * (1 - 1e-6));
    }
  });

  it('through prune: refit result reported, error not above plain EC', async () => {
    const plain = await prune(deep, data, { ...base, method: 'ec', sparsity: 0.85 });
    const refit = await prune(deep, data, { ...base, sparsity: 0.85, refitBiases: 3 });
    assert.deepEqual(refit.keepMasks, plain.keepMasks);
    assert.equal(refit.refit!.errorBefore, await outputError(plain.model, deep, data, base));
    assert.ok(refit.refit!.errorAfter <= refit.refit!.errorBefore);
  });

  it('dense Cholesky solves and inverts a random SPD system', () => {
    const n = 12;
    const random = createRandom(9);
    const m = Array.from({ length: n * n }, () => random.normal());
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++)
        for (let k = 0; k < n; k++)
          a[i * n + j] += m[i * n + k] * m[j * n + k] + (i === j && k === 0 ? 0.1 : 0);
    const b = Array.from({ length: n }, () => random.normal());
    const factor = cholesky(a, n)!;
    const x = choleskySolve(factor, n, b);
    const inverse = choleskyInverse(factor, n);
    for (let i = 0; i < n; i++) {
      let ax = 0;
      for (let j = 0; j < n; j++) ax += a[i * n + j] * x[j];
      assert.ok(Math.abs(ax - b[i]) < 1e-9, `row ${i}: ${ax} vs ${b[i]}`);
      for (let j = 0; j < n; j++) {
        let product = 0;
        for (let k = 0; k < n; k++) product += a[i * n + k] * inverse[k * n + j];
        assert.ok(Math.abs(product - (i === j ? 1 : 0)) < 1e-9);
      }
    }
    assert.equal(cholesky(Float64Array.from([1, 2, 2, 1]), 2), undefined, 'indefinite');
  });
});

let cached: { x: import('../../src/model/matrix.js').Matrix } | undefined;
async function materialized() {
  if (cached) return cached;
  const { materialize } = await import('../../src/data/dataset.js');
  cached = await materialize(data);
  return cached;
}

function countPruned(model: Mlp): number {
  return model.layers.reduce((sum, layer) => sum + layer.weight.data.filter((w) => w === 0).length, 0);
}
