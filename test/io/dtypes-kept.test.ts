/**
 * Issue #11, "dtypes kept": a float64 model keeps float64 precision through read → prune → write
 * (weights ecprune does not change are written bit for bit, pruned ones are exactly 0, a compensated
 * bias is the original float64 bias plus the float64 shifts), and float16 values read into float32
 * are written back exactly. The values are read back by the real producers' libraries (onnx,
 * torch, NumPy in Debian's Python), independently of ecprune's readers.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { inMemoryDataset } from '../../src/data/dataset.js';
import type { Model } from '../../src/graph/graph.js';
import { openDataFile } from '../../src/node/datasets.js';
import { type LoadedModel, loadModel, saveModel } from '../../src/node/models.js';
import { type PruneResult, prune } from '../../src/pipeline/prune.js';
import { finetune } from '../../src/train/train.js';
import { PYTHON, pythonMissing } from '../helpers/python.js';
import { calibrationRows, ZOO } from '../helpers/zoo.js';

const { onnx } = onnxProto;
const work = mkdtempSync(path.join(tmpdir(), 'ecprune-dtypes-'));
after(() => rmSync(work, { recursive: true, force: true }));

const FLOAT64_ONNX = path.join(ZOO, 'float64', 'model.onnx');
const FLOAT16_ONNX = path.join(ZOO, 'float16', 'model.onnx');

/** Each initializer's serialized TensorProto (name, dims, type and raw bytes), by name. */
function initializerBytes(file: string): Map<string, string> {
  const graph = onnx.ModelProto.decode(readFileSync(file)).graph!;
  return new Map(
    (graph.initializer ?? []).map((t) => [
      t.name ?? '',
      Buffer.from(onnx.TensorProto.encode(t).finish()).toString('hex'),
    ]),
  );
}

interface StoredTensor {
  readonly dtype: string;
  readonly shape: number[];
  /** the stored values, exactly (float64 and narrower types are exact in a JS number) */
  readonly values: number[];
}

/** The tensors of a model file as its producer's library reads them: onnx, torch or NumPy. */
function storedTensors(file: string): Map<string, StoredTensor> {
  const script = `
import json, struct, sys
import numpy as np
file = sys.argv[1]
out = {}
def put(name, array, dtype):
    out[name] = {'dtype': dtype, 'shape': list(array.shape), 'values': np.asarray(array, dtype=np.float64).ravel().tolist()}
if file.endswith('.onnx'):
    import onnx
    from onnx import numpy_helper
    for t in onnx.load(file).graph.initializer:
        a = numpy_helper.to_array(t)
        put(t.name, a, str(a.dtype))
elif file.endswith('.pt'):
    import torch
    for name, t in torch.load(file).items():
        put(name, t.double().numpy(), str(t.dtype).replace('torch.', ''))
elif file.endswith('.npz'):
    d = np.load(file)
    for name in d.files:
        if name != 'arch':
            put(name, d[name], str(d[name].dtype))
else:
    raw = open(file, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    kinds = {'F32': '<f4', 'F64': '<f8'}
    for name, v in json.loads(raw[8:8 + n]).items():
        if name != '__metadata__':
            a = np.frombuffer(raw[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], kinds[v['dtype']]).reshape(v['shape'])
            put(name, a, str(a.dtype))
print(json.dumps(out))
`;
  const parsed = JSON.parse(
    execFileSync(PYTHON, ['-c', script, file], { encoding: 'utf8', maxBuffer: 1 << 26 }),
  );
  return new Map(Object.entries(parsed as Record<string, StoredTensor>));
}

/** Float64 bits, so that -0 and 0 differ and equality is bit for bit. */
const bitsOf = (values: readonly number[]) =>
  Buffer.from(Float64Array.from(values).buffer).toString('hex').match(/.{16}/g) ?? [];

/**
 * The written weights and biases of every layer against the original ones and the pruning result:
 * kept weights bit for bit, pruned ones 0, each bias the original plus the summed shifts of its
 * pruned weights, in float64 (the order applyPruning sums them in: j ascending, then added once).
 */
function assertPrunedExactly(
  original: Map<string, StoredTensor>,
  written: Map<string, StoredTensor>,
  layerKeys: readonly { weight: string; bias: string }[],
  result: PruneResult,
): void {
  assert.ok(result.deltaBias !== undefined, 'EC gives the bias shifts');
  layerKeys.forEach(({ weight, bias }, l) => {
    const [w0, w1, b0, b1] = [
      original.get(weight)!,
      written.get(weight)!,
      original.get(bias)!,
      written.get(bias)!,
    ];
    for (const t of [w1, b1]) assert.equal(t.dtype, 'float64', `${weight}: written as float64`);
    const [rows, cols] = w0.shape;
    assert.deepEqual(w1.shape, [rows, cols], `${weight}: shape`);
    const keep = result.keepMasks[l];
    const delta = result.deltaBias![l];
    const expectedWeight = w0.values.map((w, k) => (keep[k] ? w : 0));
    assert.deepEqual(bitsOf(w1.values), bitsOf(expectedWeight), `${weight}: kept bit for bit, pruned 0`);
    const expectedBias = b0.values.map((b, i) => {
      let shift = 0;
      for (let j = 0; j < cols; j++) if (!keep[i * cols + j]) shift += delta[i * cols + j];
      return b + shift;
    });
    assert.deepEqual(bitsOf(b1.values), bitsOf(expectedBias), `${bias}: original + Σ deltaBias in float64`);
    // the shifts are not all lost in rounding: the test would not tell float64 from float32 otherwise
    const roundedThroughFloat32 = b0.values.map((b, i) =>
      Math.fround(Math.fround(b) + (expectedBias[i] - b)),
    );
    assert.notDeepEqual(bitsOf(b1.values), bitsOf(roundedThroughFloat32), `${bias}: not rounded to float32`);
  });
}

