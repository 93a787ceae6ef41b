import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { readNpy, toFeatureMatrix } from '../../src/io/npy.js';
import { readOnnx } from '../../src/io/onnx.js';
import { loadEcsr } from '../../src/runtime/index.js';
import { assertClose } from '../core/helpers.js';
import { cli, FIXTURES, tempDir } from './run.js';

it('export --format csr writes a .ecsr that the runtime runs with the pruned model outputs', async () => {
  const dir = tempDir();
  const model = path.join(FIXTURES, 'onnx', 'mlp_relu_gemm.onnx');
  const calib = path.join(FIXTURES, 'onnx', 'mlp_relu_gemm.input.npy');
  const pruned = path.join(dir, 'pruned.onnx');
  const sparse = path.join(dir, 'model.ecsr');
  assert.equal((await cli('prune', model, '--calib', calib, '--sparsity', '0.9', '-o', pruned)).code, 0);
  const run = await cli('export', pruned, '--format', 'csr', '-o', sparse);
  assert.equal(run.code, 0, run.stderr);
  assert.ok(
    statSync(sparse).size * 4 < statSync(pruned).size,
    'at 90 % sparsity the file is at least 4x smaller',
  );
  const x = toFeatureMatrix(readNpy(readFileSync(calib)));
  const runtime = loadEcsr(readFileSync(sparse));
  const expected = await forward(readOnnx(readFileSync(pruned)).mlp, x, tsGemm);
  assertClose(runtime.run(x.data, x.rows), expected.data, 'runtime vs dense forward', 1e-5);
});
