/**
 * PyTorch checkpoints against files written and read by real torch (1.13, Debian's python3-torch):
 * test/fixtures/torch/make_torch_fixtures.py wrote the .pt files and the outputs of each model, and
 * loaded the checkpoints ecprune pruned (<name>.pruned.pt) into the original modules with
 * load_state_dict(strict=True), saving their outputs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { readNpy } from '../../src/io/npy.js';
import { writeNpz } from '../../src/io/npz.js';
import { readTorch, writeTorch } from '../../src/io/torch.js';
import { matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import { openDataFile } from '../../src/node/datasets.js';
import { loadModel, saveModel, sniffFormat } from '../../src/node/models.js';
import { prune } from '../../src/pipeline/prune.js';
import { pruneMetadata } from '../../src/pipeline/variant-name.js';
import { evaluate } from '../../src/train/evaluate.js';
import { cli } from '../cli/run.js';
import { failsWith } from '../helpers/errors.js';

const FIXTURES = new URL('../fixtures/torch/', import.meta.url).pathname;
const fixture = (name: string) => path.join(FIXTURES, name);
const tmp = mkdtempSync(path.join(tmpdir(), 'ecprune-torch-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const MODELS = [
  {
    name: 'relu_f32',
    arch: 'relu',
    dtype: 'float32',
    keys: ['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias'],
  },
  { name: 'tanh_f16', arch: 'tanh', dtype: 'float16', keys: ['0.weight', '0.bias', '2.weight'] },
  {
    name: 'prefixed_bf16',
    arch: 'relu',
    dtype: 'bfloat16',
    keys: ['layers.0.weight', 'layers.0.bias', 'layers.2.weight', 'layers.2.bias'],
  },
  {
    name: 'sigmoid_f64',
    arch: 'sigmoid/sigmoid',
    dtype: 'float64',
    keys: ['0.weight', '0.bias', '2.weight', '2.bias'],
  },
] as const;

/** The model's outputs on the fixture's input batch. */
async function outputsOn(mlp: Mlp, name: string): Promise<Float32Array> {
  const input = readNpy(readFileSync(fixture(`${name}.input.npy`)));
  const rows = input.shape[0];
  return (await forward(mlp, matrix(rows, input.data.length / rows, Float32Array.from(input.data)), tsGemm))
    .data;
}

