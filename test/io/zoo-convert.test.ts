/**
 * `ecprune convert` on the producer zoo (issue #11: "convert between formats that can express the
 * graph; a clear error otherwise"), table-driven on a few fixtures per construct. Each output format
 * either holds the model, and the real consumer runs the written file with the producer's outputs
 * (onnxruntime-node for .onnx, tfjs-layers' loadLayersModel for model.json, Debian's torch.load and
 * NumPy for .pt and .npz), or refuses in one line naming the file, the format and what to write
 * instead, and writes nothing. Debian has no Python safetensors package: a written .safetensors is
 * read back by NumPy from its documented layout (8-byte header length, JSON header, raw data).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cli } from '../cli/run.js';
import { consumerOutputs } from '../helpers/consumers.js';
import { PYTHON, pythonMissing } from '../helpers/python.js';
import {
  assertClose,
  calibrationRows,
  expectedOutputs,
  type Fixture,
  manifest,
  ZOO,
} from '../helpers/zoo.js';

const work = mkdtempSync(path.join(tmpdir(), 'ecprune-zoo-convert-'));
after(() => rmSync(work, { recursive: true, force: true }));

type Extension = 'onnx' | 'json' | 'pt' | 'safetensors' | 'npz';
const ALL: readonly Extension[] = ['onnx', 'json', 'pt', 'safetensors', 'npz'];

interface Case {
  readonly name: string;
  readonly construct: string;
  /** the formats that hold the model; every other one must refuse */
  readonly writes: readonly Extension[];
  /** a chain's activations as NumPy computes them, for the weight-only formats */
  readonly activations?: readonly string[];
}

const CASES: readonly Case[] = [
  { name: 'mlp_opset13', construct: 'a chain', writes: ALL, activations: ['relu', 'relu', 'identity'] },
  {
    name: 'linear_nobias_last',
    construct: 'a chain whose last Linear has no bias',
    writes: ALL,
    activations: ['relu', 'relu', 'identity'],
  },
  {
    name: 'float64',
    construct: 'a float64 chain',
    writes: ALL,
    activations: ['tanh', 'relu', 'identity'],
  },
  { name: 'tfjs_flatten', construct: 'a TF.js chain', writes: ALL, activations: ['relu', 'identity'] },
  { name: 'residual', construct: 'a residual graph with LayerNorm', writes: ['onnx', 'json'] },
  { name: 'batchnorm', construct: 'BatchNorm after a Linear', writes: ['onnx', 'json'] },
  { name: 'softmax_head', construct: 'a Softmax head', writes: ['onnx', 'json'] },
  { name: 'arith_consts', construct: 'a square root, which no Keras layer computes', writes: ['onnx'] },
  { name: 'cnn_head', construct: 'a frozen convolutional prefix', writes: ['onnx'] },
  { name: 'tfjs_concat', construct: 'a TF.js functional graph', writes: ['onnx', 'json'] },
  { name: 'tfjs_batchnorm_swish', construct: 'TF.js BatchNormalization', writes: ['onnx', 'json'] },
];

const fixtureOf = (name: string): Fixture => manifest.fixtures.find((f) => f.name === name)!;
const modelFile = (fixture: Fixture) => path.join(ZOO, fixture.file);

/** The written file's outputs on the calibration inputs, as its real consumer computes them. */
function weightOnlyOutputs(file: string, fixture: Fixture, activations: readonly string[]): number[] {
  const script = `
import json, struct, sys, numpy as np
file, calib, activations = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if file.endswith('.pt'):
    import torch
    tensors = [t.double().numpy() for t in torch.load(file).values()]
elif file.endswith('.npz'):
    d = np.load(file)
    tensors = [d[k].astype(np.float64) for k in d.files if k != 'arch']
else:
    raw = open(file, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    kinds = {'F32': '<f4', 'F64': '<f8', 'F16': '<f2'}
    tensors = [np.frombuffer(raw[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], kinds[v['dtype']]).reshape(v['shape']).astype(np.float64)
               for k, v in header.items() if k != '__metadata__']
a = np.load(calib).astype(np.float64).reshape(-1, tensors[0].shape[1])
f = {'relu': lambda v: np.maximum(v, 0), 'tanh': np.tanh, 'identity': lambda v: v}
for l, kind in enumerate(activations):
    a = f[kind](a @ tensors[2 * l].T + tensors[2 * l + 1])
print(json.dumps(a.ravel().tolist()))
`;
  const calib = path.join(ZOO, fixture.name, 'calib.npy');
  return JSON.parse(
    execFileSync(PYTHON, ['-c', script, file, calib, JSON.stringify(activations)], { encoding: 'utf8' }),
  );
}

