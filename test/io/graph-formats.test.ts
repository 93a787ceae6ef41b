/**
 * Output formats that hold only a chain of layers (issue #11): a graph that is not a chain is refused
 * in one line naming the format and what to write instead, before any work; a graph that IS a chain
 * (an ONNX MLP) is written and the real consumer (torch's load_state_dict, NumPy) computes what
 * ecprune computes. Layers read from a state_dict carry their module paths as names.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { EcpruneError } from '../../src/errors.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { loadModel, saveModel } from '../../src/node/models.js';
import { prune } from '../../src/pipeline/prune.js';
import { cli } from '../cli/run.js';
import { PYTHON, pythonMissing } from '../helpers/python.js';
import { calibrationRows, ZOO } from '../helpers/zoo.js';

const TORCH = new URL('../fixtures/torch/', import.meta.url).pathname;
const work = mkdtempSync(path.join(tmpdir(), 'ecprune-graph-formats-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** `ecprune export` of a zoo model to .ecsr. */
const exportCsr = (name: string) =>
  cli('export', path.join(ZOO, name, 'model.onnx'), '-o', path.join(work, `${name}.ecsr`));

/** the residual model's refusal: it names both formats that hold it (TF.js as a functional model) */
const NOT_A_CHAIN =
  /^[^\n]*: a (safetensors|PyTorch \.pt|\.npz) file holds only the weights of a chain of layers; this model is a graph: write \.onnx or TF\.js model\.json$/;

describe('weight-only formats and .ecsr: a graph that is not a chain', () => {
  for (const extension of ['safetensors', 'pt', 'npz']) {
    it(`saveModel refuses .${extension} in one line and writes nothing`, async () => {
      const model = await loadModel(path.join(ZOO, 'residual', 'model.onnx'));
      const out = path.join(work, `residual.${extension}`);
      await assert.rejects(saveModel(out, model.graph, { like: model }), (error: EcpruneError) => {
        assert.ok(error instanceof EcpruneError, String(error));
        assert.match(error.message, NOT_A_CHAIN);
        return true;
      });
      assert.equal(existsSync(out), false, 'no file is left behind');
    });
  }

  it('prune and convert refuse .pt / .safetensors output of a residual model (exit 2, one line)', async () => {
    const model = path.join(ZOO, 'residual', 'model.onnx');
    const calib = path.join(ZOO, 'residual', 'calib.npy');
    const pruned = await cli('prune', model, '--calib', calib, '-o', path.join(work, 'p.safetensors'));
    assert.equal(pruned.code, 2);
    assert.match(pruned.stderr.trim(), NOT_A_CHAIN);
    assert.equal(pruned.stdout, '', 'refused before any work');
    const converted = await cli('convert', model, '-o', path.join(work, 'c.pt'));
    assert.equal(converted.code, 2);
    assert.match(converted.stderr.trim(), NOT_A_CHAIN);
  });

  it('export to .ecsr refuses a chain behind a frozen prefix (it would drop the convolutions)', async () => {
    const run = await exportCsr('cnn_head');
    assert.equal(run.code, 2, run.stdout);
    assert.match(
      run.stderr.trim(),
      /^[^\n]*cnn_head[^\n]*the \.ecsr runtime format needs a plain chain[^\n]*frozen prefix[^\n]*keep it as ONNX$/,
    );
    assert.equal(existsSync(path.join(work, 'cnn_head.ecsr')), false, 'nothing is written');
  });

  it('export to .ecsr refuses in one line naming the format and what to do', async () => {
    const run = await exportCsr('residual');
    assert.equal(run.code, 2);
    assert.match(
      run.stderr.trim(),
      /^[^\n]*the \.ecsr runtime format needs a plain chain[^\n]*this model is a graph[^\n]*keep it as ONNX or TF\.js[^\n]*$/,
    );
  });
});