/** `file` read and written back unchanged: every initializer byte-identical to the original's. */
async function assertRoundTripExact(file: string, out: string): Promise<void> {
  const model = await loadModel(file);
  await saveModel(out, model.graph, { like: model });
  const [original, written] = [initializerBytes(file), initializerBytes(out)];
  assert.deepEqual([...written.keys()], [...original.keys()]);
  for (const [name, bytes] of original) assert.equal(written.get(name), bytes, `initializer '${name}'`);
}

async function prunedHalf(model: LoadedModel, calib: string): Promise<PruneResult & { model: Model }> {
  return prune(model.graph, await openDataFile(calib), { method: 'ec', sparsity: 0.5 });
}

describe('a float64 ONNX model keeps its precision', () => {
  it('read and written back without pruning: every initializer is byte-identical', () =>
    assertRoundTripExact(FLOAT64_ONNX, path.join(work, 'float64-unpruned.onnx')));

  it('pruned to 50 % with EC: survivors bit for bit, zeros, float64 compensated biases; onnxruntime runs it in float64', async (t) => {
    const missing = pythonMissing('onnx', 'numpy');
    if (missing) return t.skip(missing);
    const model = await loadModel(FLOAT64_ONNX);
    const result = await prunedHalf(model, path.join(ZOO, 'float64', 'calib.npy'));
    const out = path.join(work, 'float64-pruned.onnx');
    await saveModel(out, result.model, { like: model });
    const keys = ['0', '2', '4'].map((m) => ({ weight: `${m}.weight`, bias: `${m}.bias` }));
    assertPrunedExactly(storedTensors(FLOAT64_ONNX), storedTensors(out), keys, result);

    const session = await ort.InferenceSession.create(out);
    try {
      const input = new ort.Tensor(
        'float64',
        Float64Array.from([0.5, -1, 0.25, 2, -0.75, 1, 0, -2, 0.125, 1.5]),
        [1, 10],
      );
      const output = (await session.run({ [session.inputNames[0]]: input }))[session.outputNames[0]];
      assert.equal(output.type, 'float64');
      assert.deepEqual(output.dims, [1, 4]);
      assert.ok([...(output.data as Float64Array)].every(Number.isFinite), 'finite outputs');
    } finally {
      await session.release();
    }
  });
});

describe('neuron removal on a float64 model', () => {
  it('keeps the surviving rows of a hidden layer bit for bit, in float64', async (t) => {
    const missing = pythonMissing('onnx', 'numpy');
    if (missing) return t.skip(missing);
    const model = await loadModel(FLOAT64_ONNX);
    const calibration = await openDataFile(path.join(ZOO, 'float64', 'calib.npy'));
    const result = await prune(model.graph, calibration, {
      method: 'ec',
      structure: 'neuron',
      sparsity: 0.5,
    });
    const out = path.join(work, 'float64-neurons.onnx');
    await saveModel(out, result.model, { like: model });
    const [original, written] = [storedTensors(FLOAT64_ONNX), storedTensors(out)];
    const first = result.neurons!.layers.indexOf(0);
    assert.ok(first >= 0, 'the first hidden layer can lose units');
    const keep = result.neurons!.keep[first];
    const [rows, cols] = original.get('0.weight')!.shape;
    const keptRows = [...keep.keys()].filter((i) => keep[i]);
    assert.ok(keptRows.length < rows, 'some units were removed');
    const expected = keptRows.flatMap((i) =>
      original.get('0.weight')!.values.slice(i * cols, (i + 1) * cols),
    );
    const w = written.get('0.weight')!;
    assert.equal(w.dtype, 'float64', 'written as float64');
    assert.deepEqual(bitsOf(w.values), bitsOf(expected), 'kept rows bit for bit');
  });
});

