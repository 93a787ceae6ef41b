import { EcpruneError } from '../errors.js';
import { type Matrix, rowSlice } from '../model/matrix.js';

/** Supervision for a data set: integer class ids, or real-valued targets (N x K). */
export type Targets =
  | {
      readonly kind: 'classes';
      readonly values: Int32Array;
      /** 'one-hot' when the file held one-hot rows, read as the class of their one */
      readonly readFrom?: 'one-hot';
    }
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
  /**
   * All targets, when the data set holds them in memory (file-backed sets read targets whole), so
   * that they can be checked against a model before any work. Optional: a data set may omit it.
   */
  readonly targets?: Targets;
  /**
   * Batches of at most `batchSize` samples (a whole number >= 1, else an EcpruneError is thrown
   * by the call itself). Inputs are finite: a NaN or ±Infinity is an EcpruneError naming the
   * sample; file-backed sets check each batch as it is read, so that error may come after earlier
   * batches were processed.
   */
  batches(batchSize: number, options?: BatchOptions): AsyncIterable<Batch>;
}

export interface BatchOptions {
  /**
   * The consumer is done with a batch's arrays before it asks for the next one, so a file-backed
   * set may read every batch into the same buffer instead of fresh memory (the calibration pass:
   * fresh pages cost 3-4.6 ms per MB on the VM of bench/ANALYSIS.md). Default false.
   */
  readonly reuseBuffers?: boolean;
}

/** Refuses a batch size that is not a whole number >= 1 (0 would never finish a pass). */
export function checkBatchSize(batchSize: number): number {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new EcpruneError('usage', `batch size must be a whole number >= 1, got ${batchSize}`);
  }
  return batchSize;
}

/**
 * Checks that `values` (row-major, `cols` per sample) are all finite; the error names the data
 * set, the first bad sample (0-based, counted from `firstSample`) and feature, and how many there
 * are. `scope` says which samples were checked (for a batch of a streamed file).
 */
export function checkFinite(
  values: ArrayLike<number>,
  cols: number,
  name: string,
  options: { firstSample?: number; what?: string; scope?: string; column?: string } = {},
): void {
  let first = -1;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // v - v is 0 for finite numbers and NaN for NaN and ±Infinity: one comparison per value
    if (v - v !== 0) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (count === 0) return;
  const width = Math.max(cols, 1);
  const sample = (options.firstSample ?? 0) + Math.floor(first / width);
  const where =
    cols > 1 ? `sample ${sample}, ${options.column ?? 'feature'} ${first % width}` : `sample ${sample}`;
  const scope = options.scope === undefined ? '' : ` ${options.scope}`;
  throw new EcpruneError(
    'input',
    `${values[first]} in the ${options.what ?? 'inputs'}: ${count} non-finite value${count === 1 ? '' : 's'} (NaN or ±Infinity)${scope}, the first here`,
    name,
    where,
  );
}

/** Targets must be finite too (class ids are integers by construction). */
export function checkFiniteTargets(targets: Targets, name: string): void {
  if (targets.kind === 'values') {
    checkFinite(targets.values.data, targets.values.cols, name, { what: 'targets', column: 'column' });
  }
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

/**
 * A data set held in memory (tests, the browser, small files). Its inputs and targets are checked
 * here, once: every value finite (unless `allowNonFinite`), as many targets as samples.
 */
export function inMemoryDataset(
  x: Matrix,
  y?: Targets,
  name = 'data',
  options: { allowNonFinite?: boolean } = {},
): Dataset {
  if (y !== undefined && targetCount(y) !== x.rows) {
    throw new EcpruneError('input', `${targetCount(y)} targets for ${x.rows} samples`, name);
  }
  if (!options.allowNonFinite) checkFinite(x.data, x.cols, name);
  if (y !== undefined) checkFiniteTargets(y, name);
  async function* batches(batchSize: number): AsyncGenerator<Batch> {
    for (let start = 0; start < x.rows; start += batchSize) {
      const end = Math.min(x.rows, start + batchSize);
      yield { x: rowSlice(x, start, end), y: y && sliceTargets(y, start, end) };
    }
  }
  return {
    name,
    samples: x.rows,
    features: x.cols,
    targetKind: y?.kind,
    ...(y === undefined ? {} : { targets: y }),
    batches: (batchSize: number) => batches(checkBatchSize(batchSize)),
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
  async function* batches(batchSize: number): AsyncGenerator<Batch> {
    let left = count;
    for await (const batch of data.batches(Math.max(1, Math.min(batchSize, count)))) {
      if (left <= 0) return;
      const take = Math.min(left, batch.x.rows);
      yield take === batch.x.rows
        ? batch
        : { x: rowSlice(batch.x, 0, take), y: batch.y && sliceTargets(batch.y, 0, take) };
      left -= take;
    }
  }
  return {
    ...data,
    name: `${data.name} (first ${count})`,
    samples: count,
    ...(data.targets === undefined ? {} : { targets: sliceTargets(data.targets, 0, count) }),
    batches: (batchSize: number) => batches(checkBatchSize(batchSize)),
  };
}
