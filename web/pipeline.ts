/**
 * What the demo page does, without the page: files in (bytes), the pruning study, the chart, the
 * pruned model's file out. A thin layer over the library, like the CLI; no DOM here, so the Node
 * tests run it too (test/web/pipeline.test.ts).
 */
import { strToU8, zipSync } from 'fflate';
import {
  type CalibrationStatistics,
  type Dataset,
  DEFAULT_RECIPE,
  EcpruneError,
  evaluate,
  type FrozenPrefix,
  formatVariant,
  type Gemm,
  type Graph,
  inMemoryDataset,
  type KeepMask,
  materialize,
  nonzeroWeightCount,
  type OnnxTemplate,
  type PruneOptions,
  parseVariant,
  prune,
  readNpy,
  readOnnx,
  reusesStatistics,
  throughPrefix,
  toFeatureMatrix,
  toTargets,
  VERSION,
  writeOnnx,
} from '../src/core.js';
import { inputSize } from '../src/graph/graph.js';
import { frozenPrefixOf } from '../src/io/onnx.js';
import { readTfjs, type TfjsTemplate, writeTfjs } from '../src/io/tfjs.js';
import type { SweepRow } from '../src/pipeline/sweep.js';
import { type EvaluatedOn, type RenderedChart, renderCharts } from '../src/report/charts.js';

export interface NamedBytes {
  readonly name: string;
  readonly bytes: Uint8Array;
}

/** A model as read, with what is needed to write it back in its own format. */
export interface WebModel {
  readonly name: string;
  /** the model's graph: residuals, normalisations and heads included */
  readonly graph: Graph;
  readonly onnx?: OnnxTemplate;
  readonly tfjs?: TfjsTemplate;
  /** ops before the first fully-connected layer (a CNN's features), run forward-only in onnxruntime-web */
  readonly prefix?: FrozenPrefix;
}

const baseName = (path: string) => path.slice(path.lastIndexOf('/') + 1);
const hasExtension = (file: NamedBytes, extension: string) => file.name.toLowerCase().endsWith(extension);

/** An ONNX file, or a TF.js model.json with its .bin shards (found among `files` by name). */
export function readModelFiles(files: readonly NamedBytes[]): WebModel {
  const json = files.find((file) => hasExtension(file, '.json'));
  if (json !== undefined) {
    const shard = (path: string) => {
      const found = files.find((file) => file.name === baseName(path));
      if (found === undefined) {
        throw new EcpruneError(
          'input',
          `weight shard '${path}' is missing: pick it together with the model.json`,
          json.name,
        );
      }
      return found.bytes;
    };
    const { graph, template } = readTfjs(new TextDecoder().decode(json.bytes), shard, json.name);
    return { name: json.name, graph, tfjs: template };
  }
  const onnx =
    files.find((file) => hasExtension(file, '.onnx')) ?? (files.length === 1 ? files[0] : undefined);
  if (onnx === undefined) {
    throw new EcpruneError('usage', 'choose an .onnx file, or a TF.js model.json with its .bin weight files');
  }
  const read = readOnnx(onnx.bytes, onnx.name);
  return { name: onnx.name, graph: read.graph, onnx: read.template, prefix: frozenPrefixOf(read, onnx.name) };
}

/** Inputs from a .npy (N x ...), with optional targets from another .npy: calibration or held-out data. */
export function readData(inputs: NamedBytes, labels?: NamedBytes): Dataset {
  const x = toFeatureMatrix(readNpy(inputs.bytes, inputs.name), inputs.name);
  const y = labels && toTargets(readNpy(labels.bytes, labels.name), labels.name);
  return inMemoryDataset(x, y, inputs.name);
}

/** The sparsities of the curves. */
export const CURVE_SPARSITIES = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/** prune's default recipe by name (`ec+loss+steps5+alpha`): what the page offers first. */
export const DEFAULT_RECIPE_NAME = formatVariant(DEFAULT_RECIPE);

