/**
 * ONNX tensors in and out: TensorProto / SparseTensorProto values as typed arrays, with every size
 * checked against the data present before anything is allocated (a forged file costs nothing).
 */
import type { onnx as OnnxTypes } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import type { EcpruneError, EcpruneErrorCode } from '../../errors.js';
import { float16Bits } from '../ecsr.js';
import { float16, HOST_LITTLE_ENDIAN } from '../npy.js';

const { onnx } = onnxProto;
export type TensorProto = OnnxTypes.ITensorProto;
export type SparseTensorProto = OnnxTypes.ISparseTensorProto;
/** protobufjs gives int64 fields as numbers or Long objects */
export type Int64 = number | { toNumber(): number };

export const { FLOAT, FLOAT16, DOUBLE, INT32, INT64 } = onnx.TensorProto.DataType;
/** A sparse tensor's dense size is not bounded by the file size: refuse forged dims before allocating. */
const MAX_DENSE_VALUES = 2 ** 28;

/** An int64 as a number; NaN when it is not a safe integer. */
export function int(value: Int64 | null | undefined): number {
  const n = value == null ? 0 : typeof value === 'number' ? value : value.toNumber();
  return Number.isSafeInteger(n) ? n : Number.NaN;
}

/** Weights, biases and data constants are floats; shapes and axes are ints. */
export type NumberKind = 'float' | 'int';

interface ElementType {
  readonly kind: NumberKind;
  readonly bytes: number;
  /** one element of raw_data (always little-endian) */
  raw(view: DataView, offset: number): number;
  /** the typed field that holds the values when raw_data is empty */
  field(t: TensorProto): ArrayLike<number> | null | undefined;
}

/** How ONNX stores the element types ecprune accepts. */
function elementType(dataType: number | null | undefined): ElementType | undefined {
  switch (dataType) {
    case FLOAT:
      return { kind: 'float', bytes: 4, raw: (v, o) => v.getFloat32(o, true), field: (t) => t.floatData };
    case DOUBLE:
      return { kind: 'float', bytes: 8, raw: (v, o) => v.getFloat64(o, true), field: (t) => t.doubleData };
    case FLOAT16: // the 16 bits of each value sit in int32_data
      return {
        kind: 'float',
        bytes: 2,
        raw: (v, o) => float16(v.getUint16(o, true)),
        field: (t) => t.int32Data?.map(float16),
      };
    case INT32:
      return { kind: 'int', bytes: 4, raw: (v, o) => v.getInt32(o, true), field: (t) => t.int32Data };
    case INT64:
      return {
        kind: 'int',
        bytes: 8,
        raw: (v, o) => Number(v.getBigInt64(o, true)),
        field: (t) => t.int64Data?.map(int),
      };
    default:
      return undefined;
  }
}

/** Values: float32 and float16 in a Float32Array, float64 and ints in a Float64Array. */
export interface DecodedTensor {
  readonly dims: number[];
  readonly values: Float32Array | Float64Array;
  readonly dataType: number;
}

export function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Makes the error for a problem with a tensor, naming the file and the node that uses it. */
export type Fail = (detail: string, code?: EcpruneErrorCode) => EcpruneError;

function tensorDims(dims: Int64[] | null | undefined, what: string, fail: Fail): number[] {
  const out = (dims ?? []).map(int);
  if (out.some((d) => !(d >= 0))) throw fail(`${what} has invalid dims [${out.join(', ')}]`);
  return out;
}

/** The values of a dense tensor of `kind` (either when undefined). */
export function decodeTensor(t: TensorProto, kind: NumberKind | undefined, fail: Fail): DecodedTensor {
  const what = `tensor '${t.name ?? ''}'`;
  const type = elementType(t.dataType);
  if (type === undefined || (kind !== undefined && type.kind !== kind)) {
    const typeName = onnx.TensorProto.DataType[t.dataType ?? 0] ?? t.dataType;
    const expected =
      kind === 'float'
        ? 'FLOAT, FLOAT16 or DOUBLE'
        : kind === 'int'
          ? 'INT32 or INT64'
          : 'a float or int type';
    throw fail(`${what} has element type ${typeName}; expected ${expected}`, 'unsupported');
  }
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw fail(
      `${what} keeps its data in an external file; ecprune reads self-contained .onnx files`,
      'unsupported',
    );
  }
  const dims = tensorDims(t.dims, what, fail);
  const count = product(dims);
  const raw = t.rawData ?? new Uint8Array(0);
  const field = raw.length > 0 ? undefined : (type.field(t) ?? []);
  const present = field === undefined ? raw.length / type.bytes : field.length;
  if (present !== count) {
    throw fail(`${what} has dims [${dims.join(', ')}] (${count} values) but holds ${present} values`);
  }
  const wide = type.kind === 'int' || t.dataType === DOUBLE;
  const values = wide ? new Float64Array(count) : new Float32Array(count);
  if (field !== undefined) values.set(field);
  else {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < count; i++) values[i] = type.raw(view, i * type.bytes);
  }
  return { dims, values, dataType: t.dataType ?? FLOAT };
}