describe('weight-only formats and .ecsr: a graph that is a chain', () => {
  it('an ONNX MLP pruned by EC, written as .pt, loads into torch nn.Sequential and computes what ecprune computes', async (t) => {
    const missing = pythonMissing('torch', 'numpy');
    if (missing) return t.skip(missing);
    const model = await loadModel(path.join(ZOO, 'mlp_opset17', 'model.onnx'));
    const x = calibrationRows('mlp_opset17');
    const { model: pruned } = await prune(model.graph, inMemoryDataset(x), { sparsity: 0.5 });
    const out = path.join(work, 'mlp.pt');
    await saveModel(out, pruned, { like: model });
    const xFile = path.join(ZOO, 'mlp_opset17', 'calib.npy');
    const script = [
      'import json, sys, numpy as np, torch',
      'from torch import nn',
      'net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))',
      'net.load_state_dict(torch.load(sys.argv[1]))',
      'x = torch.from_numpy(np.load(sys.argv[2]))',
      'print(json.dumps(net(x).detach().numpy().ravel().tolist()))',
    ].join('\n');
    const torchOut: number[] = JSON.parse(
      execFileSync(PYTHON, ['-c', script, out, xFile], { encoding: 'utf8' }),
    );
    const ours = await forward(pruned, x, tsGemm);
    assert.equal(torchOut.length, ours.data.length);
    torchOut.forEach((y, i) => {
      assert.ok(
        Math.abs(y - ours.data[i]) <= 1e-5 * (1 + Math.abs(y)),
        `[${i}]: torch ${y}, ecprune ${ours.data[i]}`,
      );
    });
  });

  it('the same chain written as .npz: NumPy computes the MLP from W0, b0, ... as ecprune does', async (t) => {
    const missing = pythonMissing('numpy');
    if (missing) return t.skip(missing);
    const model = await loadModel(path.join(ZOO, 'mlp_opset17', 'model.onnx'));
    const x = calibrationRows('mlp_opset17');
    const out = path.join(work, 'mlp.npz');
    await saveModel(out, model.graph, { like: model });
    const script = [
      'import json, sys, numpy as np',
      'd = np.load(sys.argv[1]); a = np.load(sys.argv[2])',
      'for l in range(3):',
      '    a = a @ d[f"W{l}"].T + d[f"b{l}"]',
      '    a = np.maximum(a, 0) if l < 2 else a',
      'print(json.dumps(a.ravel().tolist()))',
    ].join('\n');
    const numpyOut: number[] = JSON.parse(
      execFileSync(PYTHON, ['-c', script, out, path.join(ZOO, 'mlp_opset17', 'calib.npy')], {
        encoding: 'utf8',
      }),
    );
    const ours = await forward(model.graph, x, tsGemm);
    numpyOut.forEach((y, i) => {
      assert.ok(
        Math.abs(y - ours.data[i]) <= 1e-5 * (1 + Math.abs(y)),
        `[${i}]: numpy ${y}, ecprune ${ours.data[i]}`,
      );
    });
  });

  it('the same chain written as .safetensors reads back with its activations (stored) and computes the same outputs', async () => {
    const model = await loadModel(path.join(ZOO, 'mlp_opset17', 'model.onnx'));
    const out = path.join(work, 'mlp.safetensors');
    await saveModel(out, model.graph, { like: model });
    const back = await loadModel(out);
    assert.deepEqual(
      back.graph.layers.map((l) => l.name),
      ['0', '2', '4'],
      'nn.Sequential module paths',
    );
    const x = calibrationRows('mlp_opset17');
    const [ours, read] = [await forward(model.graph, x, tsGemm), await forward(back.graph, x, tsGemm)];
    assert.deepEqual(read.data, ours.data);
  });

  it('export writes a .ecsr of an ONNX chain', async () => {
    const run = await exportCsr('mlp_opset17');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /wrote .*mlp_opset17\.ecsr/);
  });
});

describe('layers read from a state_dict are named by their module paths', () => {
  it('a real torch.save file: inspect and the prune summary say layers.0 and layers.2', async () => {
    const file = path.join(TORCH, 'prefixed_bf16.pt');
    const model = await loadModel(file, { arch: 'relu' });
    assert.deepEqual(
      model.graph.layers.map((l) => l.name),
      ['layers.0', 'layers.2'],
    );
    const inspected = JSON.parse((await cli('inspect', file, '--arch', 'relu', '--json')).stdout);
    assert.deepEqual(
      inspected.layers.map((l: { name: string }) => l.name),
      ['layers.0', 'layers.2'],
    );
    const run = await cli(
      'prune',
      file,
      '--arch',
      'relu',
      '--calib',
      path.join(TORCH, 'prefixed_bf16.input.npy'),
      '--sparsity',
      '0.5',
      '-o',
      path.join(work, 'prefixed.pt'),
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /layer 0 layers\.0 /);
    assert.match(run.stdout, /layer 1 layers\.2 /);
  });
});