/** The recipes drawn next to the chosen one: prune's default, the paper's EC and the simplest baseline. */
export const COMPARED: readonly string[] = [DEFAULT_RECIPE_NAME, 'ec', 'magnitude'];

/**
 * A recipe name as prune's options. The default recipe's name names no method, so that prune
 * resolves it as the CLI does without method flags (its loss from the model's head or outputs).
 */
function recipeOptions(name: string): PruneOptions {
  return name === DEFAULT_RECIPE_NAME ? {} : parseVariant(name);
}

/**
 * `data` as the fully-connected part sees it: through the model's frozen prefix (computed once,
 * in onnxruntime-web), or as it is.
 */
export async function dataForLayers(model: WebModel, data: Dataset, gemm: Gemm): Promise<Dataset> {
  if (model.prefix === undefined) return data;
  const { x, y } = await materialize(throughPrefix(data, model.prefix, gemm, inputSize(model.graph)));
  return inMemoryDataset(x, y, data.name);
}

export interface StudyOptions {
  /** a recipe name: the default recipe's (DEFAULT_RECIPE_NAME), a method, or a method with modifiers */
  readonly method: string;
  readonly sparsity: number;
  readonly gemm: Gemm;
  readonly seed?: number;
  /** held-out inputs with labels: accuracy and loss are measured on them, else on the calibration data */
  readonly heldOut?: Dataset;
  /** after each step; the page awaits it to repaint */
  readonly onStep?: (done: number, total: number, label: string) => void | Promise<void>;
}

export interface Study {
  /** the dense model, then one row per method and curve sparsity, measured on `evaluatedOn` against it */
  readonly rows: SweepRow[];
  /** the chosen method at the chosen sparsity */
  readonly pruned: Graph;
  readonly keepMasks: KeepMask[];
  readonly method: string;
  readonly sparsity: number;
  readonly calibrationSamples: number;
  /** what accuracy, loss and output error were measured on */
  readonly evaluatedOn: EvaluatedOn & { readonly samples: number };
  /** accuracy (class labels) and loss (any labels) of the dense model on `evaluatedOn` */
  readonly dense: { accuracy?: number; loss?: number };
  readonly chosen: { accuracy?: number; loss?: number; outputMse: number };
}

/**
 * The chosen method, EC and magnitude along CURVE_SPARSITIES, measured on the held-out data when
 * given (else the calibration data), and the chosen method at the chosen sparsity.
 */