function assertClose(actual: Float32Array, expected: ArrayLike<number>, what: string, tol = 1e-5): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    assert.ok(error <= tol * (1 + Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

describe('reading torch.save state_dicts', () => {
  for (const { name, arch, dtype, keys } of MODELS) {
    // relu_f32's first weight is a transposed view, stored with strides (1, 8)
    it(`${name}: keys, dtype and torch's outputs`, async () => {
      const model = await loadModel(fixture(`${name}.pt`), { arch });
      assert.equal(model.format, 'pytorch');
      assert.deepEqual([...model.pytorch!.dtypes.keys()], keys);
      assert.ok([...model.pytorch!.dtypes.values()].every((d) => d === dtype));
      const expected = readNpy(readFileSync(fixture(`${name}.output.npy`))).data;
      assertClose(await outputsOn(model.mlp!, name), expected, name);
    });
  }

  it('refuses a pickle that would run a command, naming what it imports; runs nothing', () => {
    assert.throws(
      () => readTorch(readFileSync(fixture('malicious.pt')), 'malicious.pt'),
      failsWith('unsupported', 'malicious.pt', 'imports posix\\.system.*nothing in the file is run'),
    );
  });

  it('refuses the legacy (torch < 1.6) format with what to do', () => {
    assert.throws(
      () => readTorch(readFileSync(fixture('legacy.pt')), 'legacy.pt'),
      failsWith('unsupported', 'legacy.pt', 'torch 1.6 or later'),
    );
  });

  it('tells a checkpoint from an .npz (both are zips)', () => {
    assert.equal(sniffFormat(readFileSync(fixture('relu_f32.pt'))), 'pytorch');
    const npz = writeNpz({ W0: { shape: [1, 1], data: new Float32Array([1]) } }, false);
    assert.equal(sniffFormat(npz), 'npz');
  });
});

describe('writing', () => {
  it('keeps float16, bfloat16 and float64 values bit for bit (the values torch stored)', () => {
    for (const { name } of MODELS) {
      const { tensors } = readTorch(readFileSync(fixture(`${name}.pt`)));
      const again = readTorch(writeTorch(tensors)).tensors;
      assert.deepEqual([...again.keys()], [...tensors.keys()]);
      for (const [key, tensor] of tensors) assert.deepEqual(again.get(key), tensor, `${name} ${key}`);
    }
  });

  it('rounds to float16 and bfloat16 to nearest, ties to even, as torch does', () => {
    // 1 + 2^-11 lies halfway between float16 1 and 1 + 2^-10; 1 + 3 * 2^-11 between 1 + 2^-10 and 1 + 2^-9
    const values = new Float32Array([
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      65520,
      2 ** -25,
      1 + 2 ** -8,
      1 + 3 * 2 ** -8,
    ]);
    const read = (dtype: 'float16' | 'bfloat16') =>
      readTorch(writeTorch(new Map([['t', { shape: [6], data: values, dtype }]]))).tensors.get('t')!.data;
    assert.deepEqual([...read('float16').slice(0, 4)], [1, 1 + 2 ** -9, Number.POSITIVE_INFINITY, 0]);
    assert.deepEqual([...read('bfloat16').slice(4)], [1, 1 + 2 ** -6]);
  });

  for (const { name, arch } of MODELS.filter((m) => m.name === 'relu_f32' || m.name === 'prefixed_bf16')) {
    it(`${name}: the pruned checkpoint matches the one torch loaded into the original module`, async () => {
      const out = path.join(tmp, `${name}.pruned.pt`);
      const run = await cli(
        'prune',
        fixture(`${name}.pt`),
        '--arch',
        arch,
        '--calib',
        fixture(`${name}.input.npy`),
        '--sparsity',
        '0.5',
        '--method',
        'ec',
        '-o',
        out,
        '--quiet',
      );
      assert.equal(run.code, 0, run.stderr);
      const ours = await loadModel(out);
      const original = await loadModel(fixture(`${name}.pt`), { arch });
      assert.deepEqual(ours.pytorch!.dtypes, original.pytorch!.dtypes);
      assert.equal(ours.pytorch!.metadata.ecprune_method, 'ec');
      // what torch computed with the checkpoint ecprune wrote when the fixtures were made
      const torchOutputs = readNpy(readFileSync(fixture(`${name}.pruned.output.npy`))).data;
      assertClose(await outputsOn(ours.mlp!, name), torchOutputs, name);
      const committed = await loadModel(fixture(`${name}.pruned.pt`));
      for (const [l, layer] of ours.mlp!.layers.entries()) {
        const mask = (data: Float32Array | Float64Array) => Array.from(data, (w) => +(w !== 0));
        assert.deepEqual(
          mask(layer.weight.data),
          mask(committed.mlp!.layers[l].weight.data),
          `layer ${l} mask`,
        );
      }
    });
  }

  it('the library writes the metadata the CLI writes (pruneMetadata), and evaluate shows only what applies', async () => {
    const file = fixture('relu_f32.pt');
    const calib = fixture('relu_f32.input.npy');
    const viaCli = path.join(tmp, 'cli.pt');
    assert.equal(
      (
        await cli(
          'prune',
          file,
          '--arch',
          'relu',
          '--calib',
          calib,
          '--sparsity',
          '0.5',
          '-o',
          viaCli,
          '--quiet',
        )
      ).code,
      0,
    );
    const model = await loadModel(file, { arch: 'relu' });
    const calibration = await openDataFile(calib);
    // no method: the default recipe, named the same way by both (ec+loss+steps5+alpha)
    const result = await prune(model.mlp!, calibration, { sparsity: 0.5 });
    const viaLibrary = path.join(tmp, 'library.pt');
    await saveModel(viaLibrary, result.model, { like: model, metadata: pruneMetadata(result, calibration) });
    assert.deepEqual(
      (await loadModel(viaLibrary)).pytorch!.metadata,
      (await loadModel(viaCli)).pytorch!.metadata,
    );
    assert.deepEqual(Object.keys(await evaluate(result.model, calibration)), ['samples']);
  });

  it('saveModel writes the pruned model under the names and dtypes it was read with', async () => {
    const model = await loadModel(fixture('tanh_f16.pt'), { arch: 'tanh' });
    const out = path.join(tmp, 'same.pt');
    await saveModel(out, model.mlp!, { like: model, metadata: { origin: 'test' } });
    const again = await loadModel(out);
    assert.deepEqual(again.pytorch!.dtypes, model.pytorch!.dtypes);
    assert.equal(again.pytorch!.metadata.origin, 'test');
    for (const [l, layer] of again.mlp!.layers.entries()) assert.deepEqual(layer, model.mlp!.layers[l]);
  });
});
