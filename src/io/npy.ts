/**
 * NumPy `.npy` arrays (format versions 1.0, 2.0 and 3.0), read and written as bytes.
 *
 * Also home of the small element-decoding helpers that the other binary formats (`.npz`, IDX and
 * the streaming readers in `src/node/datasets.ts`) share: a dtype string such as `'<f4'` or
 * `'>i2'` names how elements are stored, `decodeElements` turns stored bytes into a typed array.
 */

import { checkFinite, type Targets } from '../data/dataset.js';
import { badInput, EcpruneError, quote } from '../errors.js';
import { type FloatArray, type Matrix, matrix } from '../model/matrix.js';

/** The typed arrays values are decoded into (64-bit integers become float64, float16 becomes float32). */
export type NpyData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array;

export interface NpyArray {
  /** C (row-major) order shape; `[]` for a scalar */
  readonly shape: number[];
  /** the dtype the values were stored as, in NumPy's notation (`'<f4'`, `'|u1'`, `'>i2'`) */
  readonly dtype: string;
  readonly data: NpyData;
}

export interface NpyHeader {
  readonly dtype: string;
  readonly shape: number[];
  readonly fortranOrder: boolean;
  /** where the element data starts */
  readonly dataOffset: number;
  /** how many bytes of element data the header promises */
  readonly dataBytes: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** NumPy itself refuses headers over 10,000 bytes; a larger claim is a corrupt or hostile file. */
const MAX_HEADER_BYTES = 1 << 20;
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// Element types shared by the binary formats

interface Codec {
  create(n: number): NpyData;
  /** the typed array has the stored layout, so same-endian bytes can be copied as they are */
  readonly copyable: boolean;
  get(view: DataView, at: number, littleEndian: boolean): number;
}

const CODECS: Record<string, Codec> = {
  b1: { create: (n) => new Uint8Array(n), copyable: false, get: (v, at) => (v.getUint8(at) === 0 ? 0 : 1) },
  i1: { create: (n) => new Int8Array(n), copyable: true, get: (v, at) => v.getInt8(at) },
  u1: { create: (n) => new Uint8Array(n), copyable: true, get: (v, at) => v.getUint8(at) },
  i2: { create: (n) => new Int16Array(n), copyable: true, get: (v, at, le) => v.getInt16(at, le) },
  u2: { create: (n) => new Uint16Array(n), copyable: true, get: (v, at, le) => v.getUint16(at, le) },
  i4: { create: (n) => new Int32Array(n), copyable: true, get: (v, at, le) => v.getInt32(at, le) },
  u4: { create: (n) => new Uint32Array(n), copyable: true, get: (v, at, le) => v.getUint32(at, le) },
  // exact up to 2^53, which covers class ids and any count that fits in memory
  i8: {
    create: (n) => new Float64Array(n),
    copyable: false,
    get: (v, at, le) => Number(v.getBigInt64(at, le)),
  },
  u8: {
    create: (n) => new Float64Array(n),
    copyable: false,
    get: (v, at, le) => Number(v.getBigUint64(at, le)),
  },
  f2: {
    create: (n) => new Float32Array(n),
    copyable: false,
    get: (v, at, le) => float16(v.getUint16(at, le)),
  },
  f4: { create: (n) => new Float32Array(n), copyable: true, get: (v, at, le) => v.getFloat32(at, le) },
  f8: { create: (n) => new Float64Array(n), copyable: true, get: (v, at, le) => v.getFloat64(at, le) },
};

export interface ElementType {
  readonly codec: Codec;
  /** bytes per element */
  readonly size: number;
  readonly littleEndian: boolean;
}

/** Parses a NumPy dtype string (`'<f4'`, `'>i8'`, `'|u1'`); anything not in `CODECS` is refused by name. */
export function elementType(dtype: string, file?: string): ElementType {
  const match = /^([<>|=])([biuf])(\d+)$/.exec(dtype);
  const codec = match ? CODECS[match[2] + match[3]] : undefined;
  if (!match || !codec) {
    const supported = Object.keys(CODECS).join(', ');
    throw new EcpruneError(
      'unsupported',
      `dtype '${dtype}' is not supported (supported: ${supported})`,
      file,
    );
  }
  const littleEndian = match[1] === '<' || (match[1] !== '>' && HOST_LITTLE_ENDIAN);
  return { codec, size: Number(match[3]), littleEndian };
}

/** Decodes `count` elements stored from the start of `bytes` (which must hold them: check first). */
export function decodeElements(bytes: Uint8Array, type: ElementType, count: number): NpyData {
  const out = type.codec.create(count);
  const byteLength = count * type.size;
  if (type.codec.copyable && (type.size === 1 || type.littleEndian === HOST_LITTLE_ENDIAN)) {
    // a copy rather than a view: `bytes` may be unaligned for the element size
    new Uint8Array(out.buffer).set(bytes.subarray(0, byteLength));
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, byteLength);
  for (let i = 0; i < count; i++) out[i] = type.codec.get(view, i * type.size, type.littleEndian);
  return out;
}

/** A float16 value from its 16 bits (shared by every reader of half-precision data). */
export function float16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 31) return fraction === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((size, dim) => size * dim, 1);
}

