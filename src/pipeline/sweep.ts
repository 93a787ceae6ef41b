/**
 * The study: every method × sparsity × scope (× fine-tuning epochs) on one network, each pruned
 * network measured on a test set against the dense one. The calibration statistics are collected
 * once, in one pass that serves every method; each criterion and each compensation is computed
 * once and reused across sparsities and scopes (see `prune.ts` for the one-shot composition).
 * The model may be any graph: pruning, fine-tuning and measuring run on graphs; what trains a new
 * chain of layers or re-runs one (`dense-small`, `nonlinear`) needs the model to be one and says so.
 */

import { applyPruning } from '../compensate/apply.js';
import { optimalBiasShift } from '../compensate/delta.js';
import { type Dataset, firstSamples, materialize } from '../data/dataset.js';
import { EcpruneError, option } from '../errors.js';
import type { Gemm } from '../gemm/gemm.js';
import { inputSize, type Model } from '../graph/graph.js';
import { type LossKind, lossFor } from '../graph/loss.js';
import { asGraph, chainOf } from '../graph/mlp-graph.js';
import { type Mlp, nonzeroWeightCount, weightCount } from '../model/mlp.js';
import type { LayerScores } from '../score/criterion.js';
import { isMethodName, METHODS, type MethodName } from '../score/methods.js';
import { checkNonlinearSize, NONLINEAR_DEFAULT_SAMPLES, nonlinearScore } from '../score/nonlinear.js';
import { type CalibrationStatistics, collectStatistics } from '../score/statistics.js';
import { checkScope, checkSparsity, type KeepMask, type Scope, selectMasks } from '../select/select.js';
import { evaluate } from '../train/evaluate.js';
import { finetune, trainDenseSmall } from '../train/train.js';
import { prune } from './prune.js';
import { METHOD_LIST, parseVariant, usesNonlinear } from './variant-name.js';

/**
 * The pruning methods of `METHODS` plus two references: `nonlinear` (the exact non-linear
 * criterion and compensation, small networks only) and `dense-small` (a dense network with as
 * many weights as the pruned ones, trained from scratch).
 */
export type SweepMethod = MethodName | 'nonlinear' | 'dense-small' | (string & {});

/** The methods by name (variant-name.ts METHOD_LIST); beyond them, any variant name (`ec+sequential+refit5`). */
export const SWEEP_METHODS: readonly SweepMethod[] = METHOD_LIST.map((method) => method.name);

export function isSweepMethod(name: string): name is SweepMethod {
  if (isMethodName(name) || name === 'nonlinear' || name === 'dense-small') return true;
  try {
    parseVariant(name);
    return true;
  } catch {
    return false;
  }
}

/** A method with beyond-the-paper options: pruned by prune, without the shared statistics. */
function isVariant(method: SweepMethod): boolean {
  return !isMethodName(method) && method !== 'nonlinear' && method !== 'dense-small';
}

export interface SweepRow {
  /** `dense`: the unpruned network (sparsity 0), the reference of every other row */
  readonly method: SweepMethod | 'dense';
  readonly scope: Scope;
  /** the fraction of weights removed (a `+neuron` variant: of the units of the hidden layers that can lose them) */
  readonly sparsity: number;
  readonly finetuneEpochs: number;
  /** the seed of one `random` run; absent on the mean over seeds */
  readonly seed?: number;
  /** on a mean over seeds: how many */
  readonly seeds?: number;
  /** mean test loss (cross-entropy for class labels, MSE for values) */
  readonly testLoss: number;
  readonly accuracy?: number;
  /** regression: the mean squared error on the test set (= testLoss) */
  readonly testMse?: number;
  /** mean over test samples and outputs of (y − y_dense)² */
  readonly outputMse: number;
  /** per layer, the fraction of its weights removed (for `dense-small`: fewer weights than the layer had) */
  readonly layerSparsity: number[];
  /** for image inputs (a square number of features): layer 0's keep-mask (n_1 x n_0), to draw */
  readonly keptFirstLayer?: Uint8Array;
  readonly nonzero: number;
  /**
   * milliseconds of this row's own work: the criterion (computed once per method, counted in each
   * of its rows), selection, compensation and fine-tuning; not the shared calibration pass
   */
  readonly ms: number;
}

/** Training settings of the base network, reused by fine-tuning and `dense-small`. */
export interface TrainingSettings {
  /** epochs of the base training: `dense-small` trains this long */
  readonly epochs: number;
  readonly learningRate?: number;
  readonly batchSize?: number;
  readonly seed: number;
}

export type SweepStage = 'statistics' | 'nonlinear' | 'finetune' | 'dense-small';

