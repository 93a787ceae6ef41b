import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { readNpy, toFeatureMatrix } from '../../src/io/npy.js';
import { dequantizeMlp, quantizeCodebook, quantizeInt8 } from '../../src/quantize/quantize.js';
import { loadEcsr, type QuantizedValues } from '../../src/runtime/index.js';
import { keepMasksOf } from '../../src/train/train.js';
import { assertClose } from '../core/helpers.js';
import { readOnnxMlp } from '../helpers/onnx-chain.js';
import { cli, FIXTURES, tempDir } from './run.js';

it('export --format csr writes a .ecsr that the runtime runs with the pruned model outputs', async () => {
  const dir = tempDir();
  const model = path.join(FIXTURES, 'onnx', 'mlp_relu_gemm.onnx');
  const calib = path.join(FIXTURES, 'onnx', 'mlp_relu_gemm.input.npy');
  const pruned = path.join(dir, 'pruned.onnx');
  const sparse = path.join(dir, 'model.ecsr');
  assert.equal(
    (await cli('prune', model, '--calib', calib, '--sparsity', '0.9', '--method', 'ec', '-o', pruned)).code,
    0,
  );
  const run = await cli('export', pruned, '--format', 'csr', '-o', sparse);
  assert.equal(run.code, 0, run.stderr);
  assert.ok(
    statSync(sparse).size * 4 < statSync(pruned).size,
    'at 90 % sparsity the file is at least 4x smaller',
  );
  const x = toFeatureMatrix(readNpy(readFileSync(calib)));
  const runtime = loadEcsr(readFileSync(sparse));
  const expected = await forward(readOnnxMlp(readFileSync(pruned)), x, tsGemm);
  assertClose(runtime.run(x.data, x.rows), expected.data, 'runtime vs dense forward', 1e-5);
});

it('export --values int8 and codebook:<bits> write version 2 files that run as the dequantised model', async () => {
  const dir = tempDir();
  const model = path.join(FIXTURES, 'onnx', 'mlp_relu_gemm.onnx');
  const calib = path.join(FIXTURES, 'onnx', 'mlp_relu_gemm.input.npy');
  const pruned = path.join(dir, 'pruned.onnx');
  assert.equal(
    (await cli('prune', model, '--calib', calib, '--sparsity', '0.8', '--method', 'ec', '-o', pruned)).code,
    0,
  );
  const mlp = readOnnxMlp(readFileSync(pruned));
  const masks = keepMasksOf(mlp);
  const x = toFeatureMatrix(readNpy(readFileSync(calib)));
  const cases: [string, QuantizedValues[]][] = [
    ['int8', mlp.layers.map((l, i) => quantizeInt8(l.weight, masks[i]))],
    ['codebook:3', mlp.layers.map((l, i) => quantizeCodebook(l.weight, masks[i], { bits: 3, seed: i }))],
  ];
  for (const [values, quantized] of cases) {
    const out = path.join(dir, `${values.replace(':', '-')}.ecsr`);
    const run = await cli('export', pruned, '--format', 'csr', '--values', values, '-o', out);
    assert.equal(run.code, 0, run.stderr);
    const runtime = loadEcsr(readFileSync(out));
    assert.equal(runtime.valueType, values === 'int8' ? 'int8' : 'codebook');
    const expected = await forward(dequantizeMlp(mlp, masks, quantized), x, tsGemm);
    assertClose(runtime.run(x.data, x.rows), expected.data, `${values}: runtime vs dequantised model`, 1e-5);
  }
  const bad = await cli('export', pruned, '--values', 'codebook:9', '-o', path.join(dir, 'bad.ecsr'));
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /codebook:<bits> with bits 2 to 8/);
});
