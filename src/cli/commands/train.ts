/**
 * `ecprune train`, and what every command that trains shares (finetune, sweep, demo): the training
 * options, the progress display, the default architecture and the cache of trained models.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Dataset } from '../../data/dataset.js';
import { EcpruneError } from '../../errors.js';
import type { Graph } from '../../graph/graph.js';
import { type Activation, formatActivation, parseActivation } from '../../model/activations.js';
import { layerSizes, type Mlp, weightCount } from '../../model/mlp.js';
import { ensureParentDir } from '../../node/files.js';
import { checkModelOutput, loadModel, requireChain, saveModel } from '../../node/models.js';
import { type GradualPruneOptions, pruneStep } from '../../pipeline/gradual.js';
import { isMethodName, METHOD_NAMES, type MethodName } from '../../score/methods.js';
import type { Scope } from '../../select/select.js';
import type { GradualPruning } from '../../train/schedule.js';
import type { EpochInfo, TrainOptions } from '../../train/train.js';
import { batchesPerEpoch, estimateTrainMemory, trainModel } from '../../train/train.js';
import { VERSION } from '../../version.js';
import { checkMemory, inputFiles, openData } from '../data.js';
import {
  listOf,
  MODEL_FILES,
  parseLoss,
  parseNonNegativeInt,
  parsePositiveInt,
  parseScope,
  parseSparsity,
} from '../options.js';
import { progressBar } from '../progress.js';

// ---------------------------------------------------------------------------------------------
// Options shared by train, finetune, sweep and demo

export function parseActivationOption(text: string): Activation {
  const activation = parseActivation(text);
  if (activation === undefined)
    throw new InvalidArgumentError(`unknown activation '${text}' (e.g. relu, tanh, leaky_relu:0.1)`);
  return activation;
}

export function parseLearningRate(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value > 0 && Number.isFinite(value)))
    throw new InvalidArgumentError(`expected a positive number, got '${text}'`);
  return value;
}

export function parseFraction(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value > 0 && value < 1))
    throw new InvalidArgumentError(`expected a number in (0, 1), got '${text}'`);
  return value;
}

export const parseLayers = listOf(parsePositiveInt);

/** --epochs, --lr, --batch-size, --seed, --loss: how a network is trained. */
export function addTrainingOptions(command: Command, epochs: number): Command {
  return command
    .option('--epochs <n>', 'passes over the training data', parseNonNegativeInt, epochs)
    .option('--lr <rate>', 'Adam learning rate', parseLearningRate, 1e-3)
    .option('--batch-size <n>', 'training mini-batch size', parsePositiveInt, 128)
    .option('--seed <n>', 'seed of the initialisation and the shuffles', parseNonNegativeInt, 0)
    .option('--loss <kind>', 'ce (class ids) or mse; default from the labels', parseLoss);
}

/** --layers, --activation: the architecture of a fresh network. */
export function addArchitectureOptions(command: Command): Command {
  return command
    .option(
      '--layers <widths>',
      'layer widths from inputs to outputs, e.g. 784,300,100,10 (default: inputs,300,100,outputs for images, else inputs,64,64,outputs)',
      parseLayers,
    )
    .addOption(
      new Option('--activation <name>', 'hidden activation: relu, tanh, sigmoid, gelu, leaky_relu[:alpha], …')
        .argParser(parseActivationOption)
        .default(parseActivation('relu'), 'relu'),
    );
}

export interface TrainingFlags {
  epochs: number;
  lr: number;
  batchSize: number;
  seed: number;
  loss?: 'ce' | 'mse';
}

export function trainingSettings(
  flags: TrainingFlags,
): Pick<TrainOptions, 'epochs' | 'learningRate' | 'batchSize' | 'seed' | 'loss'> {
  return {
    epochs: flags.epochs,
    learningRate: flags.lr,
    batchSize: flags.batchSize,
    seed: flags.seed,
    loss: flags.loss,
  };
}

// ---------------------------------------------------------------------------------------------
// Gradual pruning (train, finetune)

function parseEpochPoint(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && Number.isFinite(value)))
    throw new InvalidArgumentError(`expected a number of epochs >= 0, got '${text}'`);
  return value;
}

function parseScheduleMethod(text: string): MethodName {
  if (isMethodName(text)) return text;
  throw new InvalidArgumentError(`unknown method '${text}' (choose from ${METHOD_NAMES.join(', ')})`);
}

