/**
 * Numeric CSV: one sample per line, all cells numbers.
 *
 * - The delimiter is taken from the first line: tab if it has one, else `;` if it has one, else `,`
 *   (so `;`-separated files with decimal commas are not split at the commas).
 * - The first line is a header when none of its cells looks like a value: a number, a special
 *   value NumPy or pandas write (`nan`, `inf`, `Infinity`), a hex number, or an empty cell. So a
 *   first data row holding `nan` is read as data (and refused as non-finite), not silently dropped.
 * - Blank lines and lines starting with `#` (NumPy's `savetxt` comments) are skipped.
 * - A cell may be wrapped in double quotes; quoted delimiters are not supported.
 * Errors name the line (1-based, counting every line of the file) and the column (1-based).
 */
import { badInput, EcpruneError } from '../errors.js';
import { type Matrix, matrix } from '../model/matrix.js';

export interface CsvOptions {
  /**
   * The column holding the targets: a header name, or a 0-based index (negative counts from the
   * end: -1 is the last column). A string of digits that is not a header name is an index.
   */
  labelColumn?: string | number;
}

export interface CsvTable {
  /** the inputs: every column except the label column, as float32 */
  readonly x: Matrix;
  /** the label column, when one was asked for */
  readonly y?: Float64Array;
  /** the header names of the columns of `x`, when the file has a header */
  readonly columns?: string[];
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
/** Cells that are values (even unreadable ones), never column names. */
const VALUE_LIKE = /^([+-]?(nan|inf|infinity|0x[0-9a-f]*)|)$/i;
const isValueLike = (cell: string) => NUMBER.test(cell) || VALUE_LIKE.test(cell);

export function readCsv(text: string, file?: string, options: CsvOptions = {}): CsvTable {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const rows: { line: number; cells: string[] }[] = [];
  let delimiter: string | undefined;
  lines.forEach((content, index) => {
    if (content.trim() === '' || content.startsWith('#')) return;
    delimiter ??= content.includes('\t') ? '\t' : content.includes(';') ? ';' : ',';
    rows.push({ line: index + 1, cells: content.split(delimiter).map(unquote) });
  });
  if (rows.length === 0) throw badInput('no data in the CSV file', file);

  const header = rows[0].cells.some(isValueLike) ? undefined : rows.shift()!.cells;
  if (rows.length === 0) throw badInput('the CSV file has a header but no data rows', file);
  const width = (header ?? rows[0].cells).length;
  const label =
    options.labelColumn === undefined ? undefined : labelIndex(options.labelColumn, width, header, file);

  // every row's width is checked before the values are allocated: a long header over short rows
  // must not size an array of header width x row count
  for (const { line, cells } of rows) {
    if (cells.length !== width) {
      throw badInput(`${cells.length} values where the first row has ${width}`, file, `row ${line}`);
    }
  }
  const values = new Float64Array(rows.length * width);
  rows.forEach(({ line, cells }, row) => {
    cells.forEach((cell, col) => {
      if (!NUMBER.test(cell)) {
        const name = header ? ` ('${header[col]}')` : '';
        throw badInput(`not a number: '${cell}'`, file, `row ${line}, column ${col + 1}${name}`);
      }
      values[row * width + col] = Number(cell);
    });
  });
  return split(values, rows.length, width, label, header);
}

function unquote(cell: string): string {
  const trimmed = cell.trim();
  return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"')
    ? trimmed.slice(1, -1).trim()
    : trimmed;
}

function labelIndex(
  column: string | number,
  width: number,
  header: string[] | undefined,
  file?: string,
): number {
  const named = typeof column === 'string' ? (header?.indexOf(column) ?? -1) : -1;
  if (named >= 0) return named;
  const index = typeof column === 'number' ? column : /^-?\d+$/.test(column) ? Number(column) : Number.NaN;
  if (Number.isInteger(index) && index >= -width && index < width) return index < 0 ? width + index : index;
  const known = header ? `columns: ${header.join(', ')}` : `the file has ${width} columns and no header`;
  throw new EcpruneError('usage', `label column '${column}' not found (${known})`, file);
}

/** Splits the label column (if any) off the N x width values. */
function split(
  values: Float64Array,
  rows: number,
  width: number,
  label?: number,
  header?: string[],
): CsvTable {
  const cols = label === undefined ? width : width - 1;
  const x = matrix(rows, cols);
  const y = label === undefined ? undefined : new Float64Array(rows);
  for (let row = 0; row < rows; row++) {
    let out = row * cols;
    for (let col = 0; col < width; col++) {
      const value = values[row * width + col];
      if (col === label) y![row] = value;
      else x.data[out++] = value;
    }
  }
  const columns = header?.filter((_, col) => col !== label);
  return { x, ...(y && { y }), ...(columns && { columns }) };
}