describe('fine-tuning a float64 model', () => {
  it('steps the weights in float64: a weight whose gradient is always 0 keeps its value bit for bit', async () => {
    const model = await loadModel(FLOAT64_ONNX);
    const { rows, cols, data } = calibrationRows('float64');
    // input feature 0 is always 0: the first layer's column 0 gets no gradient, every other weight does
    const x = Float32Array.from(data, (v, k) => (k % cols === 0 ? 0 : v));
    const labels = Int32Array.from({ length: rows }, (_, n) => n % 4);
    const train = inMemoryDataset({ rows, cols, data: x }, { kind: 'classes', values: labels });
    const { model: tuned } = await finetune(model.graph, train, { epochs: 2, batchSize: 16, seed: 1 });
    const [before, after] = [model.graph.layers[0].weight, tuned.layers[0].weight];
    assert.ok(after.data instanceof Float64Array, 'the tuned weights are float64');
    let changed = 0;
    for (let i = 0; i < before.rows; i++) {
      for (let j = 0; j < before.cols; j++) {
        const [w0, w1] = [before.data[i * cols + j], after.data[i * cols + j]];
        if (j === 0) assert.ok(Object.is(w0, w1), `weight (${i}, 0): ${w1} kept as ${w0}`);
        else if (w0 !== w1) changed++;
      }
    }
    assert.ok(changed > 0, 'the other weights were trained');
  });
});

describe('a float64 PyTorch checkpoint keeps its precision', () => {
  const keys = ['0', '2'].map((m) => ({ weight: `${m}.weight`, bias: `${m}.bias` }));
  const FLOAT64_PT = path.join(work, 'float64.pt');
  const CALIB = path.join(work, 'float64-calib.npy');
  const ARCH = '5,7,3:tanh,identity';
  // a checkpoint with values float32 cannot hold (the committed torch fixtures' float64 model
  // was converted from float32), saved by torch itself
  before(() => {
    if (pythonMissing('torch', 'numpy')) return;
    const make = `
import sys, numpy as np, torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.randn(p.shape, dtype=torch.float64) * 0.5)
torch.save(model.state_dict(), sys.argv[1])
np.save(sys.argv[2], np.random.default_rng(0).standard_normal((64, 5)).astype(np.float32))
`;
    execFileSync(PYTHON, ['-c', make, FLOAT64_PT, CALIB]);
  });

  it('read and written back without pruning: torch.equal on every tensor, float64', async (t) => {
    const missing = pythonMissing('torch');
    if (missing) return t.skip(missing);
    const model = await loadModel(FLOAT64_PT, { arch: ARCH });
    const out = path.join(work, 'float64-unpruned.pt');
    await saveModel(out, model.graph, { like: model });
    const check = `
import sys, torch
a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
assert list(a) == list(b), (list(a), list(b))
for k in a:
    assert b[k].dtype == torch.float64 and torch.equal(a[k], b[k]), k
print('equal')
`;
    assert.equal(execFileSync(PYTHON, ['-c', check, FLOAT64_PT, out], { encoding: 'utf8' }).trim(), 'equal');
  });

  it('pruned to 50 % with EC, written as .pt, .safetensors and .npz: exact float64 values in each', async (t) => {
    const missing = pythonMissing('torch', 'numpy');
    if (missing) return t.skip(missing);
    const model = await loadModel(FLOAT64_PT, { arch: ARCH });
    const result = await prunedHalf(model, CALIB);
    const original = storedTensors(FLOAT64_PT);
    for (const extension of ['pt', 'safetensors']) {
      const out = path.join(work, `float64-pruned.${extension}`);
      await saveModel(out, result.model, { like: model });
      assertPrunedExactly(original, storedTensors(out), keys, result);
    }
    const npz = path.join(work, 'float64-pruned.npz');
    await saveModel(npz, result.model, { like: model });
    const npzKeys = [0, 1].map((l) => ({ weight: `W${l}`, bias: `b${l}` }));
    const renamed = new Map(
      keys.flatMap(({ weight, bias }, l) => [
        [`W${l}`, original.get(weight)!],
        [`b${l}`, original.get(bias)!],
      ]),
    );
    assertPrunedExactly(renamed, storedTensors(npz), npzKeys, result);
  });
});

describe('a float16 ONNX model', () => {
  it('read (into float32, exactly) and written back: every initializer is byte-identical', () =>
    assertRoundTripExact(FLOAT16_ONNX, path.join(work, 'float16-unpruned.onnx')));

  it('pruned to 50 %: the kept float16 weights are written back bit for bit', async () => {
    const model = await loadModel(FLOAT16_ONNX);
    const result = await prunedHalf(model, path.join(ZOO, 'float16', 'calib.npy'));
    const out = path.join(work, 'float16-pruned.onnx');
    await saveModel(out, result.model, { like: model });
    const halves = (file: string) =>
      new Map(
        onnx.ModelProto.decode(readFileSync(file)).graph!.initializer!.map((t) => {
          assert.equal(t.dataType, onnx.TensorProto.DataType.FLOAT16, `${t.name}: float16`);
          const raw = t.rawData!;
          return [
            t.name ?? '',
            new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)),
          ];
        }),
      );
    const [original, written] = [halves(FLOAT16_ONNX), halves(out)];
    ['0', '2', '4'].forEach((m, l) => {
      const [before, now] = [original.get(`${m}.weight`)!, written.get(`${m}.weight`)!];
      const keep = result.keepMasks[l];
      const expected = before.map((bits, k) => (keep[k] ? bits : 0));
      assert.deepEqual([...now], [...expected], `${m}.weight: kept bits unchanged, pruned 0`);
    });
  });
});
