import { type FloatArray, zerosLike } from '../model/matrix.js';

/**
 * The values that flow along a graph's edges: row-major arrays with a full shape. A *data* tensor
 * (one that depends on the graph's input) has the batch as its first dimension; a cotangent of a
 * data tensor has `repeat` rows per sample (R cotangents of each sample, sample-major), so its
 * first dimension is B·R. Constants and shape values have any shape and broadcast NumPy-style
 * against the per-sample part.
 *
 * float32 is what models run in; float64 is the same code at higher precision (the finite-difference
 * tests of every op's vector-Jacobian product run through the graph in float64).
 */
export type TensorData = FloatArray;

export interface Tensor {
  readonly shape: readonly number[];
  readonly data: TensorData;
}

export function tensor(shape: readonly number[], data: TensorData): Tensor {
  const size = sizeOf(shape);
  if (data.length !== size) throw new RangeError(`shape [${shape}] needs ${size} values, got ${data.length}`);
  return { shape, data };
}

export function sizeOf(shape: readonly number[]): number {
  let size = 1;
  for (const n of shape) size *= n;
  return size;
}

export { zerosLike };

/** Values per sample of a data tensor or cotangent (everything after the first dimension). */
export function perSampleSize(t: Tensor): number {
  return sizeOf(t.shape.slice(1));
}

/**
 * For broadcasting `operand` against the per-sample shape `out` of a data tensor: for each flat
 * per-sample index of `out`, the flat index into the operand's per-sample values, and the operand's
 * per-sample size (0 when it has no batch dimension: a constant, the same for every sample).
 * `batched` says whether the operand is a data tensor (its first dimension is the batch).
 */
export function broadcastIndex(
  operandShape: readonly number[],
  batched: boolean,
  out: readonly number[],
): { readonly index: Int32Array; readonly stride: number } {
  let shape = batched ? operandShape.slice(1) : operandShape.slice();
  // a constant of the full rank carries a leading 1 for the batch
  if (!batched && shape.length === out.length + 1) {
    if (shape[0] !== 1)
      throw new RangeError(`a constant of shape [${operandShape}] does not broadcast over the batch`);
    shape = shape.slice(1);
  }
  if (shape.length > out.length)
    throw new RangeError(`shape [${operandShape}] does not broadcast to [·,${out}]`);
  const padded = [...new Array(out.length - shape.length).fill(1), ...shape];
  const strides = new Array(out.length).fill(0);
  let stride = 1;
  for (let d = out.length - 1; d >= 0; d--) {
    if (padded[d] !== out[d] && padded[d] !== 1) {
      throw new RangeError(`shape [${operandShape}] does not broadcast to [·,${out}]`);
    }
    strides[d] = padded[d] === 1 ? 0 : stride;
    stride *= padded[d];
  }
  const size = sizeOf(out);
  const index = new Int32Array(size);
  const counter = new Array(out.length).fill(0);
  for (let i = 0; i < size; i++) {
    let offset = 0;
    for (let d = 0; d < out.length; d++) offset += counter[d] * strides[d];
    index[i] = offset;
    for (let d = out.length - 1; d >= 0; d--) {
      if (++counter[d] < out[d]) break;
      counter[d] = 0;
    }
  }
  return { index, stride: batched ? stride : 0 };
}

/**
 * The broadcast per-sample shape of the operands of an op on data tensors: data tensors drop their
 * batch dimension, constants of the data tensors' full rank drop their leading 1.
 */
export function broadcastShape(
  operands: readonly { shape: readonly number[]; batched: boolean }[],
): number[] {
  const batchedRank = Math.max(...operands.filter((o) => o.batched).map((o) => o.shape.length));
  const shapes = operands.map(({ shape, batched }) =>
    batched || shape.length === batchedRank ? shape.slice(1) : shape.slice(),
  );
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    s.forEach((n, d) => {
      const at = rank - s.length + d;
      if (out[at] === 1) out[at] = n;
      else if (n !== 1 && n !== out[at])
        throw new RangeError(`shapes [${shapes.join('], [')}] do not broadcast`);
    });
  }
  return out;
}