export interface SweepOptions {
  readonly methods: readonly SweepMethod[];
  readonly sparsities: readonly number[];
  /** default ['global'] */
  readonly scopes?: readonly Scope[];
  /** default [0] */
  readonly finetuneEpochs?: readonly number[];
  /** runs of `random`, seeds seed, seed+1, …; default 3 */
  readonly seeds?: number;
  /** first seed of `random`; default 0 */
  readonly seed?: number;
  /** labelled training data for fine-tuning and `dense-small` */
  readonly train?: Dataset;
  readonly training?: TrainingSettings;
  /** loss of gradmag, the test loss and training; default from the labels */
  readonly loss?: LossKind;
  /** calibration and evaluation batch size */
  readonly batchSize?: number;
  /** calibration samples `nonlinear` uses (the first ones); default 256 */
  readonly nonlinearSamples?: number;
  readonly gemm?: Gemm;
  /** each row as soon as it is measured (the CLI prints the table as it goes) */
  readonly onRow?: (row: SweepRow) => void;
  readonly onProgress?: (stage: SweepStage, done: number, total: number) => void;
}

/** The side of a square image input (28 for 784 features), else undefined. */
export function imageSide(features: number): number | undefined {
  const side = Math.round(Math.sqrt(features));
  return side >= 8 && side * side === features ? side : undefined;
}

/** A row before it is measured on the test set. */
type RowFields = Omit<SweepRow, 'testLoss' | 'outputMse' | 'nonzero'>;

/** What a method contributes to every row: its scores and, when it compensates, the bias shifts. */
interface Scored {
  readonly importance: LayerScores;
  readonly deltaBias?: Float64Array[];
  readonly ms: number;
}

/**
 * Runs the study and returns its rows: the dense reference first, then for every scope, sparsity
 * and fine-tuning length one row per method (per seed for `random`, followed by their mean).
 * @example const rows = await runSweep(mlp, calib, test, { methods: ['ec', 'magnitude'], sparsities: [0.5, 0.9] });
 */
export async function runSweep(
  model: Model,
  calibration: Dataset,
  test: Dataset,
  options: SweepOptions,
): Promise<SweepRow[]> {
  const settings = checkOptions(model, calibration, test, options);
  const { scopes, finetuneEpochs, seeds, seed } = settings;
  const rows: SweepRow[] = [];
  const emit = (row: SweepRow) => {
    rows.push(row);
    options.onRow?.(row);
  };
  const measure = (pruned: Model, fields: RowFields) => measureRow(pruned, model, test, fields, options);

  emit(
    await measure(model, {
      method: 'dense',
      scope: 'global',
      sparsity: 0,
      finetuneEpochs: 0,
      layerSparsity: model.layers.map(() => 0),
      ms: 0,
    }),
  );

  const statistics = await sharedStatistics(model, calibration, options);
  const scored = new Map<string, Promise<Scored>>();
  const scoresOf = (method: MethodName | 'nonlinear', runSeed: number) => {
    const key = method === 'random' ? `random:${runSeed}` : method;
    if (!scored.has(key))
      scored.set(key, scoreMethod(model, calibration, statistics, method, runSeed, options));
    return scored.get(key)!;
  };

  for (const [s, scope] of scopes.entries()) {
    for (const sparsity of options.sparsities) {
      for (const [f, epochs] of finetuneEpochs.entries()) {
        for (const method of options.methods) {
          if (method === 'dense-small') {
            if (s === 0 && f === 0)
              emit(await denseSmallRow(chainOf(model)!, sparsity, scope, options, measure));
            continue;
          }
          if (isVariant(method)) {
            emit(
              await variantRow(
                model,
                calibration,
                method,
                { sparsity, scope, epochs, seed },
                options,
                measure,
              ),
            );
            continue;
          }
          const plain = method as MethodName | 'nonlinear';
          const runs = method === 'random' ? Array.from({ length: seeds }, (_, k) => seed + k) : [seed];
          const runRows: SweepRow[] = [];
          for (const runSeed of runs) {
            const { importance, deltaBias, ms } = await scoresOf(plain, runSeed);
            const start = performance.now();
            const keepMasks = selectMasks(importance, sparsity, scope);
            let pruned: Model = applyPruning(model, keepMasks, deltaBias);
            if (epochs > 0) pruned = await finetuneModel(pruned, epochs, 'finetune', options);
            const row = await measure(pruned, {
              method,
              scope,
              sparsity,
              finetuneEpochs: epochs,
              seed: method === 'random' ? runSeed : undefined,
              layerSparsity: keepMasks.map(prunedFraction),
              keptFirstLayer: imageSide(inputSize(asGraph(model))) ? keepMasks[0] : undefined,
              ms: ms + performance.now() - start,
            });
            runRows.push(row);
            emit(row);
          }
          if (runRows.length > 1) emit(meanRow(runRows));
        }
      }
    }
  }
  return rows;
}

