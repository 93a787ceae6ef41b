import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  ensureParentDir,
  readInputFile,
  removePendingTempFiles,
  writeOutputAtomic,
} from '../../src/node/files.js';
import { failsWith } from '../helpers/errors.js';

const root = mkdtempSync(path.join(tmpdir(), 'ecprune-files-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
/** A fresh empty folder per test. */
function folder(): string {
  const dir = path.join(root, `t${counter++}`);
  mkdirSync(dir);
  return dir;
}

describe('readInputFile', () => {
  it('reads bytes', async () => {
    const file = path.join(folder(), 'a.bin');
    writeFileSync(file, new Uint8Array([1, 2, 3]));
    assert.deepEqual(Array.from(await readInputFile(file)), [1, 2, 3]);
  });

  it('names a missing file or a folder', async () => {
    const dir = folder();
    const missing = path.join(dir, 'missing.npy');
    await assert.rejects(readInputFile(missing), failsWith('io', missing, 'cannot read: no such file'));
    await assert.rejects(readInputFile(dir), failsWith('io', dir, 'cannot read: it is a folder'));
  });
});

describe('writeOutputAtomic', () => {
  it('writes bytes, text and chunks, leaving only the output', async () => {
    const dir = folder();
    await writeOutputAtomic(path.join(dir, 'a.bin'), new Uint8Array([9, 8]));
    await writeOutputAtomic(path.join(dir, 'b.txt'), 'héllo');
    await writeOutputAtomic(path.join(dir, 'c.txt'), async (write) => {
      await write('one,');
      await write(new TextEncoder().encode('two'));
    });
    assert.deepEqual(readdirSync(dir).sort(), ['a.bin', 'b.txt', 'c.txt']);
    assert.deepEqual(Array.from(readFileSync(path.join(dir, 'a.bin'))), [9, 8]);
    assert.equal(readFileSync(path.join(dir, 'b.txt'), 'utf8'), 'héllo');
    assert.equal(readFileSync(path.join(dir, 'c.txt'), 'utf8'), 'one,two');
  });

  it('refuses an existing file unless forced', async () => {
    const file = path.join(folder(), 'out.json');
    writeFileSync(file, 'old');
    // the library's words; the CLI prints the same error with --force (bad-inputs, core-commands)
    await assert.rejects(
      writeOutputAtomic(file, 'new'),
      failsWith('usage', file, 'already exists \\(use the `force` option'),
    );
    assert.equal(readFileSync(file, 'utf8'), 'old');
    await writeOutputAtomic(file, 'new', { force: true });
    assert.equal(readFileSync(file, 'utf8'), 'new');
  });

  it('never overwrites an input, even forced, by any name', async () => {
    const dir = folder();
    const input = path.join(dir, 'model.onnx');
    writeFileSync(input, 'weights');
    symlinkSync(input, path.join(dir, 'alias.onnx'));
    linkSync(input, path.join(dir, 'hardlink.onnx'));
    const names = [
      input,
      path.join(dir, 'alias.onnx'),
      path.join(dir, 'hardlink.onnx'),
      `${dir}/./model.onnx`,
    ];
    for (const output of names) {
      await assert.rejects(
        writeOutputAtomic(output, 'pruned', { force: true, inputs: [path.relative(process.cwd(), input)] }),
        failsWith('usage', output, 'input'),
      );
    }
    assert.equal(readFileSync(input, 'utf8'), 'weights');
    assert.deepEqual(readdirSync(dir).sort(), ['alias.onnx', 'hardlink.onnx', 'model.onnx']);
  });

  it('removes the temp file when writing throws, and keeps the old output', async () => {
    const dir = folder();
    const file = path.join(dir, 'out.bin');
    writeFileSync(file, 'old');
    const failure = new Error('disk on fire');
    await assert.rejects(
      writeOutputAtomic(
        file,
        async (write) => {
          await write('half');
          throw failure;
        },
        { force: true },
      ),
      (error) => error === failure,
    );
    assert.deepEqual(readdirSync(dir), ['out.bin']);
    assert.equal(readFileSync(file, 'utf8'), 'old');
  });

  it('removes the temp file when the rename fails', async () => {
    const dir = folder();
    const target = path.join(dir, 'report');
    mkdirSync(path.join(target, 'inside'), { recursive: true }); // a non-empty folder cannot be replaced
    await assert.rejects(
      writeOutputAtomic(target, 'x', { force: true }),
      failsWith('io', target, 'cannot write'),
    );
    assert.deepEqual(readdirSync(dir), ['report']);
  });

  it('reports a missing or read-only folder without leaving files', async (t) => {
    const dir = folder();
    const missing = path.join(dir, 'no', 'such', 'out.bin');
    await assert.rejects(writeOutputAtomic(missing, 'x'), failsWith('io', missing, 'no such file'));
    if (process.getuid?.() === 0) return t.skip('running as root: permissions do not stop writes');
    chmodSync(dir, 0o555);
    try {
      const file = path.join(dir, 'out.bin');
      await assert.rejects(writeOutputAtomic(file, 'x'), failsWith('io', file, 'permission denied'));
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      chmodSync(dir, 0o755);
    }
  });

  it('has nothing pending after writes finish', () => {
    assert.deepEqual(removePendingTempFiles(), []);
  });

  for (const [signal, status] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`removes the temp file and exits ${status} on ${signal} mid-write`, () => {
      const dir = folder();
      const script = path.join(dir, 'interrupted.mts');
      const filesModule = new URL('../../src/node/files.ts', import.meta.url).href;
      writeFileSync(
        script,
        `import { writeOutputAtomic } from '${filesModule}';
setTimeout(() => {}, 60_000); // keeps the process alive until the signal arrives
await writeOutputAtomic(process.argv[2], async (write) => {
  await write('partial');
  process.kill(process.pid, '${signal}');
  await new Promise(() => {});
});`,
      );
      const output = path.join(dir, 'out', 'result.bin');
      mkdirSync(path.dirname(output));
      const run = spawnSync(process.execPath, ['--import', 'tsx', script, output], { encoding: 'utf8' });
      assert.equal(run.status, status, run.stderr);
      assert.deepEqual(readdirSync(path.dirname(output)), []);
    });
  }
});

describe('ensureParentDir', () => {
  it('creates missing parents and names a blocking file', async () => {
    const dir = folder();
    await ensureParentDir(path.join(dir, 'a', 'b', 'c.txt'));
    await writeOutputAtomic(path.join(dir, 'a', 'b', 'c.txt'), 'ok');
    writeFileSync(path.join(dir, 'file'), '');
    const blocked = path.join(dir, 'file', 'sub');
    await assert.rejects(
      ensureParentDir(path.join(blocked, 'x.txt')),
      failsWith('io', blocked, 'cannot create folder'),
    );
  });
});
