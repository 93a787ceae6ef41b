import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EcpruneError } from '../../src/errors.js';
import {
  type NpyArray,
  parseNpyHeader,
  readNpy,
  toFeatureMatrix,
  toTargets,
  writeNpy,
} from '../../src/io/npy.js';
import { failsWith } from '../helpers/errors.js';

// Files written by NumPy 1.24: test/fixtures/data/make_data_fixtures.py
const fixture = (name: string) => readFileSync(new URL(`../fixtures/data/${name}`, import.meta.url));
const read = (name: string) => readNpy(fixture(name), name);

describe('readNpy on files written by NumPy', () => {
  const cases: [string, string, number[], string, number[]][] = [
    ['f4_2x3.npy', '<f4', [2, 3], 'Float32Array', [0.5, 1.5, 2.5, 10.5, 11.5, 12.5]],
    ['f8_3x2.npy', '<f8', [3, 2], 'Float64Array', [1.25, -2.5, 1e-300, 3, -0, 1e300]],
    ['u1_2x2.npy', '|u1', [2, 2], 'Uint8Array', [0, 1, 128, 255]],
    ['i8_labels.npy', '<i8', [5], 'Float64Array', [3, 0, 2, 1, 9]],
    ['i1.npy', '|i1', [4], 'Int8Array', [-128, -1, 0, 127]],
    ['u2.npy', '<u2', [3], 'Uint16Array', [0, 1, 65535]],
    ['b1.npy', '|b1', [3], 'Uint8Array', [1, 0, 1]],
    [
      'f2.npy',
      '<f2',
      [8],
      'Float32Array',
      [1.5, -0.25, 65504, 2 ** -24, 2 ** -14, -0, Infinity, 0.333251953125],
    ],
    ['f8_big_endian.npy', '>f8', [3], 'Float64Array', [1.5, -2, 1e300]],
    ['i4_big_endian.npy', '>i4', [2, 2], 'Int32Array', [1, -2, 70000, 0]],
    ['f4_3d_2x2x3.npy', '<f4', [2, 2, 3], 'Float32Array', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]],
    // column-major on disk, C order after reading
    ['f4_fortran_3x4.npy', '<f4', [3, 4], 'Float32Array', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]],
    ['f4_v2_2x3.npy', '<f4', [2, 3], 'Float32Array', [0.5, 1.5, 2.5, 10.5, 11.5, 12.5]],
    ['f4_v3_2x3.npy', '<f4', [2, 3], 'Float32Array', [0.5, 1.5, 2.5, 10.5, 11.5, 12.5]],
  ];
  for (const [name, dtype, shape, type, values] of cases) {
    it(name, () => {
      const array = read(name);
      assert.equal(array.dtype, dtype);
      assert.deepEqual(array.shape, shape);
      assert.equal(array.data.constructor.name, type);
      assert.deepEqual(Array.from(array.data), values); // deepEqual tells -0 from 0
    });
  }

  it('parses the header alone', () => {
    const header = parseNpyHeader(fixture('f4_fortran_3x4.npy').subarray(0, 128));
    assert.deepEqual(header, {
      dtype: '<f4',
      shape: [3, 4],
      fortranOrder: true,
      dataOffset: 128,
      dataBytes: 48,
    });
  });
});