interface CheckedOptions {
  readonly scopes: readonly Scope[];
  readonly finetuneEpochs: readonly number[];
  readonly seeds: number;
  readonly seed: number;
}

/** Every problem is reported before the first (possibly long) computation. */
function checkOptions(
  model: Model,
  calibration: Dataset,
  test: Dataset,
  options: SweepOptions,
): CheckedOptions {
  const scopes = options.scopes ?? ['global'];
  const finetuneEpochs = options.finetuneEpochs ?? [0];
  const seeds = options.seeds ?? 3;
  for (const method of options.methods) {
    if (!isSweepMethod(method)) {
      throw new EcpruneError('usage', `unknown method '${method}' (choose from ${SWEEP_METHODS.join(', ')})`);
    }
  }
  if (options.methods.length === 0) throw new EcpruneError('usage', 'no methods to compare');
  if (options.sparsities.length === 0) throw new EcpruneError('usage', 'no sparsities to try');
  options.sparsities.forEach(checkSparsity);
  scopes.forEach(checkScope);
  if (!finetuneEpochs.every((e) => Number.isInteger(e) && e >= 0)) {
    throw new EcpruneError(
      'usage',
      `fine-tuning epochs must be integers >= 0, got ${finetuneEpochs.join(',')}`,
    );
  }
  if (!(Number.isInteger(seeds) && seeds >= 1))
    throw new EcpruneError('usage', `seeds must be a positive integer, got ${seeds}`);
  if (test.targetKind === undefined)
    throw new EcpruneError('usage', `the test set needs labels (${option('labels')})`, test.name);
  const features = inputSize(asGraph(model));
  for (const data of [calibration, test]) {
    if (data.features !== features) {
      throw new EcpruneError(
        'input',
        `has ${data.features} features per sample, the model takes ${features}`,
        data.name,
      );
    }
  }
  const gradient = options.methods.find((m) => isMethodName(m) && METHODS[m].needsLossGradient);
  if (gradient && calibration.targetKind === undefined) {
    throw new EcpruneError(
      'usage',
      `method '${gradient}' needs labels for the calibration set (${option('calibrationLabels')})`,
      calibration.name,
    );
  }
  const training = options.methods.includes('dense-small')
    ? 'dense-small'
    : finetuneEpochs.some((e) => e > 0)
      ? 'fine-tuning'
      : undefined;
  if (training && (options.train?.targetKind === undefined || options.training === undefined)) {
    throw new EcpruneError('usage', `${training} needs labelled training data and the training settings`);
  }
  const needsChain = options.methods.filter((m) => usesNonlinear([m]) || m === 'dense-small');
  if (needsChain.length > 0 && chainOf(model) === undefined) {
    throw new EcpruneError(
      'unsupported',
      `${needsChain.join(', ')} ${needsChain.length > 1 ? 'need' : 'needs'} a plain chain of fully-connected layers and activations; ` +
        `this model is a graph (${asGraph(model).nodes.length} ops): leave ${needsChain.length > 1 ? 'them' : 'it'} out (every pruning method and variant, and fine-tuning, run on graphs)`,
    );
  }
  if (usesNonlinear(options.methods))
    checkNonlinearSize(weightCount(model), calibration.samples, options.nonlinearSamples);
  return { scopes, finetuneEpochs, seeds, seed: options.seed ?? 0 };
}

/** One calibration pass collecting what any of the methods needs (nothing for magnitude/random only). */
async function sharedStatistics(
  model: Model,
  calibration: Dataset,
  options: SweepOptions,
): Promise<CalibrationStatistics> {
  const specs = options.methods.filter(isMethodName).map((m) => METHODS[m]);
  const sensitivity = specs.some((spec) => spec.needsSensitivity);
  const gradient = specs.some((spec) => spec.needsLossGradient);
  if (!sensitivity && !gradient) return { samples: calibration.samples, layers: [] };
  return collectStatistics(model, calibration, {
    gemm: options.gemm,
    batchSize: options.batchSize,
    sensitivity,
    lossGradient: gradient ? (options.loss ?? lossFor(calibration.targetKind!)) : undefined,
    onProgress: (done, total) => options.onProgress?.('statistics', done, total),
  });
}

async function scoreMethod(
  model: Model,
  calibration: Dataset,
  statistics: CalibrationStatistics,
  method: MethodName | 'nonlinear',
  seed: number,
  options: SweepOptions,
): Promise<Scored> {
  const start = performance.now();
  if (method === 'nonlinear') {
    const samples = Math.min(calibration.samples, options.nonlinearSamples ?? NONLINEAR_DEFAULT_SAMPLES);
    const { x } = await materialize(firstSamples(calibration, samples));
    // checked to be a chain before any work
    const result = await nonlinearScore(chainOf(model)!, x, {
      gemm: options.gemm,
      maxSamples: samples,
      onProgress: (done, total) => options.onProgress?.('nonlinear', done, total),
    });
    return { ...result, ms: performance.now() - start };
  }
  const spec = METHODS[method];
  const importance = spec.criterion(model, statistics, { seed });
  const deltaBias = spec.compensate ? optimalBiasShift(model, statistics) : undefined;
  return { importance, deltaBias, ms: performance.now() - start };
}

