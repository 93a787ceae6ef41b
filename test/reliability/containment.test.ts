/**
 * Containment through the library and the browser path (the CLI's cases are rows of
 * bad-inputs.test.ts): a TF.js manifest names only files inside the model's folder, each once, and
 * the shards hold exactly the bytes the manifest declares.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { EcpruneError } from '../../src/errors.js';
import { checkShardPath, readTfjs } from '../../src/io/tfjs.js';
import { loadModel } from '../../src/node/models.js';
import { readModelFiles } from '../../web/pipeline.js';
import { FIXTURES, tempDir } from '../cli/run.js';

const source = path.join(FIXTURES, 'interop', 'tfjs_dense');
const shard = readFileSync(path.join(source, 'group1-shard1of1.bin'));
const json = JSON.parse(readFileSync(path.join(source, 'model.json'), 'utf8'));
const withPaths = (paths: string[]) => ({
  ...json,
  weightsManifest: [{ ...json.weightsManifest[0], paths }],
});

const root = tempDir('ecprune-containment-');
after(() => rmSync(root, { recursive: true, force: true }));

describe('TF.js shard containment', () => {
  it('loadModel refuses a path out of the folder that the old reader followed', async () => {
    writeFileSync(path.join(root, 'secret.bin'), shard);
    mkdirSync(path.join(root, 'model'));
    const file = path.join(root, 'model', 'model.json');
    writeFileSync(file, JSON.stringify(withPaths(['../secret.bin'])));
    await assert.rejects(loadModel(file), (error: EcpruneError) => {
      assert.equal(error.code, 'input');
      assert.match(
        error.message,
        /model\.json: .*"\.\.\/secret\.bin" is not a file inside the model's folder/,
      );
      return true;
    });
  });

  it('the browser path (readModelFiles) refuses the same manifest, and reads the good one', () => {
    const files = [
      {
        name: 'model.json',
        bytes: new TextEncoder().encode(JSON.stringify(withPaths(['../group1-shard1of1.bin']))),
      },
      { name: 'group1-shard1of1.bin', bytes: new Uint8Array(shard) },
    ];
    assert.throws(() => readModelFiles(files), /is not a file inside the model's folder/);
    files[0].bytes = new TextEncoder().encode(JSON.stringify(json));
    assert.equal(readModelFiles(files).graph.layers.length, 3);
  });

  it('every reader is given the bytes still declared, and a longer answer is refused', () => {
    const asked: number[] = [];
    const half = shard.length / 2;
    const halves = new Map([
      ['a.bin', shard.subarray(0, half)],
      ['b.bin', shard.subarray(half)],
    ]);
    const read = (name: string, maxBytes: number) => {
      asked.push(maxBytes);
      return halves.get(name)!;
    };
    readTfjs(withPaths(['a.bin', 'b.bin']), read);
    assert.deepEqual(asked, [shard.length, shard.length - half]);
    assert.throws(
      () => readTfjs(withPaths(['a.bin']), () => new Uint8Array(shard.length + 1)),
      /longer than the manifest declares \(the group's weights take 476 bytes\)/,
    );
  });

  it('checkShardPath: relative names inside the folder pass, normalised; the rest is refused', () => {
    assert.equal(checkShardPath('group1-shard1of1.bin'), 'group1-shard1of1.bin');
    assert.equal(checkShardPath('./w//a.bin'), 'w/a.bin');
    for (const bad of [
      '../a.bin',
      'w/../../a.bin',
      '/etc/passwd',
      'C:/a.bin',
      'w\\..\\a.bin',
      'https://x/a',
      'a\0b',
      '',
      '.',
    ]) {
      assert.throws(() => checkShardPath(bad), /not a file inside the model's folder/, bad);
    }
  });
});
