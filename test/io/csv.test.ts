import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { EcpruneError } from '../../src/errors.js';
import { readCsv } from '../../src/io/csv.js';

// Files written by NumPy 1.24 / Python: test/fixtures/data/make_data_fixtures.py
const fixture = (name: string) => readFileSync(new URL(`../fixtures/data/${name}`, import.meta.url), 'utf8');
const X = Array.from({ length: 15 }, (_, i) => i / 4); // the 5 x 3 inputs of the fixtures
const LABELS = [3, 0, 2, 1, 9];

function failsWith(code: string, file: string, where?: string, text?: string) {
  return (error: unknown) => {
    assert.ok(error instanceof EcpruneError, `expected EcpruneError, got ${error}`);
    assert.equal(error.code, code, error.message);
    assert.equal(error.file, file);
    if (where !== undefined) assert.equal(error.where, where);
    if (text !== undefined) assert.match(error.message, new RegExp(text));
    return true;
  };
}

describe('readCsv', () => {
  it('reads a header and a label column by name, index, negative index and digit string', () => {
    for (const labelColumn of ['label', 3, -1, '3']) {
      const table = readCsv(fixture('xy_header.csv'), 'xy.csv', { labelColumn });
      assert.deepEqual([table.x.rows, table.x.cols], [5, 3]);
      assert.deepEqual(Array.from(table.x.data), X);
      assert.deepEqual(Array.from(table.y!), LABELS);
      assert.deepEqual(table.columns, ['f0', 'f1', 'f2']);
    }
  });

  it('keeps every column without a label column', () => {
    const table = readCsv(fixture('xy_header.csv'));
    assert.equal(table.x.cols, 4);
    assert.equal(table.y, undefined);
    assert.deepEqual(Array.from(table.x.data.subarray(0, 4)), [0, 0.25, 0.5, 3]);
  });

  it('reads np.savetxt output with ; and no header', () => {
    const table = readCsv(fixture('x_semicolon.csv'));
    assert.deepEqual([table.x.rows, table.x.cols], [5, 3]);
    assert.deepEqual(Array.from(table.x.data), X);
    assert.equal(table.columns, undefined);
  });

  it('detects tabs, skips comments and blank lines, accepts CRLF, BOM and quotes', () => {
    const text = '\uFEFF# made by hand\r\n"a"\t"b"\r\n1\t-2.5e1\r\n\r\n"3"\t.5\r\n';
    const table = readCsv(text, 't.tsv', { labelColumn: 'a' });
    assert.deepEqual(Array.from(table.x.data), [-25, 0.5]);
    assert.deepEqual(Array.from(table.y!), [1, 3]);
    assert.deepEqual(table.columns, ['b']);
  });

  it('treats a single column as one feature', () => {
    assert.deepEqual(Array.from(readCsv('1\n2\n').x.data), [1, 2]);
  });

  it('names the row and column of a non-number', () => {
    const text = 'a,b\n1,2\n3,x\n';
    assert.throws(() => readCsv(text, 'd.csv'), failsWith('input', 'd.csv', "row 3, column 2 ('b')", "'x'"));
    assert.throws(() => readCsv('1,2\n3,\n', 'e.csv'), failsWith('input', 'e.csv', 'row 2, column 2'));
    assert.throws(() => readCsv('1,2\n3,0x10\n', 'h.csv'), failsWith('input', 'h.csv', 'row 2, column 2'));
  });

  it('names ragged rows', () => {
    assert.throws(
      () => readCsv('1,2\n3,4\n5,6,7\n', 'r.csv'),
      failsWith('input', 'r.csv', 'row 3', '3 values'),
    );
  });

  it('refuses an unknown label column and empty files', () => {
    const text = fixture('xy_header.csv');
    assert.throws(
      () => readCsv(text, 'l.csv', { labelColumn: 'y' }),
      failsWith('usage', 'l.csv', undefined, 'f0, f1'),
    );
    assert.throws(() => readCsv(text, 'l.csv', { labelColumn: 4 }), failsWith('usage', 'l.csv'));
    assert.throws(() => readCsv('\n# nothing\n', 'n.csv'), failsWith('input', 'n.csv'));
    assert.throws(() => readCsv('a,b\n', 'h.csv'), failsWith('input', 'h.csv', undefined, 'no data rows'));
  });
});