/** A sparse tensor made dense; its indices are [NNZ] positions in the flat tensor or [NNZ, rank] coordinates. */
export function densify(sparse: SparseTensorProto, kind: NumberKind | undefined, fail: Fail): DecodedTensor {
  const what = `sparse tensor '${sparse.values?.name ?? ''}'`;
  const dims = tensorDims(sparse.dims, what, fail);
  const count = product(dims);
  if (count > MAX_DENSE_VALUES) {
    throw fail(`${what} has dims [${dims.join(', ')}]: too many values (${count})`, 'limit');
  }
  const { values, dataType } = decodeTensor(sparse.values ?? {}, kind, fail);
  const indices = decodeTensor(sparse.indices ?? { dataType: INT64 }, 'int', fail);
  const nnz = values.length;
  const [rows, cols] = indices.dims;
  const linear = indices.dims.length === 1 && rows === nnz;
  if (!linear && !(indices.dims.length === 2 && rows === nnz && cols === dims.length)) {
    throw fail(`${what} has ${nnz} values but indices of shape [${indices.dims.join(', ')}]`);
  }
  // every index is checked before the dense tensor is allocated
  const positions = new Float64Array(nnz);
  for (let k = 0; k < nnz; k++) {
    let position = linear ? indices.values[k] : 0;
    let inRange = position >= 0 && position < count;
    for (let d = 0; !linear && d < dims.length; d++) {
      const coordinate = indices.values[k * dims.length + d];
      inRange &&= coordinate >= 0 && coordinate < dims[d];
      position = position * dims[d] + coordinate;
    }
    if (!inRange) throw fail(`${what}: index ${k} points outside dims [${dims.join(', ')}]`);
    positions[k] = position;
  }
  const dense = values instanceof Float64Array ? new Float64Array(count) : new Float32Array(count);
  for (let k = 0; k < nnz; k++) dense[positions[k]] = values[k];
  return { dims, values: dense, dataType };
}

/** A tensor of `values` in little-endian raw_data, as float32, float64, float16 or int64. */
export function encodeTensor(
  name: string,
  dims: readonly number[],
  values: ArrayLike<number>,
  dataType: number,
): TensorProto {
  if (dataType === FLOAT && HOST_LITTLE_ENDIAN) {
    // the host's own layout: one bulk copy (a DataView per element took ~0.1 s for 1.9M weights)
    const rawData = new Uint8Array(Float32Array.from(values).buffer);
    return { name, dims: [...dims], dataType, rawData };
  }
  const size = dataType === FLOAT16 ? 2 : dataType === FLOAT ? 4 : 8;
  const bytes = new Uint8Array(values.length * size);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    if (dataType === FLOAT) view.setFloat32(i * size, values[i], true);
    else if (dataType === DOUBLE) view.setFloat64(i * size, values[i], true);
    else if (dataType === FLOAT16) view.setUint16(i * size, float16Bits(values[i]), true);
    else view.setBigInt64(i * size, BigInt(values[i]), true);
  }
  return {
    name,
    dims: [...dims],
    dataType: dataType === FLOAT16 || dataType === DOUBLE ? dataType : dataType === FLOAT ? FLOAT : INT64,
    rawData: bytes,
  };
}

/** The nonzero entries of `values` as a SparseTensorProto with [NNZ] linear indices. */
export function sparseTensor(
  name: string,
  dims: readonly number[],
  values: ArrayLike<number>,
  dataType = FLOAT,
): SparseTensorProto {
  const positions: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) positions.push(i);
  const nnz = [positions.length];
  return {
    values: encodeTensor(
      name,
      nnz,
      positions.map((i) => values[i]),
      dataType,
    ),
    indices: encodeTensor(`${name}_indices`, nnz, positions, INT64),
    dims: [...dims],
  };
}