/** Bytes of element data for `shape`, refusing sizes no file or memory could hold. */
export function dataByteLength(shape: readonly number[], type: ElementType, file?: string): number {
  const bytes = shapeSize(shape) * type.size;
  if (!Number.isSafeInteger(bytes)) throw badInput(`shape [${shape.join(', ')}] is impossibly large`, file);
  return bytes;
}

/**
 * Checks that the data a header promises is present, before anything of that size is allocated,
 * so that a header claiming terabytes is refused rather than attempted.
 */
export function checkDataPresent(dataBytes: number, available: number, file?: string): void {
  if (dataBytes > available) {
    throw badInput(
      `truncated: the header promises ${dataBytes} bytes of data, the file holds ${available}`,
      file,
    );
  }
}

/** `data` as float32 (a view when it already is and no scaling is asked for), times `scale`. */
export function toFloat32(data: NpyData, scale = 1): Float32Array {
  if (data instanceof Float32Array && scale === 1) return data;
  const out = new Float32Array(data);
  if (scale !== 1) for (let i = 0; i < out.length; i++) out[i] *= scale;
  return out;
}

/** A model's parameters as ecprune holds them (see FloatArray): float64 kept, any other type as float32. */
export function floatValues(data: NpyData): FloatArray {
  return data instanceof Float64Array ? data : toFloat32(data);
}

// ---------------------------------------------------------------------------------------------
// .npy

/** Offset of the element data (= magic + version + header length + header), from the first 12 bytes. */
export function npyDataOffset(prefix: Uint8Array, file?: string): number {
  if (prefix.length < 8 || MAGIC.some((byte, i) => prefix[i] !== byte)) {
    throw badInput('not a .npy file (no \\x93NUMPY magic at the start)', file);
  }
  const major = prefix[6];
  if (major < 1 || major > 3) {
    throw new EcpruneError('unsupported', `.npy format version ${major}.${prefix[7]} is not supported`, file);
  }
  const lengthBytes = major === 1 ? 2 : 4;
  if (prefix.length < 8 + lengthBytes) throw badInput('truncated .npy header', file);
  const view = new DataView(prefix.buffer, prefix.byteOffset + 8, lengthBytes);
  const headerLength = major === 1 ? view.getUint16(0, true) : view.getUint32(0, true);
  if (headerLength > MAX_HEADER_BYTES)
    throw badInput(`.npy header of ${headerLength} bytes is implausible`, file);
  return 8 + lengthBytes + headerLength;
}

/** Parses the header; `bytes` must hold at least the header (not necessarily the data). */
export function parseNpyHeader(bytes: Uint8Array, file?: string): NpyHeader {
  const dataOffset = npyDataOffset(bytes, file);
  if (bytes.length < dataOffset) throw badInput('truncated .npy header', file);
  const lengthBytes = bytes[6] === 1 ? 2 : 4;
  const text = new TextDecoder(bytes[6] === 3 ? 'utf-8' : 'latin1').decode(
    bytes.subarray(8 + lengthBytes, dataOffset),
  );
  const { descr, fortran_order: fortranOrder, shape } = headerDict(text, file);
  const dataBytes = dataByteLength(shape, elementType(descr, file), file);
  return { dtype: descr, shape, fortranOrder, dataOffset, dataBytes };
}

interface HeaderDict {
  descr: string;
  fortran_order: boolean;
  shape: number[];
}

/**
 * The header's Python dict literal, `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`,
 * read in one pass (no backtracking, so a hostile megabyte header costs a millisecond). As NumPy,
 * it needs exactly these three keys; a key given twice is refused (NumPy would take the last).
 */
