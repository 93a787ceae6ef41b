/**
 * Outputs at the edges (src/node/files.ts): a race between two runs never replaces a file, only
 * regular files are replaced, a name too long is refused before any work, and the temp files of
 * killed runs are removed by the next write.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, it } from 'node:test';
import { writeOutputAtomic } from '../../src/node/files.js';
import { cli, tempDir } from '../cli/run.js';
import { MODEL_FIXTURE } from './inputs.js';

const root = tempDir('ecprune-outputs-');
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const folder = () => {
  const dir = path.join(root, `t${counter++}`);
  mkdirSync(dir);
  return dir;
};

it('two writes of one output at once: one succeeds, the other is refused, nothing is replaced', async () => {
  const file = path.join(folder(), 'out.bin');
  // each write's content is produced slowly in chunks, so both pass the exists-check first
  const slow = (byte: number) => async (write: (chunk: Uint8Array) => Promise<void>) => {
    for (let i = 0; i < 20; i++) {
      await write(new Uint8Array(1024).fill(byte));
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const results = await Promise.allSettled([
    writeOutputAtomic(file, slow(1)),
    writeOutputAtomic(file, slow(2)),
  ]);
  const failed = results.filter((r) => r.status === 'rejected');
  assert.equal(failed.length, 1, 'exactly one of the two writes must fail');
  assert.match(String((failed[0] as PromiseRejectedResult).reason), /already exists/);
  const winner = results.findIndex((r) => r.status === 'fulfilled') + 1;
  assert.deepEqual(new Set(readFileSync(file)), new Set([winner]));
  assert.deepEqual(readdirSync(path.dirname(file)), ['out.bin'], 'a temp file was left');
});

it('--force replaces only regular files: not a symlink, not a FIFO', async () => {
  const dir = folder();
  const target = path.join(dir, 'target.txt');
  writeFileSync(target, 'kept');
  symlinkSync(target, path.join(dir, 'link.onnx'));
  execFileSync('mkfifo', [path.join(dir, 'fifo.onnx')]);
  for (const name of ['link.onnx', 'fifo.onnx']) {
    const run = await cli('convert', MODEL_FIXTURE, '--force', '-o', path.join(dir, name));
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, new RegExp(`${name}: is not a regular file`));
  }
  assert.ok(lstatSync(path.join(dir, 'link.onnx')).isSymbolicLink());
  assert.ok(lstatSync(path.join(dir, 'fifo.onnx')).isFIFO());
  assert.equal(readFileSync(target, 'utf8'), 'kept');
});

it('a name over 255 bytes is refused before any work; a 240-byte name is written', async () => {
  const dir = folder();
  const long = path.join(dir, `${'n'.repeat(251)}.onnx`);
  const run = await cli('convert', MODEL_FIXTURE, '-o', long);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /the name is 256 bytes, over the 255/);
  // its temp name (.<name>.tmp-<pid>-<hex>) would be over 255 bytes: it is shortened
  const fits = path.join(dir, `${'n'.repeat(235)}.onnx`);
  const written = await cli('convert', MODEL_FIXTURE, '-o', fits);
  assert.equal(written.code, 0, written.stderr);
  assert.deepEqual(readdirSync(dir), [path.basename(fits)]);
});

it("a killed run's temp file is removed by the next write of that output", async () => {
  const dir = folder();
  // a process id that ran and ended: no process has it now
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  }).stdout;
  const stale = path.join(dir, `.out.onnx.tmp-${dead}-0123abcd`);
  const alive = path.join(dir, `.out.onnx.tmp-${process.pid}-4567cdef`); // a run still writing
  writeFileSync(stale, 'half');
  writeFileSync(alive, 'half');
  await writeOutputAtomic(path.join(dir, 'out.onnx'), 'done');
  assert.deepEqual(readdirSync(dir).sort(), [path.basename(alive), 'out.onnx']);
});

it('export creates a missing output folder, as every other command does', async () => {
  const out = path.join(folder(), 'new', 'model.ecsr');
  const run = await cli('export', MODEL_FIXTURE, '-o', out);
  assert.equal(run.code, 0, run.stderr);
  assert.ok(lstatSync(out).isFile());
});
