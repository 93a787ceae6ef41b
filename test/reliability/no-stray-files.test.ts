/**
 * A run writes nothing outside the paths it is given: `prune` on the default path (onnxruntime-node,
 * one graph per batch) with a fresh, empty HOME and TMPDIR leaves both empty. onnxruntime-node 1.30
 * used to leave `mat-debug-<pid>.log` and `.ses` in TMPDIR and a telemetry database and device id
 * under ~/.cache/Microsoft/DeveloperTools (see src/node/ort-gemm.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, it } from 'node:test';
import { createRandom } from '../../src/data/random.js';
import { writeNpy } from '../../src/io/npy.js';
import { tempDir } from '../cli/run.js';
import { FEATURES, MODEL_FIXTURE } from './inputs.js';

const root = tempDir('ecprune-stray-');
after(() => rmSync(root, { recursive: true, force: true }));

/** Everything under `dir`, dotfiles included, as relative paths. */
const contents = (dir: string): string[] => readdirSync(dir, { recursive: true }).map(String).sort();

it('prune on onnxruntime-node leaves nothing in a fresh HOME or TMPDIR', () => {
  const home = path.join(root, 'home');
  const temp = path.join(root, 'tmp');
  mkdirSync(home);
  mkdirSync(temp);
  const random = createRandom(3);
  const calib = path.join(root, 'x.npy');
  writeFileSync(
    calib,
    writeNpy({
      shape: [64, FEATURES],
      data: Float32Array.from({ length: 64 * FEATURES }, () => random.normal()),
    }),
  );
  const output = path.join(root, 'pruned.onnx');
  const main = path.join(
    path.dirname(new URL(import.meta.url).pathname),
    '..',
    '..',
    'src',
    'cli',
    'main.ts',
  );
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', main, 'prune', MODEL_FIXTURE, '--calib', calib, '--quiet', '-o', output],
    {
      encoding: 'utf8',
      // TSX_DISABLE_CACHE: tsx itself (the test's way of running TypeScript) would cache in TMPDIR
      env: { PATH: process.env.PATH, HOME: home, TMPDIR: temp, TSX_DISABLE_CACHE: '1' },
    },
  );
  assert.equal(run.status, 0, run.stderr);
  assert.ok(statSync(output).size > 0);
  assert.deepEqual(contents(temp), [], 'files appeared in TMPDIR');
  assert.deepEqual(contents(home), [], 'files appeared in HOME');
});