function headerDict(text: string, file?: string): HeaderDict {
  let at = 0;
  const fail = (problem: string): never => {
    throw badInput(`unreadable .npy header: ${problem} at character ${at} of ${quote(text.trim())}`, file);
  };
  const skipSpace = () => {
    while (at < text.length && ' \t\r\n'.includes(text[at])) at++;
  };
  const expect = (char: string) => {
    skipSpace();
    if (text[at] !== char) fail(`expected '${char}'`);
    at++;
  };
  const string = (): string => {
    const delimiter = text[at];
    if (delimiter !== "'" && delimiter !== '"') fail('expected a quoted string');
    const end = text.indexOf(delimiter, at + 1);
    if (end < 0) fail('unterminated string');
    const value = text.slice(at + 1, end);
    at = end + 1;
    return value;
  };
  const word = (): string => {
    const start = at;
    while (at < text.length && /[A-Za-z0-9]/.test(text[at])) at++;
    return text.slice(start, at);
  };
  const value = (key: string): string | boolean | number[] => {
    skipSpace();
    if (key === 'descr') {
      if (text[at] === '[')
        throw new EcpruneError('unsupported', 'structured (record) dtypes are not supported', file);
      return string();
    }
    if (key === 'fortran_order') {
      const flag = word();
      if (flag !== 'True' && flag !== 'False') fail('expected True or False');
      return flag === 'True';
    }
    expect('(');
    const dims: number[] = [];
    for (;;) {
      skipSpace();
      if (text[at] === ')') break;
      const dim = word();
      if (!/^\d+L?$/.test(dim) || dim.length > 17) fail(`bad shape dimension ${quote(dim)}`);
      dims.push(Number.parseInt(dim, 10));
      skipSpace();
      if (text[at] === ',') at++;
      else if (text[at] !== ')') fail("expected ',' or ')' in the shape");
    }
    at++;
    return dims;
  };
  const found: Partial<Record<keyof HeaderDict, unknown>> = {};
  expect('{');
  for (;;) {
    skipSpace();
    if (text[at] === '}') break;
    const key = string();
    if (key !== 'descr' && key !== 'fortran_order' && key !== 'shape') fail(`unexpected key ${quote(key)}`);
    if (key in found) fail(`key ${quote(key)} is given twice`);
    expect(':');
    found[key as keyof HeaderDict] = value(key);
    skipSpace();
    if (text[at] === ',') at++;
    else if (text[at] !== '}') fail("expected ',' or '}'");
  }
  at++;
  skipSpace();
  if (at < text.length) fail('text after the dict');
  for (const key of ['descr', 'fortran_order', 'shape'] as const)
    if (!(key in found)) fail(`no key '${key}'`);
  return found as HeaderDict;
}

/** Whether the element order in the file differs from C order (Fortran order with 2+ non-trivial axes). */
export function needsTranspose(header: {
  readonly shape: readonly number[];
  readonly fortranOrder?: boolean;
}): boolean {
  return header.fortranOrder === true && header.shape.filter((dim) => dim > 1).length > 1;
}

/** Reads a whole `.npy` file; Fortran-order arrays are reordered to C order. */
export function readNpy(bytes: Uint8Array, file?: string): NpyArray {
  const header = parseNpyHeader(bytes, file);
  checkDataPresent(header.dataBytes, bytes.length - header.dataOffset, file);
  const type = elementType(header.dtype, file);
  const data = decodeElements(bytes.subarray(header.dataOffset), type, shapeSize(header.shape));
  return {
    shape: header.shape,
    dtype: header.dtype,
    data: needsTranspose(header) ? fortranToC(data, header.shape) : data,
  };
}

/** Reorders column-major elements (first axis fastest) into row-major order (last axis fastest). */
function fortranToC(data: NpyData, shape: readonly number[]): NpyData {
  const out = data.slice();
  const strides: number[] = []; // of the column-major source
  let stride = 1;
  for (const dim of shape) {
    strides.push(stride);
    stride *= dim;
  }
  const index = shape.map(() => 0);
  let source = 0;
  for (let i = 0; i < data.length; i++) {
    out[i] = data[source];
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      index[axis]++;
      source += strides[axis];
      if (index[axis] < shape[axis]) break;
      source -= strides[axis] * shape[axis];
      index[axis] = 0;
    }
  }
  return out;
}

/** Rows and columns of a data matrix stored with `shape`: the first axis is samples, the rest are flattened. */
export function featureShape(shape: readonly number[], file?: string): { rows: number; cols: number } {
  if (shape.length === 0) throw badInput('a scalar is not a data set (need shape [samples, ...])', file);
  return { rows: shape[0], cols: shapeSize(shape.slice(1)) };
}

/** The array as an N x d float32 matrix: shape [N] → N x 1, [N, a, b] → N x a*b. */
export function toFeatureMatrix(array: NpyArray, file?: string): Matrix {
  const { rows, cols } = featureShape(array.shape, file);
  return matrix(rows, cols, toFloat32(array.data));
}

