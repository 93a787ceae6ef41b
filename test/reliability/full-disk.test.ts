/**
 * A failed run leaves nothing: on a full disk (a small tmpfs, mounted when the tests run as root;
 * skipped with the reason otherwise) a TF.js output leaves neither its shard nor its model.json, a
 * sweep leaves no half report folder, and `-o a/b/c.onnx` leaves no folders it created.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, tempDir } from '../cli/run.js';
import { commandLine } from '../helpers/command-line.js';
import { MODEL_FIXTURE, writeInputs } from './inputs.js';

const root = tempDir('ecprune-full-disk-');
const disk = path.join(root, 'disk');
mkdirSync(disk);
const PAGE = 4096;
const SIZE = 64 * PAGE;
const mounted =
  process.getuid?.() === 0 &&
  spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE}`, 'tmpfs', disk]).status === 0;
const skip = mounted ? false : 'needs root to mount a small tmpfs (run as root to test full disks)';
if (skip) console.log(`# full-disk tests skipped: ${skip}`);

after(() => {
  if (mounted) spawnSync('umount', [disk]);
  rmSync(root, { recursive: true, force: true });
});

/** Fills the disk, leaving `pages` pages free. */
function fill(pages: number): void {
  rmSync(path.join(disk, 'filler'), { force: true });
  writeFileSync(path.join(disk, 'filler'), new Uint8Array(SIZE - pages * PAGE));
}

describe('full disk', { skip }, () => {
  let inputs: ReturnType<typeof writeInputs>;
  before(() => {
    inputs = writeInputs(path.join(root, 'inputs'));
  });

  it('a TF.js output whose model.json does not fit leaves no shard', async () => {
    fill(1); // the 3.2 KB shard fits, the 2.5 KB model.json then does not
    const run = await cli('convert', MODEL_FIXTURE, '-o', path.join(disk, 'model.json'));
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /no space left on the device/);
    assert.deepEqual(readdirSync(disk), ['filler']);
  });

  it('-o a/b/c.onnx leaves none of the folders it created', async () => {
    fill(0);
    const run = await cli('convert', MODEL_FIXTURE, '-o', path.join(disk, 'a', 'b', 'c.onnx'));
    assert.equal(run.code, 2, run.stderr);
    assert.deepEqual(readdirSync(disk), ['filler']);
  });

  it('sweep -o on a read-only file system is refused before the study', async () => {
    const readOnly = path.join(root, 'read-only');
    mkdirSync(readOnly);
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=65536', 'tmpfs', readOnly]).status, 0);
    try {
      // the calibration data holds NaN: refused only once read, so the folder check must come first
      const run = await cli(
        ...commandLine('sweep', [inputs.model], {
          calib: inputs.nan,
          data: inputs.x,
          labels: inputs.y,
          quiet: true,
          o: path.join(readOnly, 'report'),
        }),
      );
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /report\/results\.json: cannot write: read-only file system/);
    } finally {
      spawnSync('umount', [readOnly]);
    }
  });

  it('a sweep whose report does not fit leaves no report folder', async () => {
    fill(3); // room for the results files, not for the charts and report.html
    const run = await cli(
      ...commandLine('sweep', [inputs.model], {
        calib: inputs.x,
        data: inputs.x,
        labels: inputs.y,
        methods: 'magnitude',
        sparsities: '0.5',
        quiet: true,
        o: path.join(disk, 'studies', 'report'),
      }),
    );
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /no space left on the device/);
    assert.deepEqual(readdirSync(disk), ['filler']);
  });
});