describe('convert on the producer zoo: what each format can hold, checked by its real consumer', () => {
  for (const c of CASES) {
    const fixture = fixtureOf(c.name);
    for (const extension of ALL) {
      const holds = c.writes.includes(extension);
      it(`${c.name} (${c.construct}) -> .${extension}: ${holds ? 'the consumer computes the producer’s outputs' : 'refused in one line'}`, async (t) => {
        const out = path.join(work, c.name, extension === 'json' ? 'model.json' : `model.${extension}`);
        const run = await cli('convert', modelFile(fixture), '-o', out);
        if (!holds) {
          assert.equal(run.code, 2, `${c.name} -> .${extension}: ${run.stdout}`);
          const format = {
            onnx: 'ONNX',
            json: 'TF\\.js',
            pt: 'PyTorch \\.pt',
            safetensors: 'safetensors',
            npz: '\\.npz',
          }[extension];
          assert.match(
            run.stderr.trim(),
            new RegExp(
              `^ecprune: ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: a ${format} [^\\n]*: write \\.onnx( or TF\\.js model\\.json)?$`,
            ),
          );
          assert.equal(existsSync(out), false, 'nothing is written');
          return;
        }
        assert.equal(run.code, 0, run.stderr);
        // float64 and float16 weights are kept where the format keeps them (float64 in every
        // weight-only format), and a note says where not
        const keepsDtype =
          extension === 'pt' ||
          (extension === 'onnx' && fixture.producer === 'torch') ||
          (fixture.dtype === 'float64' && (extension === 'safetensors' || extension === 'npz'));
        if (fixture.dtype === 'float32' || fixture.producer === 'tfjs' || keepsDtype)
          assert.equal(run.stderr, '');
        else
          assert.match(
            run.stderr.trim(),
            new RegExp(`^ecprune: note: the weights are ${fixture.dtype} in .*; .* stores them as float32$`),
          );
        const x = calibrationRows(c.name);
        const expected = expectedOutputs(fixture, x.rows);
        if (extension === 'onnx' || extension === 'json') {
          const ioDtype = extension === 'onnx' && fixture.ioDtype === 'float64' ? 'float64' : 'float32';
          assertClose(await consumerOutputs(out, x, fixture.inputShape, ioDtype), expected, fixture);
          return;
        }
        const missing = pythonMissing(extension === 'pt' ? 'torch' : 'numpy');
        if (missing) return t.skip(missing);
        assertClose(weightOnlyOutputs(out, fixture, c.activations!), expected, fixture);
        if (extension === 'pt') {
          const dtypes = execFileSync(
            PYTHON,
            [
              '-c',
              'import sys, torch; print(sorted({str(t.dtype) for t in torch.load(sys.argv[1]).values()}))',
              out,
            ],
            { encoding: 'utf8' },
          );
          assert.equal(
            dtypes.trim(),
            `['torch.${fixture.dtype}']`,
            `${c.name}: the .pt keeps the weights' type`,
          );
        }
      });
    }
  }
});

describe('prune refuses, before any work, an output format that cannot hold the graph', () => {
  for (const [name, extension] of [
    ['cnn_head', 'json'],
    ['cnn_head', 'npz'],
    ['arith_consts', 'json'],
  ] as const) {
    it(`${name} -> .${extension}`, async () => {
      const fixture = fixtureOf(name);
      const out = path.join(work, 'prune', name, extension === 'json' ? 'model.json' : `model.${extension}`);
      const calib = path.join(ZOO, name, 'calib.npy');
      const run = await cli('prune', modelFile(fixture), '--calib', calib, '--sparsity', '0.5', '-o', out);
      assert.equal(run.code, 2, run.stdout);
      assert.match(run.stderr.trim(), /^ecprune: [^\n]*: write \.onnx$/);
      assert.equal(run.stdout, '', 'refused before any work');
      assert.equal(existsSync(out), false, 'nothing is written');
    });
  }
});