export async function runStudy(model: WebModel, calibration: Dataset, options: StudyOptions): Promise<Study> {
  const { gemm } = options;
  if (options.heldOut !== undefined && options.heldOut.targetKind === undefined) {
    throw new EcpruneError(
      'usage',
      'held-out data needs its labels (.npy of class ids or values)',
      options.heldOut.name,
    );
  }
  const methods = [...new Set([options.method, ...COMPARED])];
  const total = methods.length * CURVE_SPARSITIES.length + 3;
  let done = 0;
  const step = async (label: string) => options.onStep?.(++done, total, label);
  const calibrationSeen = await dataForLayers(model, calibration, gemm);
  const evaluated = options.heldOut ?? calibration;
  const evaluatedSeen = options.heldOut ? await dataForLayers(model, options.heldOut, gemm) : calibrationSeen;
  await step(model.prefix ? 'ran the frozen prefix' : 'read the data');
  const { graph } = model;
  const measure = (pruned: Graph) => evaluate(pruned, evaluatedSeen, { reference: graph, gemm });

  const rows: SweepRow[] = [];
  let chosen: { model: Graph; keepMasks: KeepMask[] } | undefined;
  for (const method of methods) {
    const recipe = recipeOptions(method);
    // one-shot recipes: one calibration pass serves every sparsity of the curve
    let statistics: CalibrationStatistics | undefined;
    const pruneAt = async (sparsity: number) => {
      const result = await prune(graph, calibrationSeen, {
        ...recipe,
        sparsity,
        gemm,
        seed: options.seed,
        statistics,
      });
      if (reusesStatistics(recipe)) statistics = result.statistics;
      return result;
    };
    for (const sparsity of CURVE_SPARSITIES) {
      const { model, keepMasks } = await pruneAt(sparsity);
      const pruned = model as Graph; // weight pruning keeps the graph
      const result = await measure(pruned);
      rows.push({
        method,
        scope: 'global',
        sparsity,
        finetuneEpochs: 0,
        testLoss: result.meanLoss ?? Number.NaN,
        accuracy: result.accuracy,
        testMse: result.loss === 'mse' ? result.meanLoss : undefined,
        outputMse: result.outputMse!,
        layerSparsity: keepMasks.map((mask) => 1 - mask.reduce((n, keep) => n + keep, 0) / mask.length),
        nonzero: nonzeroWeightCount(pruned),
        ms: 0,
      });
      await step(`${method} at sparsity ${sparsity}`);
    }
    if (method === options.method) {
      const { model, keepMasks } = await pruneAt(options.sparsity);
      chosen = { model: model as Graph, keepMasks };
      await step(`${method} at the chosen sparsity ${options.sparsity}`);
    }
  }
  const [dense, pruned] = await Promise.all([measure(graph), measure(chosen!.model)]);
  await step('done');
  // the dense model first, as in a sweep: the charts draw it as the reference rule
  const denseRow: SweepRow = {
    method: 'dense',
    scope: 'global',
    sparsity: 0,
    finetuneEpochs: 0,
    testLoss: dense.meanLoss ?? Number.NaN,
    accuracy: dense.accuracy,
    testMse: dense.loss === 'mse' ? dense.meanLoss : undefined,
    outputMse: 0,
    layerSparsity: graph.layers.map(() => 0),
    nonzero: nonzeroWeightCount(graph),
    ms: 0,
  };
  return {
    rows: [denseRow, ...rows],
    pruned: chosen!.model,
    keepMasks: chosen!.keepMasks,
    method: options.method,
    sparsity: options.sparsity,
    calibrationSamples: calibration.samples,
    evaluatedOn: { name: evaluated.name, heldOut: options.heldOut !== undefined, samples: evaluated.samples },
    dense: { accuracy: dense.accuracy, loss: dense.meanLoss },
    chosen: { accuracy: pruned.accuracy, loss: pruned.meanLoss, outputMse: pruned.outputMse! },
  };
}

/**
 * The study's charts as SVG strings, the report's own: accuracy and loss (when the data has
 * labels) and the output error, with the same marks (best method ringed, off-axis points valued).
 */
export async function studyCharts(study: Study): Promise<RenderedChart[]> {
  const charts = await renderCharts(study.rows, { evaluatedOn: study.evaluatedOn });
  return charts.filter((chart) => chart.name !== 'layer-sparsity');
}

/**
 * The pruned model in the input's format: an .onnx written with the input's graph template (a
 * frozen prefix kept as it was), or a TF.js model as one .zip holding model.json and its weight
 * shard (one download, loadable once unzipped).
 */
export function prunedModelFile(
  model: WebModel,
  study: Study,
  calibrationName: string,
): NamedBytes & { type: string } {
  const metadata = {
    ecprune_version: VERSION,
    ecprune_method: study.method,
    ecprune_sparsity: String(study.sparsity),
    ecprune_scope: 'global',
    ecprune_calibration_samples: String(study.calibrationSamples),
    ecprune_calibration: calibrationName,
  };
  const stem = model.name.replace(/\.[^.]*$/, '');
  if (model.tfjs !== undefined) {
    const { modelJson, shards } = writeTfjs(study.pruned, model.tfjs, { metadata });
    const bytes = zipSync({ 'model.json': strToU8(modelJson), ...Object.fromEntries(shards) });
    return { name: `${stem}-pruned-tfjs.zip`, bytes, type: 'application/zip' };
  }
  const bytes = writeOnnx(study.pruned, model.onnx, metadata);
  return { name: `${stem}-pruned.onnx`, bytes, type: 'application/octet-stream' };
}