describe('toFeatureMatrix', () => {
  it('flattens trailing axes and turns a vector into one column', () => {
    const cube = toFeatureMatrix(read('f4_3d_2x2x3.npy'));
    assert.deepEqual([cube.rows, cube.cols], [2, 6]);
    assert.deepEqual(Array.from(cube.data), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const column = toFeatureMatrix(read('i8_labels.npy'));
    assert.deepEqual([column.rows, column.cols], [5, 1]);
    assert.ok(column.data instanceof Float32Array);
  });

  it('refuses a scalar', () => {
    const scalar = readNpy(writeNpy({ shape: [], data: new Float32Array([1]) }));
    assert.throws(() => toFeatureMatrix(scalar, 's.npy'), failsWith('input', 's.npy', 'scalar'));
  });
});

describe('toTargets', () => {
  it('reads integer vectors and whole-number float vectors as classes', () => {
    assert.deepEqual(toTargets(read('i8_labels.npy')), {
      kind: 'classes',
      values: new Int32Array([3, 0, 2, 1, 9]),
    });
    assert.deepEqual(toTargets(read('f4_float_labels.npy')), {
      kind: 'classes',
      values: new Int32Array([1, 0, 2]),
    });
    const column = { shape: [3, 1], dtype: '<i4', data: new Int32Array([2, 1, 0]) };
    assert.deepEqual(toTargets(column), { kind: 'classes', values: new Int32Array([2, 1, 0]) });
  });

  it('reads one-hot rows as the classes of their ones (float or integer), unless told values', () => {
    const oneHot = { shape: [3, 3], dtype: '<f4', data: new Float32Array([0, 0, 1, 1, 0, 0, 0, 1, 0]) };
    assert.deepEqual(toTargets(oneHot), {
      kind: 'classes',
      values: new Int32Array([2, 0, 1]),
      readFrom: 'one-hot',
    });
    const bytes = { shape: [2, 2], dtype: '|u1', data: new Uint8Array([0, 1, 1, 0]) };
    assert.deepEqual(toTargets(bytes), {
      kind: 'classes',
      values: new Int32Array([1, 0]),
      readFrom: 'one-hot',
    });
    assert.equal(toTargets(oneHot, 'y.npy', 'values').kind, 'values');
    // a probability row or two ones is not one-hot: values
    const soft = { shape: [2, 2], dtype: '<f4', data: new Float32Array([0.5, 0.5, 0, 1]) };
    assert.equal(toTargets(soft).kind, 'values');
  });

  it('reads matrices and fractional or negative floats as values', () => {
    const matrix = toTargets(read('f4_targets_3x2.npy'));
    assert.equal(matrix.kind, 'values');
    if (matrix.kind === 'values') assert.deepEqual([matrix.values.rows, matrix.values.cols], [3, 2]);
    const negative = toTargets({ shape: [2], dtype: '<f8', data: new Float64Array([-1, 2]) });
    assert.equal(negative.kind, 'values');
  });

  it('follows an explicit kind', () => {
    const values = toTargets(read('i8_labels.npy'), 'y.npy', 'values');
    assert.equal(values.kind, 'values');
    if (values.kind === 'values') assert.deepEqual(Array.from(values.values.data), [3, 0, 2, 1, 9]);
    assert.throws(
      () => toTargets(read('f4_targets_3x2.npy'), 't.npy', 'classes'),
      failsWith('input', 't.npy', 'shape'),
    );
    const fractional = { shape: [3], dtype: '<f4', data: new Float32Array([0, 1.5, 2]) };
    assert.throws(() => toTargets(fractional, 'f.npy', 'classes'), failsWith('input', 'f.npy', '1.5'));
  });

  it('names the row of a negative class id', () => {
    const ids = { shape: [3], dtype: '<i8', data: new Float64Array([0, 1, -1]) };
    assert.throws(
      () => toTargets(ids, 'y.npy'),
      (error: unknown) => error instanceof EcpruneError && error.file === 'y.npy' && error.where === 'row 2',
    );
  });
});

describe('writeNpy', () => {
  it('writes the same bytes as NumPy', () => {
    for (const name of ['f4_2x3.npy', 'u1_2x2.npy', 'f4_3d_2x2x3.npy', 'u2.npy', 'i1.npy']) {
      assert.deepEqual(writeNpy(read(name)), new Uint8Array(fixture(name)), name);
    }
  });

  it('round-trips every writable type and shape', () => {
    const arrays: NpyArray[] = [
      { shape: [], dtype: '<f8', data: new Float64Array([Math.PI]) },
      { shape: [0], dtype: '<f4', data: new Float32Array(0) },
      { shape: [2, 0, 3], dtype: '<i4', data: new Int32Array(0) },
      { shape: [3], dtype: '<u4', data: new Uint32Array([0, 1, 2 ** 32 - 1]) },
      { shape: [2, 2], dtype: '<i2', data: new Int16Array([-32768, 0, 1, 32767]) },
    ];
    for (const array of arrays) assert.deepEqual(readNpy(writeNpy(array)), array);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }), fc.integer(), (shape, seed) => {
        const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) =>
          Math.fround(seed * i),
        );
        const back = readNpy(writeNpy({ shape, data }));
        assert.deepEqual(back, { shape, dtype: '<f4', data });
      }),
    );
  });

  it('switches to format 2.0 when the header outgrows 64 KiB', () => {
    const shape = Array.from({ length: 25000 }, () => 1);
    const bytes = writeNpy({ shape, data: new Uint8Array([7]) });
    assert.equal(bytes[6], 2);
    assert.deepEqual(readNpy(bytes), { shape, dtype: '|u1', data: new Uint8Array([7]) });
  });

  it('refuses a shape that does not match the data', () => {
    assert.throws(() => writeNpy({ shape: [2, 2], data: new Float32Array(3) }), RangeError);
  });
});