/** --prune-to and the rest of a polynomial-decay pruning schedule (src/train/schedule.ts). */
export function addPruningScheduleOptions(command: Command, initialDefault: string): Command {
  return command
    .option(
      '--prune-to <s>',
      'prune gradually while training, to this final sparsity (fraction of the fully-connected weights)',
      parseSparsity,
    )
    .option('--prune-from <s>', `the sparsity at --prune-begin (default ${initialDefault})`, parseSparsity)
    .option(
      '--prune-begin <epochs>',
      'when the first pruning step happens, in epochs (fractions allowed)',
      parseEpochPoint,
      0,
    )
    .option(
      '--prune-end <epochs>',
      'when --prune-to is reached, in epochs; the masks are held after it (default: one epoch before the end)',
      parseEpochPoint,
    )
    .option('--prune-every <steps>', 'optimizer steps (batches) between pruning steps', parsePositiveInt, 100)
    .option(
      '--prune-power <p>',
      'exponent of the polynomial decay from --prune-from to --prune-to',
      parseLearningRate,
      3,
    )
    .option(
      '--prune-method <name>',
      `the criterion of every pruning step (${METHOD_NAMES.join(', ')}); compensating methods shift the biases at every step`,
      parseScheduleMethod,
      'ec',
    )
    .option(
      '--prune-scope <scope>',
      'rank the weights of all layers together (global) or per layer',
      parseScope,
      'global',
    )
    .option(
      '--prune-samples <n>',
      'each pruning step is scored on the first n training samples',
      parsePositiveInt,
      1000,
    );
}

export interface PruningScheduleFlags {
  pruneTo?: number;
  pruneFrom?: number;
  pruneBegin: number;
  pruneEnd?: number;
  pruneEvery: number;
  prunePower: number;
  pruneMethod: MethodName;
  pruneScope: Scope;
  pruneSamples: number;
  epochs: number;
  batchSize: number;
  seed: number;
  validation?: number;
}

/** Gradual pruning by the prune pipeline, with the options of its steps (for the metadata). */
export type PipelineGradualPruning = GradualPruning & { readonly prune: GradualPruneOptions };

/**
 * The schedule the flags ask for (undefined without --prune-to), its begin and end turned from
 * epochs into optimizer steps of `data`; `initialSparsity` is --prune-from's default.
 */
export function pruningFromFlags(
  flags: PruningScheduleFlags,
  data: Dataset,
  initialSparsity: number,
): PipelineGradualPruning | undefined {
  if (flags.pruneTo === undefined) return undefined;
  const end = flags.pruneEnd ?? Math.max(flags.pruneBegin, flags.epochs - 1);
  if (end > flags.epochs)
    throw new EcpruneError('usage', `--prune-end ${end} is after the last epoch (--epochs ${flags.epochs})`);
  if (flags.pruneBegin > end)
    throw new EcpruneError('usage', `--prune-begin ${flags.pruneBegin} is after --prune-end ${end}`);
  const from = flags.pruneFrom ?? initialSparsity;
  if (flags.pruneTo < from) {
    const which = flags.pruneFrom === undefined ? " (the model's own sparsity; give --prune-from)" : '';
    throw new EcpruneError(
      'usage',
      `--prune-to ${flags.pruneTo} is below --prune-from ${Number(from.toPrecision(4))}${which}`,
    );
  }
  const perEpoch = batchesPerEpoch(data.samples, {
    batchSize: flags.batchSize,
    validationFraction: flags.validation,
  });
  const step = (epochs: number) => Math.round(epochs * perEpoch);
  const prune = { method: flags.pruneMethod, scope: flags.pruneScope, seed: flags.seed };
  return {
    schedule: {
      initialSparsity: from,
      finalSparsity: flags.pruneTo,
      begin: step(flags.pruneBegin),
      end: step(end),
      frequency: flags.pruneEvery,
      power: flags.prunePower,
    },
    prune,
    pruneTo: pruneStep(prune),
    calibrationSamples: flags.pruneSamples,
  };
}

/** The metadata a run with a schedule stores in its model. */
export function pruningMetadata(pruning: PipelineGradualPruning | undefined): Record<string, string> {
  return pruning === undefined
    ? {}
    : { ecprune_pruning_schedule: JSON.stringify({ ...pruning.schedule, ...pruning.prune }) };
}

// ---------------------------------------------------------------------------------------------
// Progress while training

/**
 * The callbacks of a training run of `epochs` epochs: a progress bar over all batches (labelled
 * with the last epoch's loss) and one line per epoch on stdout.
 */
