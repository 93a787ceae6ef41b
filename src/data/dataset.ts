import { EcpruneError } from '../errors.js';
import { type Matrix, rowSlice } from '../model/matrix.js';

/** Supervision for a data set: integer class ids, or real-valued targets (N x K). */
export type Targets =
  | { readonly kind: 'classes'; readonly values: Int32Array }
  | { readonly kind: 'values'; readonly values: Matrix };

export interface Batch {
  /** B x d inputs */
  readonly x: Matrix;
  /** targets of the same B samples, when the data set has them */
  readonly y?: Targets;
}

/**
 * A data set read in batches, so that statistics over N samples never hold N samples in memory.
 * File-backed implementations (see `ecprune/node`) read each batch from disk on demand.
 * `batches` may be called any number of times; each call starts from the first sample.
 */
export interface Dataset {
  /** where the data came from, for error messages ("calib.npy", "mnist:test") */
  readonly name: string;
  readonly samples: number;
  readonly features: number;
  readonly targetKind?: Targets['kind'];
  batches(batchSize: number): AsyncIterable<Batch>;
}

/** Rows [start, end) of a target set. */
export function sliceTargets(y: Targets, start: number, end: number): Targets {
  return y.kind === 'classes'
    ? { kind: 'classes', values: y.values.subarray(start, end) }
    : { kind: 'values', values: rowSlice(y.values, start, end) };
}

export function targetCount(y: Targets): number {
  return y.kind === 'classes' ? y.values.length : y.values.rows;
}

/** A data set held in memory (tests, the browser, small files). */
export function inMemoryDataset(x: Matrix, y?: Targets, name = 'data'): Dataset {
  if (y !== undefined && targetCount(y) !== x.rows) {
    throw new EcpruneError('input', `${targetCount(y)} targets for ${x.rows} samples`, name);
  }
  return {
    name,
    samples: x.rows,
    features: x.cols,
    targetKind: y?.kind,
    async *batches(batchSize: number) {
      for (let start = 0; start < x.rows; start += batchSize) {
        const end = Math.min(x.rows, start + batchSize);
        yield { x: rowSlice(x, start, end), y: y && sliceTargets(y, start, end) };
      }
    },
  };
}

/** Reads a whole data set into memory (for small sets: training, the exact nonlinear reference). */
export async function materialize(data: Dataset): Promise<{ x: Matrix; y?: Targets }> {
  const x = new Float32Array(data.samples * data.features);
  const classIds = data.targetKind === 'classes' ? new Int32Array(data.samples) : undefined;
  let values: Float32Array | undefined;
  let valueCols = 0;
  let row = 0;
  for await (const batch of data.batches(4096)) {
    x.set(batch.x.data, row * data.features);
    if (batch.y?.kind === 'classes') classIds!.set(batch.y.values, row);
    if (batch.y?.kind === 'values') {
      valueCols = batch.y.values.cols;
      values ??= new Float32Array(data.samples * valueCols);
      values.set(batch.y.values.data, row * valueCols);
    }
    row += batch.x.rows;
  }
  const xm = { rows: data.samples, cols: data.features, data: x };
  if (classIds) return { x: xm, y: { kind: 'classes', values: classIds } };
  if (values)
    return { x: xm, y: { kind: 'values', values: { rows: data.samples, cols: valueCols, data: values } } };
  return { x: xm };
}

/** The first `count` samples of a data set (e.g. a calibration slice of a training set). */
export function firstSamples(data: Dataset, count: number): Dataset {
  if (count >= data.samples) return data;
  return {
    ...data,
    name: `${data.name} (first ${count})`,
    samples: count,
    async *batches(batchSize: number) {
      let left = count;
      for await (const batch of data.batches(Math.min(batchSize, count))) {
        if (left <= 0) return;
        const take = Math.min(left, batch.x.rows);
        yield take === batch.x.rows
          ? batch
          : { x: rowSlice(batch.x, 0, take), y: batch.y && sliceTargets(batch.y, 0, take) };
        left -= take;
      }
    },
  };
}
