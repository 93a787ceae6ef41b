/**
 * Where npm left onnxruntime-node out (its install script failed), the ecprune command still runs:
 * on onnxruntime-web's WebAssembly build, saying so in one line, with the same result as the TS loop.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../../src/node/models.js';
import { cli, tempDir } from '../cli/run.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MODEL = path.join(ROOT, 'web', 'demo', 'model.onnx');
const CALIB = path.join(ROOT, 'web', 'demo', 'calib.npy');
const dir = tempDir('ecprune-fallback-');
after(() => rmSync(dir, { recursive: true, force: true }));

it('without onnxruntime-node: one line names the backend, the pruned model is the TS loop one', async () => {
  const out = path.join(dir, 'wasm.onnx');
  const run = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      path.join(ROOT, 'test', 'helpers', 'without-onnxruntime-node.mjs'),
      path.join(ROOT, 'src', 'cli', 'main.ts'),
      'prune',
      MODEL,
      '--calib',
      CALIB,
      '--sparsity',
      '0.9',
      '--quiet',
      '-o',
      out,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(run.status, 0, run.stderr);
  // one line about the backend; a warning about the pruned layers (select/layers.ts) is not about it
  const lines = run.stderr.trim().split('\n');
  assert.deepEqual(
    lines.filter((line) => !line.startsWith('ecprune: warning: layer ')),
    [
      'ecprune: onnxruntime-node is not installed (npm leaves it out where its install script fails); running on onnxruntime-web (WebAssembly, slower)',
    ],
  );
  // the in-process CLI runs on the TS loop
  const reference = path.join(dir, 'ts.onnx');
  const ts = await cli('prune', MODEL, '--calib', CALIB, '--sparsity', '0.9', '--quiet', '-o', reference);
  assert.equal(ts.code, 0, ts.stderr);
  const [a, b] = [await loadModel(out), await loadModel(reference)];
  for (const [l, layer] of a.mlp!.layers.entries()) {
    const mask = (data: Float32Array | Float64Array) => Array.from(data, (w) => +(w !== 0));
    assert.deepEqual(mask(layer.weight.data), mask(b.mlp!.layers[l].weight.data), `layer ${l}`);
  }
});
