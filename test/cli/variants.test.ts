import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { readNpy, toFeatureMatrix } from '../../src/io/npy.js';
import { DEFAULT_RECIPE } from '../../src/pipeline/prune.js';
import { formatVariant } from '../../src/pipeline/variant-name.js';
import { satisfiesPattern } from '../../src/select/pattern.js';
import { assertClose } from '../core/helpers.js';
import { readOnnxMlp } from '../helpers/onnx-chain.js';
import { cli, FIXTURES, tempDir } from './run.js';

const MODEL = path.join(FIXTURES, 'onnx', 'mlp_relu_gemm.onnx');
const CALIB = path.join(FIXTURES, 'onnx', 'mlp_relu_gemm.input.npy');
const x = toFeatureMatrix(readNpy(readFileSync(CALIB)));

/** The written file, run by onnxruntime, equals our forward pass of the model read back from it. */
async function checkWritten(file: string) {
  const written = { mlp: readOnnxMlp(readFileSync(file), file) };
  const session = await ort.InferenceSession.create(readFileSync(file));
  const input = new ort.Tensor('float32', x.data, [x.rows, 1, 8, 8]);
  const result = await session.run({ [session.inputNames[0]]: input });
  assertClose(
    result[session.outputNames[0]].data as Float32Array,
    (await forward(written.mlp, x, tsGemm)).data,
    file,
    1e-5,
  );
  return written.mlp;
}

describe('ecprune prune variants', () => {
  it('no method flags: the default recipe; --method ec: the paper; --shift-scale and --budgets by hand', async () => {
    const dir = tempDir();
    const runs: string[] = [];
    // one after the other: the in-process CLI captures console output globally
    for (const flags of [
      [],
      ['--method', 'ec'],
      ['--method', 'ec', '--shift-scale', '0.5', '--budgets', 'magnitude'],
    ]) {
      const out = path.join(dir, `r${runs.length}.onnx`);
      const run = await cli('prune', MODEL, '--calib', CALIB, '--sparsity', '0.7', ...flags, '-o', out);
      assert.equal(run.code, 0, run.stderr);
      await checkWritten(out);
      runs.push(run.stdout);
    }
    assert.ok(runs[0].startsWith(`${formatVariant(DEFAULT_RECIPE)}, global scope`), runs[0]);
    assert.match(runs[1], /^ec, global scope/);
    assert.match(runs[2], /^ec\+alpha0\.5\+magbudget, global scope/);
    const bad = await cli(
      'prune',
      MODEL,
      '--calib',
      CALIB,
      '--shift-scale',
      '2',
      '-o',
      path.join(dir, 'x.onnx'),
    );
    assert.equal(bad.code, 2, 'a bad scale is a usage error');
    assert.match(bad.stderr, /--shift-scale.*expected a number in \[0, 1\] or 'calibrated', got '2'/);
  });

  it('--pattern 2:4 writes masks that satisfy the pattern exactly', async () => {
    const out = path.join(tempDir(), 'p24.onnx');
    const run = await cli('prune', MODEL, '--calib', CALIB, '--pattern', '2:4', '-o', out);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /ec\+2:4/);
    const mlp = await checkWritten(out);
    for (const layer of mlp.layers) {
      const keep = Uint8Array.from(layer.weight.data, (w) => +(w !== 0));
      assert.ok(satisfiesPattern(keep, layer.weight.rows, layer.weight.cols, { n: 2, m: 4 }));
    }
  });

  it('--structure neuron physically shrinks the written ONNX', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'neurons.onnx');
    const run = await cli(
      'prune',
      MODEL,
      '--calib',
      CALIB,
      '--structure',
      'neuron',
      '--sparsity',
      '0.5',
      '-o',
      out,
    );
    assert.equal(run.code, 0, run.stderr);
    const mlp = await checkWritten(out);
    // half of the 32 + 16 hidden neurons are gone (ranked globally); inputs and outputs stay
    const [first, second, last] = mlp.layers.map((l) => [l.weight.rows, l.weight.cols]);
    assert.equal(first[0] + second[0], 24);
    assert.deepEqual([first[1], last[0]], [64, 10]);
    assert.ok(statSync(out).size < 0.6 * statSync(MODEL).size);
  });

  for (const flags of [
    ['--sequential'],
    ['--refit-biases', '3'],
    ['--steps', '3'],
    ['--method', 'obs'],
    ['--sensitivity', 'loss', '--loss', 'ce', '--probes', '4'],
  ]) {
    it(`${flags.join(' ')} writes a 90 % sparse model that onnxruntime runs`, async () => {
      const out = path.join(tempDir(), 'variant.onnx');
      const run = await cli('prune', MODEL, '--calib', CALIB, ...flags, '-o', out);
      assert.equal(run.code, 0, run.stderr);
      const mlp = await checkWritten(out);
      const zeros = mlp.layers.reduce((n, l) => n + l.weight.data.filter((w) => w === 0).length, 0);
      assert.equal(zeros, Math.floor(0.9 * 2720 + 0.5));
    });
  }

  it('refuses unknown variants with one line', async () => {
    const run = await cli(
      'prune',
      MODEL,
      '--calib',
      CALIB,
      '--pattern',
      '4:2',
      '-o',
      path.join(tempDir(), 'x.onnx'),
    );
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^ecprune: option '--pattern <n:m>' argument '4:2' is invalid/);
  });
});
