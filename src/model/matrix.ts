/**
 * A dense row-major matrix: element (r, c) is `data[r * cols + c]`; float32 unless said otherwise.
 * Plain data, no methods, so that it crosses worker and wasm boundaries unchanged.
 */
export interface Matrix<Data extends FloatArray = Float32Array> {
  readonly rows: number;
  readonly cols: number;
  readonly data: Data;
}

/**
 * float32, or float64 where precision must be kept: a layer's weights and biases are float64 when
 * its file stores them so (what pruning leaves alone is then written back bit for bit) and float32
 * otherwise (float16 and bfloat16 files are read into float32 exactly). The GEMMs run in float32:
 * `asFloat32` at their boundary.
 */
export type FloatArray = Float32Array | Float64Array;

/** A fresh zero array of the same element type as `like`. */
export function zerosLike<Data extends FloatArray>(like: Data, length: number): Data {
  return (like instanceof Float64Array ? new Float64Array(length) : new Float32Array(length)) as Data;
}

/** `m` itself when it is float32 (no copy on the float32 path), else its values rounded to float32. */
export function asFloat32(m: Matrix<FloatArray>): Matrix {
  return m.data instanceof Float32Array
    ? (m as Matrix)
    : { rows: m.rows, cols: m.cols, data: Float32Array.from(m.data) };
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

/** The transpose, in the precision of `m`. */
export function transpose<Data extends FloatArray>(m: Matrix<Data>): Matrix<Data> {
  const out = { rows: m.cols, cols: m.rows, data: zerosLike(m.data, m.data.length) };
  for (let r = 0; r < m.rows; r++) {
    for (let c = 0; c < m.cols; c++) out.data[c * m.rows + r] = m.data[r * m.cols + c];
  }
  return out;
}
