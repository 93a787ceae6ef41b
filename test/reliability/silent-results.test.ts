/**
 * Inputs that used to give a wrong result with exit 0 (issue: "no silent wrong result"): a CSV
 * whose first data row was taken for a header, and a sparsity below 1 that pruned every weight.
 * (NaN/infinite activation slopes, repeated .npy keys: rows of bad-inputs.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readCsv } from '../../src/io/csv.js';
import { pruneCount, selectPerLayer } from '../../src/select/select.js';

describe('CSV headers are detected by rule', () => {
  for (const first of ['nan,1,2', '1,Infinity,2', '0x1F,1,2', '1,,2', '-inf,1,2']) {
    it(`first row '${first}' is data, refused by name, not dropped as a header`, () => {
      assert.throws(() => readCsv(`${first}\n3,4,5\n`, 'x.csv'), /x\.csv: row 1, column \d: not a number/);
    });
  }
  it('a row of names is a header; the data rows are all kept', () => {
    const table = readCsv('a,b,c\n1,2,3\n4,5,6\n', 'x.csv');
    assert.deepEqual(table.columns, ['a', 'b', 'c']);
    assert.equal(table.x.rows, 2);
  });
});

describe('a sparsity below 1 never prunes every weight of a layer', () => {
  it('0.99999999 of 10 weights prunes 9, of 1 weight none', () => {
    assert.equal(pruneCount(0.99999999, 10), 9);
    assert.equal(pruneCount(0.99999999, 1), 0);
    assert.equal(pruneCount(0.95, 10), 9); // floor(9.5 + 0.5) = 10 before
    assert.equal(pruneCount(0.5, 10), 5);
  });
  it('per-layer selection keeps at least one weight in every layer', () => {
    const scores = [Float64Array.from([3, 1, 2]), Float64Array.from([5, 4])];
    const masks = selectPerLayer(scores, 0.99999999);
    assert.deepEqual(
      masks.map((mask) => [...mask]),
      [
        [1, 0, 0],
        [1, 0],
      ],
    );
  });
});
