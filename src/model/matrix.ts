/**
 * A dense row-major float32 matrix: element (r, c) is `data[r * cols + c]`.
 * Plain data, no methods, so that it crosses worker and wasm boundaries unchanged.
 */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float32Array;
}

export function matrix(rows: number, cols: number, data?: Float32Array): Matrix {
  if (data === undefined) return { rows, cols, data: new Float32Array(rows * cols) };
  if (data.length !== rows * cols) {
    throw new RangeError(`matrix ${rows}x${cols} needs ${rows * cols} values, got ${data.length}`);
  }
  return { rows, cols, data };
}

/** Builds a matrix from nested arrays (tests, small fixtures). */
export function fromRows(rows: ArrayLike<ArrayLike<number>>): Matrix {
  const cols = rows.length === 0 ? 0 : rows[0].length;
  const out = matrix(rows.length, cols);
  for (let r = 0; r < rows.length; r++) {
    if (rows[r].length !== cols)
      throw new RangeError(`row ${r} has ${rows[r].length} values, expected ${cols}`);
    out.data.set(rows[r], r * cols);
  }
  return out;
}

/** Rows [start, end) as a view sharing memory with `m`. */
export function rowSlice(m: Matrix, start: number, end: number): Matrix {
  return { rows: end - start, cols: m.cols, data: m.data.subarray(start * m.cols, end * m.cols) };
}

export function transpose(m: Matrix): Matrix {
  const out = matrix(m.cols, m.rows);
  for (let r = 0; r < m.rows; r++) {
    for (let c = 0; c < m.cols; c++) out.data[c * m.rows + r] = m.data[r * m.cols + c];
  }
  return out;
}