export function trainingProgress(
  label: string,
  epochs: number,
  quiet = false,
): Pick<TrainOptions, 'onBatch' | 'onEpoch'> & { stop(): void } {
  let bar = progressBar(label, 'batches', quiet);
  return {
    onBatch: (done, total) => bar.update(done, total),
    onEpoch(info) {
      bar.stop();
      console.log(`${label}: ${describeEpoch(info, epochs)}`);
      bar = progressBar(`${label} (loss ${info.trainLoss.toPrecision(3)})`, 'batches', quiet);
    },
    stop: () => bar.stop(),
  };
}

export function describeEpoch(info: EpochInfo, epochs: number): string {
  const parts = [`epoch ${info.epoch}/${epochs}`, `train loss ${info.trainLoss.toPrecision(4)}`];
  if (info.validationLoss !== undefined) parts.push(`validation loss ${info.validationLoss.toPrecision(4)}`);
  if (info.validationAccuracy !== undefined)
    parts.push(`validation accuracy ${(100 * info.validationAccuracy).toFixed(2)} %`);
  if (info.sparsity !== undefined) parts.push(`sparsity ${(100 * info.sparsity).toFixed(1)} %`);
  return parts.join('  ');
}

// ---------------------------------------------------------------------------------------------
// Architecture

/** Outputs a network needs for these targets: classes = largest label + 1, values = columns. */
async function outputCount(data: Dataset): Promise<number> {
  let outputs = 0;
  for await (const batch of data.batches(4096)) {
    if (batch.y?.kind === 'classes')
      for (const label of batch.y.values) outputs = Math.max(outputs, label + 1);
    if (batch.y?.kind === 'values') return batch.y.values.cols;
  }
  return outputs;
}

/** `--layers` checked against the data, or the default architecture for it. */
export async function architectureFor(
  data: Dataset,
  layers: readonly number[] | undefined,
): Promise<number[]> {
  if (data.targetKind === undefined)
    throw new EcpruneError('usage', 'training needs labels (--labels)', data.name);
  if (layers === undefined) {
    const outputs = await outputCount(data);
    const hidden =
      Math.round(Math.sqrt(data.features)) ** 2 === data.features && data.features >= 64
        ? [300, 100]
        : [64, 64];
    return [data.features, ...hidden, outputs];
  }
  if (layers.length < 2)
    throw new EcpruneError(
      'usage',
      `--layers needs at least the input and output widths, got ${layers.join(',')}`,
    );
  if (layers[0] !== data.features) {
    throw new EcpruneError(
      'usage',
      `--layers starts with ${layers[0]} inputs, the data has ${data.features} features`,
      data.name,
    );
  }
  return [...layers];
}

export function describeArchitecture(mlp: Mlp): string {
  const parameters = weightCount(mlp) + mlp.layers.reduce((sum, layer) => sum + layer.bias.length, 0);
  return `${layerSizes(mlp).join('-')} ${formatActivation(mlp.layers[0].activation)} (${parameters.toLocaleString('en')} parameters)`;
}

/** A model that is not a chain, in a few words: its layers and parameters, the ops around them. */
export function describeGraph(graph: Graph): string {
  const parameters = weightCount(graph) + graph.layers.reduce((sum, layer) => sum + layer.bias.length, 0);
  const ops = [...new Set(graph.nodes.filter((node) => node.op !== 'Dense').map((node) => node.op))];
  return `a graph of ${graph.layers.length} fully-connected layers (${layerSizes(graph).join('-')}; ${parameters.toLocaleString('en')} parameters) with ${ops.join(', ')}`;
}

// ---------------------------------------------------------------------------------------------
// Cached training (sweep --dataset, demo)

export interface CachedTraining {
  readonly dataset: string;
  readonly sizes: readonly number[];
  readonly activation: Activation;
  readonly settings: ReturnType<typeof trainingSettings>;
  readonly cacheDir: string;
  readonly quiet?: boolean;
}

/** The cache file of a training run: readable name, plus a hash of everything that shapes the result. */
export function cacheFile(spec: CachedTraining): string {
  const { dataset, sizes, activation, settings } = spec;
  const key = JSON.stringify({ dataset, sizes, activation, settings, version: VERSION });
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 10);
  const name = `${dataset}_${sizes.join('-')}_${formatActivation(activation).replace(':', '')}_e${settings.epochs}_s${settings.seed}_${hash}.onnx`;
  return path.join(spec.cacheDir, name);
}

