import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { unzipSync, zipSync } from 'fflate';
import { EcpruneError } from '../../src/errors.js';
import { writeNpy } from '../../src/io/npy.js';
import { readNpz, writeNpz } from '../../src/io/npz.js';
import { failsWith } from '../helpers/errors.js';
import { PYTHON, pythonMissing } from '../helpers/python.js';

// Files written by NumPy 1.24: test/fixtures/data/make_data_fixtures.py
const fixture = (name: string) => readFileSync(new URL(`../fixtures/data/${name}`, import.meta.url));

/** Compression method of each member (0 stored, 8 deflated), from the zip's directory. */
function compressionMethods(bytes: Uint8Array): Record<string, number> {
  const methods: Record<string, number> = {};
  unzipSync(bytes, {
    filter: (member) => {
      methods[member.name] = member.compression;
      return false;
    },
  });
  return methods;
}

describe('readNpz', () => {
  for (const name of ['xy_stored.npz', 'xy_deflated.npz']) {
    it(`reads ${name} (np.${name.includes('stored') ? 'savez' : 'savez_compressed'})`, () => {
      const arrays = readNpz(fixture(name), name);
      assert.deepEqual([...arrays.keys()], ['x', 'y']);
      assert.deepEqual(arrays.get('x'), {
        shape: [5, 3],
        dtype: '<f4',
        data: Float32Array.from({ length: 15 }, (_, i) => i / 4),
      });
      assert.deepEqual(arrays.get('y'), {
        shape: [5],
        dtype: '<i8',
        data: new Float64Array([3, 0, 2, 1, 9]),
      });
    });
  }

  it('corrupt or truncated archives name the file', () => {
    const bytes = fixture('xy_deflated.npz');
    assert.throws(
      () => readNpz(bytes.subarray(0, bytes.length - 30), 'cut.npz'),
      failsWith('input', 'cut.npz'),
    );
    assert.throws(() => readNpz(fixture('f4_2x3.npy'), 'npy.npz'), failsWith('input', 'npy.npz', 'zip'));
    const flipped = new Uint8Array(bytes);
    for (let i = 100; i < 200; i++) flipped[i] ^= 0x5a; // inside the deflated data of x.npy
    assert.throws(() => readNpz(flipped, 'bad.npz'), failsWith('input', 'bad.npz'));
  });

  it('names the array when a member is not a valid .npy', () => {
    const bytes = zipSync({ 'x.npy': writeNpy({ shape: [2], data: new Float32Array(2) }).subarray(0, 130) });
    assert.throws(
      () => readNpz(bytes, 'm.npz'),
      (error: unknown) =>
        error instanceof EcpruneError && error.file === 'm.npz' && error.where === "array 'x'",
    );
  });

  it('refuses archives that would inflate past the limit, from the directory sizes alone', () => {
    const bytes = writeNpz({
      a: { shape: [4], data: new Float32Array(4) },
      b: { shape: [4], data: new Float32Array(4) },
    });
    // claim 4 GiB - 16 bytes uncompressed for both members in the central directory (uint32 at +24)
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let claimed = 0;
    for (let at = 0; at + 4 <= bytes.length; at++) {
      if (view.getUint32(at, true) === 0x02014b50) {
        view.setUint32(at + 24, 2 ** 32 - 16, true);
        claimed++;
      }
    }
    assert.equal(claimed, 2);
    assert.throws(() => readNpz(bytes, 'bomb.npz'), failsWith('limit', 'bomb.npz', 'inflated'));
    const small = writeNpz({ a: { shape: [1000], data: new Float64Array(1000) } }, true);
    assert.throws(() => readNpz(small, 's.npz', 4000), failsWith('limit', 's.npz'));
  });
});

describe('writeNpz', () => {
  const arrays = {
    weights: { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    ids: { shape: [3], data: new Int32Array([-1, 0, 7]) },
    pixels: { shape: [2, 2], data: new Uint8Array([0, 1, 254, 255]) },
  };

  it('round-trips stored and deflated', () => {
    for (const compress of [false, true]) {
      const bytes = writeNpz(arrays, compress);
      const method = compress ? 8 : 0;
      assert.deepEqual(compressionMethods(bytes), {
        'weights.npy': method,
        'ids.npy': method,
        'pixels.npy': method,
      });
      const back = readNpz(bytes);
      assert.deepEqual(back.get('weights'), { ...arrays.weights, dtype: '<f4' });
      assert.deepEqual(back.get('ids'), { ...arrays.ids, dtype: '<i4' });
      assert.deepEqual(back.get('pixels'), { ...arrays.pixels, dtype: '|u1' });
    }
  });

  it('gives the same bytes for the same arrays', () => {
    assert.deepEqual(writeNpz(arrays, true), writeNpz(arrays, true));
  });

  it('is read back by NumPy', (t) => {
    const missing = pythonMissing('numpy');
    if (missing) return t.skip(missing);
    const dir = mkdtempSync(path.join(tmpdir(), 'ecprune-npz-'));
    try {
      for (const compress of [false, true]) {
        const file = path.join(dir, `a${compress}.npz`);
        writeFileSync(file, writeNpz(arrays, compress));
        const script =
          'import json, sys, numpy as np; d = np.load(sys.argv[1]); print(json.dumps({k: [str(d[k].dtype), list(d[k].shape), d[k].ravel().tolist()] for k in d.files}))';
        const out = JSON.parse(execFileSync(PYTHON, ['-c', script, file], { encoding: 'utf8' }));
        assert.deepEqual(out, {
          weights: ['float32', [2, 3], [1, 2, 3, 4, 5, 6]],
          ids: ['int32', [3], [-1, 0, 7]],
          pixels: ['uint8', [2, 2], [0, 1, 254, 255]],
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
