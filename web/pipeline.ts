/**
 * What the demo page does, without the page: files in (bytes), the pruning study, the chart, the
 * pruned model's file out. A thin layer over the library, like the CLI; no DOM here, so the Node
 * tests run it too (test/web/pipeline.test.ts).
 */
import { strToU8, zipSync } from 'fflate';
import {
  applyPruning,
  type Dataset,
  EcpruneError,
  evaluate,
  type Gemm,
  inMemoryDataset,
  type KeepMask,
  METHODS,
  type MethodName,
  type Mlp,
  nonzeroWeightCount,
  type OnnxTemplate,
  readNpy,
  readOnnx,
  type ScoreResult,
  score,
  selectMasks,
  toFeatureMatrix,
  toTargets,
  VERSION,
  writeOnnx,
} from '../src/core.js';
import { chainOf, graphFromMlp } from '../src/graph/mlp-graph.js';
import { readTfjs, type TfjsTemplate, writeTfjs } from '../src/io/tfjs.js';
import type { SweepRow } from '../src/pipeline/sweep.js';
import { buildCharts, renderSvg } from '../src/report/charts.js';

export interface NamedBytes {
  readonly name: string;
  readonly bytes: Uint8Array;
}

/** A model as read, with what is needed to write it back in its own format. */
export interface WebModel {
  readonly name: string;
  readonly mlp: Mlp;
  readonly onnx?: OnnxTemplate;
  readonly tfjs?: TfjsTemplate;
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
    const mlp = chainOf(graph);
    if (mlp === undefined)
      throw new EcpruneError(
        'unsupported',
        'is not a chain of Dense layers, which this page needs',
        json.name,
      );
    return { name: json.name, mlp, tfjs: template };
  }
  const onnx =
    files.find((file) => hasExtension(file, '.onnx')) ?? (files.length === 1 ? files[0] : undefined);
  if (onnx === undefined) {
    throw new EcpruneError('usage', 'choose an .onnx file, or a TF.js model.json with its .bin weight files');
  }
  const { graph, template } = readOnnx(onnx.bytes, onnx.name);
  const mlp = chainOf(graph);
  if (mlp === undefined)
    throw new EcpruneError('unsupported', 'the graph is not a chain of layers', onnx.name);
  return { name: onnx.name, mlp, onnx: template };
}

/** Calibration inputs from a .npy (N x ...), with optional targets from another .npy. */
export function readCalibration(inputs: NamedBytes, labels?: NamedBytes): Dataset {
  const x = toFeatureMatrix(readNpy(inputs.bytes, inputs.name), inputs.name);
  const y = labels && toTargets(readNpy(labels.bytes, labels.name), labels.name);
  return inMemoryDataset(x, y, inputs.name);
}

/** The sparsities of the error curve. */
export const CURVE_SPARSITIES = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/** The baseline drawn next to the chosen method. */
export const BASELINE: MethodName = 'magnitude';

/**
 * What `prune` does after scoring (src/prune.ts): select the lowest scores globally, zero them and,
 * for compensating methods, shift the biases. Scoring once per method and pruning here at every
 * sparsity saves a calibration pass per point of the curve.
 */
export function pruneScored(
  mlp: Mlp,
  scored: ScoreResult,
  sparsity: number,
): { model: Mlp; keepMasks: KeepMask[] } {
  const keepMasks = selectMasks(scored.importance, sparsity, 'global');
  const deltaBias = METHODS[scored.method].compensate ? scored.deltaBias : undefined;
  return { model: applyPruning(mlp, keepMasks, deltaBias), keepMasks };
}

export interface StudyOptions {
  readonly method: MethodName;
  readonly sparsity: number;
  readonly gemm?: Gemm;
  readonly seed?: number;
  /** after each step; the page awaits it to repaint */
  readonly onStep?: (done: number, total: number, label: string) => void | Promise<void>;
}

export interface Study {
  /** one row per method and curve sparsity, measured on the calibration data against the dense model */
  readonly rows: SweepRow[];
  /** the chosen method at the chosen sparsity */
  readonly pruned: Mlp;
  readonly keepMasks: KeepMask[];
  readonly method: MethodName;
  readonly sparsity: number;
  readonly calibrationSamples: number;
  /** on the calibration data; accuracy only with class labels */
  readonly dense: { accuracy?: number };
  readonly chosen: { accuracy?: number; outputMse: number };
}

/** The chosen method and the baseline along CURVE_SPARSITIES, and the chosen method at the chosen sparsity. */
export async function runStudy(mlp: Mlp, calibration: Dataset, options: StudyOptions): Promise<Study> {
  const methods = [...new Set([options.method, BASELINE])];
  const total = methods.length * (1 + CURVE_SPARSITIES.length) + 1;
  let done = 0;
  const step = async (label: string) => options.onStep?.(++done, total, label);
  const measure = (model: Mlp) => evaluate(model, calibration, { reference: mlp, gemm: options.gemm });

  const rows: SweepRow[] = [];
  let chosen: { model: Mlp; keepMasks: KeepMask[] } | undefined;
  for (const method of methods) {
    const scored = await score(mlp, calibration, { method, gemm: options.gemm, seed: options.seed });
    await step(`scored ${method}`);
    if (method === options.method) chosen = pruneScored(mlp, scored, options.sparsity);
    for (const sparsity of CURVE_SPARSITIES) {
      const { model, keepMasks } = pruneScored(mlp, scored, sparsity);
      const result = await measure(model);
      rows.push({
        method,
        scope: 'global',
        sparsity,
        finetuneEpochs: 0,
        testLoss: result.meanLoss ?? Number.NaN,
        accuracy: result.accuracy,
        outputMse: result.outputMse!,
        layerSparsity: keepMasks.map((mask) => 1 - mask.reduce((n, keep) => n + keep, 0) / mask.length),
        nonzero: nonzeroWeightCount(model),
        ms: 0,
      });
      await step(`${method} at sparsity ${sparsity}`);
    }
  }
  const [dense, pruned] = await Promise.all([measure(mlp), measure(chosen!.model)]);
  await step('done');
  return {
    rows,
    pruned: chosen!.model,
    keepMasks: chosen!.keepMasks,
    method: options.method,
    sparsity: options.sparsity,
    calibrationSamples: calibration.samples,
    dense: { accuracy: dense.accuracy },
    chosen: { accuracy: pruned.accuracy, outputMse: pruned.outputMse! },
  };
}

/** The output-error-vs-sparsity chart of the study, as an SVG string (the report's chart). */
export async function errorChartSvg(rows: readonly SweepRow[]): Promise<string> {
  const chart = buildCharts(rows).find((c) => c.name === 'output-error');
  if (chart === undefined) throw new EcpruneError('internal', 'the study has no output error to draw');
  return renderSvg(chart.spec);
}

/**
 * The pruned model in the input's format: an .onnx written with the input's graph template, or a
 * TF.js model as one .zip holding model.json and its weight shard (one download, loadable once
 * unzipped).
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
    const { modelJson, shards } = writeTfjs(graphFromMlp(study.pruned), model.tfjs, { metadata });
    const bytes = zipSync({ 'model.json': strToU8(modelJson), ...Object.fromEntries(shards) });
    return { name: `${stem}-pruned-tfjs.zip`, bytes, type: 'application/zip' };
  }
  const bytes = writeOnnx(graphFromMlp(study.pruned), model.onnx, metadata);
  return { name: `${stem}-pruned.onnx`, bytes, type: 'application/octet-stream' };
}
