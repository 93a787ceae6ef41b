import { freemem, totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { type Dataset, firstSamples } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import type { LossKind } from '../graph/loss.js';
import type { ModelShape } from '../graph/run.js';
import { estimatePruneMemory, layerSizes, weightCount } from '../model/mlp.js';
import { openDataFile, openNamedDataset, type Split } from '../node/datasets.js';

export interface DataChoice {
  /** a data file (.npy, .npz, .csv, IDX) */
  readonly file?: string;
  /** its targets (class ids or values), when they are in a separate file */
  readonly labels?: string;
  /** a built-in data set instead of a file: mnist, fashion-mnist, diffusion-sorption */
  readonly dataset?: string;
  /** which part of a built-in data set */
  readonly split: Split;
  /** use only the first n samples */
  readonly samples?: number;
  readonly labelColumn?: string;
  readonly key?: string;
}

/** The files a choice reads (so that no output is ever written over one of them). */
export function inputFiles(choice: Partial<DataChoice>): string[] {
  return [choice.file, choice.labels].filter((f): f is string => f !== undefined);
}

export async function openData(choice: DataChoice, what: string): Promise<Dataset> {
  if ((choice.file === undefined) === (choice.dataset === undefined)) {
    throw new EcpruneError('usage', `give the ${what} data as a file or as --dataset NAME (one of the two)`);
  }
  if (choice.dataset !== undefined && choice.labels !== undefined) {
    throw new EcpruneError('usage', `--dataset ${choice.dataset} has its own labels; drop --labels`);
  }
  const data =
    choice.file !== undefined
      ? await openDataFile(choice.file, {
          targets: choice.labels,
          labelColumn: choice.labelColumn,
          key: choice.key,
        })
      : await openNamedDataset(choice.dataset!, choice.split);
  if (data.samples === 0) throw new EcpruneError('input', 'has no samples', data.name);
  if (data.targets?.kind === 'classes' && data.targets.readFrom === 'one-hot') {
    console.error(
      `ecprune: note: ${choice.labels ?? data.name}: one-hot rows, read as class ids (the column of each row's 1)`,
    );
  }
  return choice.samples === undefined ? data : firstSamples(data, choice.samples);
}

// ---------------------------------------------------------------------------------------------
// Checks before any work: the data against the model, the labels against the model and the loss,
// the memory a run needs against the memory there is.

/** The name the targets of a data choice go by in messages: the labels file, else the data's. */
export function targetsName(choice: Partial<DataChoice>, data: Dataset): string {
  return choice.labels ?? choice.file ?? data.name;
}

/** The data must have as many features per sample as the model has inputs. */
export function checkDataFitsModel(data: Dataset, model: ModelShape, modelFile: string): void {
  if (data.features !== model.inputs) {
    throw new EcpruneError(
      'input',
      `${data.features} features per sample, but the model (${modelFile}) takes ${model.inputs} inputs`,
      data.name,
    );
  }
}

/**
 * The targets (when the data set has them in memory) must suit the model and the loss: class ids
 * in [0, outputs), real values with one column per output, and class ids for cross-entropy.
 */
export function checkTargetsFit(data: Dataset, model: ModelShape, name: string, loss?: LossKind): void {
  const targets = data.targets;
  if (targets === undefined) return;
  const outputs = model.outputs;
  if (targets.kind === 'values') {
    if (loss === 'ce') {
      const values = targets.values.data;
      const row = Math.max(
        0,
        values.findIndex((v) => !Number.isInteger(v) || v < 0),
      );
      throw new EcpruneError(
        'input',
        `cross-entropy (--loss ce) needs class ids (whole numbers >= 0), but the targets are real values (${values[row]})`,
        name,
        `row ${Math.floor(row / Math.max(1, targets.values.cols))}`,
      );
    }
    if (targets.values.cols !== outputs) {
      throw new EcpruneError(
        'input',
        `the targets have ${targets.values.cols} columns, the model has ${outputs} outputs`,
        name,
      );
    }
    return;
  }
  const ids = targets.values;
  for (let row = 0; row < ids.length; row++) {
    if (ids[row] >= outputs) {
      throw new EcpruneError(
        'input',
        `class id ${ids[row]} is out of range for a model with ${outputs} outputs (0 to ${outputs - 1})`,
        name,
        `row ${row}`,
      );
    }
  }
}

/** Binary units, one decimal: `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `ECPRUNE_MEMORY_LIMIT`: bytes, or a number with a unit (`512MiB`, `2G`, `1.5GiB`). */
function parseMemoryLimit(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!match) {
    throw new EcpruneError(
      'usage',
      `ECPRUNE_MEMORY_LIMIT must be a size such as 4GiB or 500000000, got '${text}'`,
    );
  }
  return Number(match[1]) * 1024 ** ' kmgt'.indexOf((match[2] || ' ').toLowerCase());
}

