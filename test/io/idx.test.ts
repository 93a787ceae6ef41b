import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { looksLikeIdx, parseIdxHeader, readIdx } from '../../src/io/idx.js';
import { failsWith } from '../helpers/errors.js';

// Files written by Python (struct + gzip): test/fixtures/data/make_data_fixtures.py
const fixture = (name: string) => readFileSync(new URL(`../fixtures/data/${name}`, import.meta.url));
const read = (name: string) => readIdx(fixture(name), name);

const IMAGES = [0, 255, 51, 102, 1, 2, 3, 4, 255, 0, 0, 255];

describe('readIdx', () => {
  for (const suffix of ['', '.gz']) {
    it(`reads MNIST-layout images and labels${suffix && ', gzipped'}`, () => {
      assert.deepEqual(read(`tiny-images-idx3-ubyte${suffix}`), {
        shape: [3, 2, 2],
        dtype: '|u1',
        data: new Uint8Array(IMAGES),
      });
      assert.deepEqual(read(`tiny-labels-idx1-ubyte${suffix}`), {
        shape: [3],
        dtype: '|u1',
        data: new Uint8Array([7, 0, 9]),
      });
    });
  }

  it('reads the other element types (big-endian)', () => {
    assert.deepEqual(read('f4_2x3.idx'), {
      shape: [2, 3],
      dtype: '>f4',
      data: new Float32Array([0.5, 1.5, 2.5, 10.5, 11.5, 12.5]),
    });
    assert.deepEqual(read('i2_3.idx'), { shape: [3], dtype: '>i2', data: new Int16Array([-300, 0, 300]) });
    assert.deepEqual(read('f8_2.idx'), { shape: [2], dtype: '>f8', data: new Float64Array([0.1, -1e300]) });
    const bytes = new Uint8Array([0, 0, 0x09, 1, 0, 0, 0, 2, 0xff, 0x7f]);
    assert.deepEqual(readIdx(bytes), { shape: [2], dtype: '|i1', data: new Int8Array([-1, 127]) });
    const int32 = new Uint8Array([0, 0, 0x0c, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe]);
    assert.deepEqual(readIdx(int32), { shape: [1], dtype: '>i4', data: new Int32Array([-2]) });
  });

  it('parses the header alone', () => {
    assert.deepEqual(parseIdxHeader(fixture('tiny-images-idx3-ubyte').subarray(0, 16)), {
      dtype: '|u1',
      shape: [3, 2, 2],
      dataOffset: 16,
      dataBytes: 12,
    });
    assert.ok(looksLikeIdx(fixture('tiny-labels-idx1-ubyte')));
    assert.ok(!looksLikeIdx(fixture('f4_2x3.npy')));
  });
});

describe('readIdx errors name the file', () => {
  it('bad magic and unsupported type codes', () => {
    assert.throws(() => readIdx(fixture('f4_2x3.npy'), 'a.idx'), failsWith('input', 'a.idx', 'not an IDX'));
    const code = new Uint8Array(fixture('tiny-labels-idx1-ubyte'));
    code[2] = 0x0a;
    assert.throws(() => readIdx(code, 'c.idx'), failsWith('unsupported', 'c.idx', '0x0a'));
  });

  it('truncated header and data', () => {
    const bytes = fixture('tiny-images-idx3-ubyte');
    assert.throws(() => readIdx(bytes.subarray(0, 10), 'h.idx'), failsWith('input', 'h.idx', 'truncated'));
    assert.throws(
      () => readIdx(bytes.subarray(0, bytes.length - 1), 'd.idx'),
      failsWith('input', 'd.idx', 'truncated'),
    );
  });

  it('a header claiming gigabytes is refused before allocating', () => {
    const huge = new Uint8Array([0, 0, 0x0e, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 1, 2, 3]); // 4G x 256 float64
    assert.throws(() => readIdx(huge, 'huge.idx'), failsWith('input', 'huge.idx', 'truncated'));
  });

  it('corrupt and truncated gzip', () => {
    const gz = fixture('tiny-images-idx3-ubyte.gz');
    assert.throws(() => readIdx(gz.subarray(0, 15), 'cut.gz'), failsWith('input', 'cut.gz'));
    const flipped = new Uint8Array(gz);
    flipped[3] = 0xff; // reserved flag bits
    flipped[12] ^= 0xff;
    assert.throws(() => readIdx(flipped, 'bad.gz'), failsWith('input', 'bad.gz'));
  });
});