/**
 * Targets from an array. `kind` forces the reading; without it the rule is:
 * - an integer or bool dtype with shape [N] or [N, 1] → class ids;
 * - a float dtype with shape [N] whose values are all whole numbers ≥ 0 → class ids (labels saved as float);
 * - shape [N, C] (C ≥ 2) whose rows are one-hot (C - 1 zeros and a one) → the class ids of the ones
 *   (one-hot labels read as values would silently make the task a regression);
 * - anything else → real-valued targets, N x K float32 (shape [N] → N x 1).
 * Class ids must be whole numbers in [0, 2^31); the error names the first row that is not.
 */
export function toTargets(array: NpyArray, file?: string, kind?: Targets['kind']): Targets {
  const { rows } = featureShape(array.shape, file);
  const columnShaped = array.shape.length === 1 || (array.shape.length === 2 && array.shape[1] === 1);
  const integerDtype = /^[<>|=]?[biu]/.test(array.dtype);
  if (kind !== 'values' && isOneHot(array)) {
    const classes = array.shape[1];
    const ids = new Int32Array(rows);
    for (let row = 0; row < rows; row++)
      ids[row] = array.data.subarray(row * classes, (row + 1) * classes).indexOf(1);
    return { kind: 'classes', values: ids, readFrom: 'one-hot' };
  }
  const resolved =
    kind ??
    ((integerDtype && columnShaped) || (array.shape.length === 1 && array.data.every(isClassId))
      ? 'classes'
      : 'values');
  if (resolved === 'values') {
    const values = toFeatureMatrix(array, file);
    checkFinite(values.data, values.cols, file ?? 'targets', { what: 'targets', column: 'column' });
    return { kind: 'values', values };
  }
  if (!columnShaped) {
    throw badInput(`class ids need shape [N] or [N, 1], got [${array.shape.join(', ')}]`, file);
  }
  const ids = new Int32Array(rows);
  for (let row = 0; row < rows; row++) {
    const value = array.data[row];
    if (!isClassId(value)) {
      const problem =
        Number.isInteger(value) && value > 0
          ? 'is too large (at most 2^31 - 1)'
          : 'is not a whole number >= 0';
      throw badInput(`class id ${value} ${problem}`, file, `row ${row}`);
    }
    ids[row] = value;
  }
  return { kind: 'classes', values: ids };
}

/** Shape [N, C ≥ 2], every row C - 1 zeros and a one. */
function isOneHot(array: NpyArray): boolean {
  if (array.shape.length !== 2 || array.shape[1] < 2 || array.shape[0] === 0) return false;
  const classes = array.shape[1];
  for (let row = 0; row < array.shape[0]; row++) {
    let ones = 0;
    for (let c = 0; c < classes; c++) {
      const value = array.data[row * classes + c];
      if (value === 1) ones++;
      else if (value !== 0) return false;
    }
    if (ones !== 1) return false;
  }
  return true;
}

function isClassId(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < 2 ** 31;
}

const WRITABLE: [new (...args: never[]) => NpyData, string][] = [
  [Float32Array, 'f4'],
  [Float64Array, 'f8'],
  [Int8Array, 'i1'],
  [Uint8Array, 'u1'],
  [Int16Array, 'i2'],
  [Uint16Array, 'u2'],
  [Int32Array, 'i4'],
  [Uint32Array, 'u4'],
];

/** Encodes an array as a C-order `.npy` (version 1.0, or 2.0 when the header needs it), in host byte order. */
export function writeNpy(array: { readonly shape: readonly number[]; readonly data: NpyData }): Uint8Array {
  const { shape, data } = array;
  if (shape.some((dim) => !Number.isSafeInteger(dim) || dim < 0) || shapeSize(shape) !== data.length) {
    throw new RangeError(`shape [${shape.join(', ')}] does not hold ${data.length} values`);
  }
  const code = WRITABLE.find(([type]) => data instanceof type)![1];
  const order = data.BYTES_PER_ELEMENT === 1 ? '|' : HOST_LITTLE_ENDIAN ? '<' : '>';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${order}${code}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // the header (and so the data) ends on a 64-byte boundary, as NumPy writes it
  const version = dict.length + 1 + 10 <= 0xffff ? 1 : 2;
  const prelude = version === 1 ? 10 : 12;
  const dataOffset = Math.ceil((prelude + dict.length + 1) / 64) * 64;
  const out = new Uint8Array(dataOffset + data.byteLength);
  out.set(MAGIC);
  out[6] = version;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, dataOffset - prelude, true);
  else view.setUint32(8, dataOffset - prelude, true);
  out.set(new TextEncoder().encode(dict.padEnd(dataOffset - prelude - 1, ' ') + '\n'), prelude);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), dataOffset);
  return out;
}