/**
 * The memory a run may plan on: the physical memory (`os.totalmem()`), or the container's limit
 * when there is a lower one (`process.constrainedMemory()`), or `ECPRUNE_MEMORY_LIMIT`. Typed
 * arrays, which hold all the large data, live outside V8's heap, so its limit does not apply to
 * them; see `heapLimit`. Free memory is reported but not used as the bound: it changes from moment
 * to moment and the system reclaims caches on demand, so a run is only refused when it cannot
 * work at all.
 */
export function memoryLimit(): { bytes: number; source: string } {
  const configured = process.env.ECPRUNE_MEMORY_LIMIT;
  if (configured !== undefined && configured.trim() !== '') {
    return { bytes: parseMemoryLimit(configured), source: 'ECPRUNE_MEMORY_LIMIT' };
  }
  const total = totalmem();
  const constrained = process.constrainedMemory?.() ?? 0;
  return constrained > 0 && constrained < total
    ? { bytes: constrained, source: 'the container limit' }
    : { bytes: total, source: `physical memory, ${formatBytes(freemem())} free now` };
}

/** V8's heap limit: bounds plain JS arrays and objects (not typed arrays). */
export function heapLimit(): number {
  return getHeapStatistics().heap_size_limit;
}

/** Refuses a run that needs more memory than `memoryLimit()` (typed arrays) or the heap limit (JS arrays). */
export function checkMemory(required: number, what: string, file?: string, heapRequired = 0): void {
  const limit = memoryLimit();
  if (required > limit.bytes) {
    throw new EcpruneError(
      'limit',
      `${what} needs about ${formatBytes(required)} of memory (have ${formatBytes(limit.bytes)}: ${limit.source})`,
      file,
    );
  }
  const heap = heapLimit();
  if (heapRequired > heap) {
    throw new EcpruneError(
      'limit',
      `${what} needs about ${formatBytes(heapRequired)} of JavaScript heap (have ${formatBytes(heap)}; raise it with NODE_OPTIONS=--max-old-space-size=<MiB>)`,
      file,
    );
  }
}

/**
 * The memory check of `prune` and `score`: before the data is opened (`samples` undefined: the
 * model's part only), and again once its size is known, for batches of min(batch size, samples).
 */
export function checkPruneMemory(
  mlp: ModelShape,
  options: {
    batchSize: number;
    samples?: number;
    probes?: number;
    lossGradient?: boolean;
    sparseOnnx?: boolean;
    what: string;
    file?: string;
  },
): void {
  const batch = options.samples === undefined ? 0 : Math.min(options.batchSize, options.samples);
  const required = estimatePruneMemory(mlp, batch, options.probes ?? mlp.outputs, {
    lossGradient: options.lossGradient,
  });
  // --onnx-sparse lists the kept positions and values in plain arrays (about 32 bytes per weight)
  const heap = options.sparseOnnx ? 32 * weightCount(mlp) : 0;
  const batchText = batch > 0 ? ` with batches of ${batch} samples` : '';
  const what = `${options.what} ${layerSizes(mlp).join('-')} (${weightCount(mlp).toLocaleString('en')} weights)${batchText}`;
  checkMemory(required, what, options.file, heap);
}