/** Trains the network on `train`, or loads it from the cache when the same run was done before. */
export async function trainCached(
  spec: CachedTraining,
  train: Dataset,
): Promise<{ mlp: Mlp; file: string; cached: boolean }> {
  const file = cacheFile(spec);
  if (await stat(file).catch(() => undefined)) {
    console.log(`using the cached model ${file}`);
    return { mlp: requireChain(await loadModel(file), 'a cached training result'), file, cached: true };
  }
  console.log(
    `training ${spec.sizes.join('-')} ${formatActivation(spec.activation)} on ${train.name} for ${spec.settings.epochs} epochs`,
  );
  const progress = trainingProgress('train', spec.settings.epochs, spec.quiet);
  const { model } = await trainModel(
    { sizes: spec.sizes, activation: spec.activation, seed: spec.settings.seed },
    train,
    {
      ...spec.settings,
      ...progress,
    },
  ).finally(progress.stop);
  await ensureParentDir(file);
  await saveModel(file, model, {
    force: true,
    metadata: { ecprune_version: VERSION, ecprune_trained_on: train.name },
  });
  return { mlp: model, file, cached: false };
}

// ---------------------------------------------------------------------------------------------
// ecprune train

const EXAMPLES = `
Examples:
  $ ecprune train --dataset mnist --layers 784,300,100,10 --epochs 5 -o model.onnx
  $ ecprune train --data x.npy --labels y.npy --layers 6,64,64,1 --activation tanh --loss mse -o surrogate.onnx
  $ ecprune train --dataset mnist --epochs 8 --prune-to 0.9 --prune-begin 1 --prune-end 6 -o sparse.onnx
    (gradual pruning: the sparsity rises from --prune-from to --prune-to as a cubic decay, pruning
    every --prune-every steps by --prune-method, EC compensating at every step; masks held after)`;

/** --data/--dataset/--labels/--label-column/--samples: the training data of train and finetune. */
export function addTrainingDataOptions(command: Command): Command {
  return command
    .option('--data <file>', 'training inputs: .npy, .npz, .csv or IDX')
    .option('--dataset <name>', 'a built-in data set (its training split) instead of --data')
    .option('--labels <file>', 'targets of the training samples (class ids or values)')
    .option('--label-column <name>', 'CSV: the column that holds the targets')
    .option('--samples <n>', 'use only the first n samples', parsePositiveInt)
    .option(
      '--validation <fraction>',
      'hold out this fraction (seeded) and report its loss after every epoch',
      parseFraction,
    );
}

export interface TrainingDataFlags {
  data?: string;
  dataset?: string;
  labels?: string;
  labelColumn?: string;
  samples?: number;
}

export function trainingDataChoice(flags: TrainingDataFlags) {
  return {
    file: flags.data,
    labels: flags.labels,
    dataset: flags.dataset,
    split: 'train' as const,
    samples: flags.samples,
    labelColumn: flags.labelColumn,
  };
}

export function trainCommand(): Command {
  const command = new Command('train')
    .description('train a fully-connected network (Adam) and write it as ONNX')
    .requiredOption('-o, --output <file>', `where to write the model (${MODEL_FILES})`)
    .option('--force', 'overwrite the output if it exists')
    .option('--quiet', 'no progress bar');
  addTrainingDataOptions(command);
  addArchitectureOptions(command);
  addTrainingOptions(command, 5);
  addPruningScheduleOptions(command, '0');
  return command.addHelpText('after', EXAMPLES).action(async (flags) => {
    const inputs = inputFiles(trainingDataChoice(flags));
    await checkModelOutput(flags.output, { force: flags.force, inputs });
    const data = await openData(trainingDataChoice(flags), 'training');
    const sizes = await architectureFor(data, flags.layers);
    checkMemory(estimateTrainMemory(sizes, flags.batchSize), `training ${sizes.join('-')}`, data.name);
    const pruning = pruningFromFlags(flags, data, 0);
    const progress = trainingProgress('train', flags.epochs, flags.quiet);
    const { model, history } = await trainModel(
      { sizes, activation: flags.activation, seed: flags.seed },
      data,
      {
        ...trainingSettings(flags),
        validationFraction: flags.validation,
        pruning,
        ...progress,
      },
    ).finally(progress.stop);
    await saveModel(flags.output, model, {
      force: flags.force,
      inputs,
      metadata: {
        ecprune_version: VERSION,
        ecprune_trained_on: data.name,
        ecprune_epochs: String(flags.epochs),
        ...pruningMetadata(pruning),
      },
    });
    const last = history.at(-1);
    console.log(
      `trained ${describeArchitecture(model)} on ${data.name} for ${flags.epochs} epochs` +
        `${last ? ` (final train loss ${last.trainLoss.toPrecision(4)})` : ''}: wrote ${flags.output}`,
    );
  });
}