describe('readNpy errors name the file', () => {
  /** The fixture with its header text edited, padded with spaces to keep the layout. */
  const edited = (name: string, from: string, to: string) => {
    const bytes = new Uint8Array(fixture(name));
    const text = new TextDecoder('latin1').decode(bytes);
    const at = text.indexOf(from);
    assert.ok(at > 0 && to.length <= from.length);
    bytes.set(new TextEncoder().encode(to.padEnd(from.length)), at);
    return bytes;
  };

  it('bad magic', () => {
    assert.throws(() => readNpy(fixture('xy_header.csv'), 'a.npy'), failsWith('input', 'a.npy', 'magic'));
    assert.throws(() => readNpy(new Uint8Array(0), 'a.npy'), failsWith('input', 'a.npy', 'magic'));
  });

  it('truncated header and truncated data', () => {
    const bytes = fixture('f4_2x3.npy');
    assert.throws(() => readNpy(bytes.subarray(0, 11), 'h.npy'), failsWith('input', 'h.npy', 'truncated'));
    assert.throws(() => readNpy(bytes.subarray(0, 60), 'h.npy'), failsWith('input', 'h.npy', 'truncated'));
    assert.throws(
      () => readNpy(bytes.subarray(0, bytes.length - 1), 't.npy'),
      failsWith('input', 't.npy', 'truncated'),
    );
  });

  it('a header claiming terabytes is refused before allocating', () => {
    const bytes = edited('f4_2x3.npy', "'shape': (2, 3), }          ", "'shape': (9999999999999,), }");
    assert.throws(
      () => readNpy(bytes, 'huge.npy'),
      failsWith('input', 'huge.npy', 'promises 39999999999996 bytes'),
    );
    const impossible = edited(
      'f8_3x2.npy',
      "'shape': (3, 2), }                    ",
      "'shape': (9999999, 99999999999), }",
    );
    assert.throws(() => readNpy(impossible, 'x.npy'), failsWith('input', 'x.npy', 'impossibly large'));
  });

  it('unsupported dtypes are named', () => {
    const complex = edited('f8_3x2.npy', "'<f8'", "'<c8'");
    assert.throws(() => readNpy(complex, 'c.npy'), failsWith('unsupported', 'c.npy', "'<c8'"));
    const strings = edited('f8_3x2.npy', "'<f8'", "'<U1'");
    assert.throws(() => readNpy(strings, 'u.npy'), failsWith('unsupported', 'u.npy', "'<U1'"));
  });

  it('unreadable headers and versions', () => {
    const noShape = edited('f4_2x3.npy', "'shape'", "'shapo'");
    assert.throws(() => readNpy(noShape, 'n.npy'), failsWith('input', 'n.npy', 'unreadable'));
    const badDim = edited('f4_2x3.npy', '(2, 3)', '(2, x)');
    assert.throws(() => readNpy(badDim, 'd.npy'), failsWith('input', 'd.npy', 'bad shape'));
    const v9 = new Uint8Array(fixture('f4_2x3.npy'));
    v9[6] = 9;
    assert.throws(() => readNpy(v9, 'v.npy'), failsWith('unsupported', 'v.npy', 'version 9'));
  });
});