async function finetuneModel(
  model: Model,
  epochs: number,
  stage: SweepStage,
  options: SweepOptions,
): Promise<Model> {
  const { train, training } = options;
  const result = await finetune(model, train!, {
    ...training!,
    epochs,
    loss: options.loss,
    gemm: options.gemm,
    onBatch: (done, total) => options.onProgress?.(stage, done, total),
  });
  return result.model;
}

/** A dense network with (about) as many weights as the pruned ones keep, trained like the base one. */
async function denseSmallRow(
  model: Mlp,
  sparsity: number,
  scope: Scope,
  options: SweepOptions,
  measure: (pruned: Model, fields: RowFields) => Promise<SweepRow>,
): Promise<SweepRow> {
  const start = performance.now();
  const { model: small } = await trainDenseSmall(model, 1 - sparsity, options.train!, {
    ...options.training!,
    loss: options.loss,
    gemm: options.gemm,
    onBatch: (done, total) => options.onProgress?.('dense-small', done, total),
  });
  const layerSparsity = small.layers.map(
    (layer, l) => 1 - layer.weight.data.length / model.layers[l].weight.data.length,
  );
  return measure(small, {
    method: 'dense-small',
    scope,
    sparsity,
    finetuneEpochs: 0,
    layerSparsity,
    ms: performance.now() - start,
  });
}

/** One row of a variant method: the whole advanced pruning at this sparsity, then fine-tuning. */
async function variantRow(
  model: Model,
  calibration: Dataset,
  method: SweepMethod,
  at: { sparsity: number; scope: Scope; epochs: number; seed: number },
  options: SweepOptions,
  measure: (pruned: Model, fields: RowFields) => Promise<SweepRow>,
): Promise<SweepRow> {
  const start = performance.now();
  const result = await prune(model, calibration, {
    ...parseVariant(method),
    sparsity: at.sparsity,
    scope: at.scope,
    seed: at.seed,
    loss: options.loss,
    nonlinearSamples: options.nonlinearSamples,
    batchSize: options.batchSize,
    gemm: options.gemm,
    onProgress: (done, total) => options.onProgress?.('statistics', done, total),
  });
  let pruned: Model = result.model;
  if (at.epochs > 0) pruned = await finetuneModel(pruned, at.epochs, 'finetune', options);
  return measure(pruned, {
    method,
    scope: at.scope,
    sparsity: at.sparsity,
    finetuneEpochs: at.epochs,
    layerSparsity: result.keepMasks.map(prunedFraction),
    keptFirstLayer: imageSide(inputSize(asGraph(model))) ? result.keepMasks[0] : undefined,
    ms: performance.now() - start,
  });
}

async function measureRow(
  mlp: Model,
  dense: Model,
  test: Dataset,
  fields: RowFields,
  options: SweepOptions,
): Promise<SweepRow> {
  const result = await evaluate(mlp, test, {
    reference: dense,
    loss: options.loss,
    batchSize: options.batchSize,
    gemm: options.gemm,
  });
  const testLoss = result.meanLoss!;
  return {
    ...fields,
    testLoss,
    accuracy: result.accuracy,
    testMse: result.loss === 'mse' ? testLoss : undefined,
    outputMse: result.outputMse!,
    nonzero: nonzeroWeightCount(mlp),
  };
}

function prunedFraction(mask: KeepMask): number {
  let kept = 0;
  for (const keep of mask) kept += keep;
  return 1 - kept / mask.length;
}

/** The mean of several seeds' rows (every number averaged; no mask). */
export function meanRow(runs: readonly SweepRow[]): SweepRow {
  const mean = (value: (row: SweepRow) => number) =>
    runs.reduce((sum, row) => sum + value(row), 0) / runs.length;
  const optionalMean = (value: (row: SweepRow) => number | undefined) =>
    runs[0] && value(runs[0]) !== undefined ? mean((row) => value(row)!) : undefined;
  const { seed: _seed, keptFirstLayer: _mask, ...first } = runs[0];
  return {
    ...first,
    seeds: runs.length,
    testLoss: mean((row) => row.testLoss),
    accuracy: optionalMean((row) => row.accuracy),
    testMse: optionalMean((row) => row.testMse),
    outputMse: mean((row) => row.outputMse),
    layerSparsity: first.layerSparsity.map((_, l) => mean((row) => row.layerSparsity[l])),
    nonzero: mean((row) => row.nonzero),
    ms: mean((row) => row.ms),
  };
}
