import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { type Dataset, firstSamples } from '../../data/dataset.js';
import { EcpruneError } from '../../errors.js';
import type { Model } from '../../graph/graph.js';
import type { LossKind } from '../../graph/loss.js';
import { type Activation, formatActivation } from '../../model/activations.js';
import { layerSizes } from '../../model/mlp.js';
import { openNamedDataset } from '../../node/datasets.js';
import { dataForModel, loadModel } from '../../node/models.js';
import { checkReportFolder, writeReportFolder } from '../../node/report-files.js';
import { DEFAULT_RECIPE } from '../../pipeline/prune.js';
import {
  isSweepMethod,
  runSweep,
  SWEEP_METHODS,
  type SweepMethod,
  type SweepStage,
} from '../../pipeline/sweep.js';
import { formatVariant, MODIFIER_NAMES, usesNonlinear } from '../../pipeline/variant-name.js';
import { formatBest, tablePrinter } from '../../report/table.js';
import { METHODS } from '../../score/methods.js';
import { checkNonlinearSize } from '../../score/nonlinear.js';
import type { Scope } from '../../select/select.js';
import { denseWeightCount } from '../../train/train.js';
import { checkDataFitsModel, checkTargetsFit, inputFiles, openData } from '../data.js';
import {
  listOf,
  MODEL_FILES,
  parseNonNegativeInt,
  parsePositiveInt,
  parseScope,
  parseSparsity,
} from '../options.js';
import { type Progress, progressBar } from '../progress.js';
import { nonlinearSamplesOption } from '../variants.js';
import {
  addArchitectureOptions,
  addTrainingOptions,
  architectureFor,
  describeArchitecture,
  describeGraph,
  trainCached,
  trainingSettings,
} from './train.js';

/** Everything a sweep is run from: the parsed flags of `ecprune sweep`, or the demo's fixed settings. */
export interface SweepSettings {
  model?: string;
  dataset?: string;
  calib?: string;
  calibLabels?: string;
  data?: string;
  labels?: string;
  train?: string;
  trainLabels?: string;
  calibSamples?: number;
  methods?: SweepMethod[];
  sparsities: number[];
  scope: Scope[];
  finetuneEpochs: number[];
  seeds: number;
  nonlinearSamples: number;
  layers?: number[];
  activation: Activation;
  epochs: number;
  lr: number;
  batchSize: number;
  seed: number;
  loss?: LossKind;
  cacheDir: string;
  output: string;
  force?: boolean;
  quiet?: boolean;
}

export const DEFAULT_SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95];
/** calibration samples taken from a built-in data set's training split */
export const DEFAULT_DATASET_CALIBRATION = 2000;

function parseSweepMethod(text: string): SweepMethod {
  if (!isSweepMethod(text))
    throw new InvalidArgumentError(
      `unknown method '${text}' (choose from ${SWEEP_METHODS.join(', ')}, or a variant such as ec+sequential+refit5)`,
    );
  return text;
}

/** A comma-separated list option whose default is shown as typed (`0.5,0.7`, not JSON). */
function listOption<T>(flags: string, description: string, parse: (text: string) => T, value: T[]): Option {
  return new Option(flags, description).argParser(listOf(parse)).default(value, value.join(','));
}

const EXAMPLES = `
With --dataset and no model, the network is trained first (or taken from --cache-dir when the same
training was done before); calibration data is the first --calib-samples of the training split.
Fine-tuning and dense-small train on --train/--train-labels, or the dataset's training split, or
else the calibration set with its labels.

Examples:
  $ ecprune sweep --dataset mnist --epochs 3 -o reports/mnist
  $ ecprune sweep model.onnx --calib x_calib.npy --calib-labels y_calib.npy --data x_test.npy --labels y_test.npy -o report
  $ ecprune sweep --dataset diffusion-sorption --methods ec,magnitude,nonlinear,dense-small --scope global,layer -o reports/pde`;

export function sweepCommand(): Command {
  const command = new Command('sweep')
    .description('compare pruning methods over sparsities; print the table and write a report folder')
    .argument('[model]', `the trained model (${MODEL_FILES}); omit it with --dataset to train one`)
    .requiredOption(
      '-o, --output <dir>',
      'the report folder (results.json, results.csv, report.html, charts/)',
    )
    .option('--dataset <name>', 'a built-in data set: mnist, fashion-mnist, diffusion-sorption')
    .option('--calib <file>', 'calibration inputs (.npy, .npz, .csv, IDX)')
    .option('--calib-labels <file>', 'targets of the calibration samples (gradmag needs them)')
    .option('--data <file>', 'test inputs')
    .option('--labels <file>', 'test targets')
    .option('--train <file>', 'training inputs for fine-tuning and dense-small')
    .option('--train-labels <file>', 'training targets')
    .option(
      '--calib-samples <n>',
      `calibration samples (default: all of --calib; ${DEFAULT_DATASET_CALIBRATION} with --dataset)`,
      parsePositiveInt,
    )
    .option(
      '--methods <list>',
      `comma-separated, from ${SWEEP_METHODS.join(', ')}, and variants <method>+<modifier>... with modifiers ${MODIFIER_NAMES.join(', ')} (default: prune's default recipe ${formatVariant(DEFAULT_RECIPE)} when the calibration set has labels, and the ${Object.keys(METHODS).length} pruning methods)`,
      listOf(parseSweepMethod),
    )
    .addOption(
      listOption(
        '--sparsities <list>',
        'comma-separated fractions of weights to remove',
        parseSparsity,
        DEFAULT_SPARSITIES,
      ),
    )
    .addOption(
      listOption('--scope <list>', 'global, layer or both (comma-separated)', parseScope, ['global']),
    )
    .addOption(
      listOption(
        '--finetune-epochs <list>',
        'fine-tuning epochs after pruning, comma-separated (0 = none)',
        parseNonNegativeInt,
        [0],
      ),
    )
    .option(
      '--seeds <n>',
      'runs of the random method (the report shows each and their mean)',
      parsePositiveInt,
      3,
    )
    .addOption(nonlinearSamplesOption())
    .option('--cache-dir <dir>', 'where trained models are kept for reuse', path.join('.cache', 'ecprune'))
    .option('--force', 'write into a report folder that is not empty')
    .option('--quiet', 'no progress bars');
  addArchitectureOptions(command);
  addTrainingOptions(command, 5);
  return command.addHelpText('after', EXAMPLES).action(async (model: string | undefined, flags) => {
    await sweepAction({ ...flags, model });
  });
}

interface SweepData {
  readonly calibration: Dataset;
  readonly test: Dataset;
  /** labelled data for fine-tuning, dense-small and training the model */
  readonly train?: Dataset;
}

async function openSweepData(settings: SweepSettings): Promise<SweepData> {
  const files = [settings.calib, settings.data, settings.labels, settings.calibLabels].some(
    (f) => f !== undefined,
  );
  if (settings.dataset !== undefined) {
    if (files)
      throw new EcpruneError(
        'usage',
        `--dataset ${settings.dataset} brings its own data: drop --calib, --data and the label files`,
      );
    const train = await openNamedDataset(settings.dataset, 'train');
    const test = await openNamedDataset(settings.dataset, 'test');
    return {
      calibration: firstSamples(train, settings.calibSamples ?? DEFAULT_DATASET_CALIBRATION),
      test,
      train,
    };
  }
  if (settings.calib === undefined || settings.data === undefined) {
    throw new EcpruneError(
      'usage',
      'give --dataset NAME, or --calib and --data (with --labels) for a model file',
    );
  }
  const calibration = await openData(
    { file: settings.calib, labels: settings.calibLabels, split: 'train', samples: settings.calibSamples },
    'calibration',
  );
  const test = await openData({ file: settings.data, labels: settings.labels, split: 'test' }, 'test');
  const train =
    settings.train !== undefined
      ? await openData({ file: settings.train, labels: settings.trainLabels, split: 'train' }, 'training')
      : calibration;
  return { calibration, test, train: train.targetKind ? train : undefined };
}

/**
 * The pruning methods that apply: prune's default recipe (what a user gets without a method; it
 * runs on the labels' loss when named) and every criterion, gradmag too, when the calibration set
 * has labels; the criteria but gradmag otherwise.
 */
function defaultMethods(calibration: Dataset): SweepMethod[] {
  if (calibration.targetKind === undefined)
    return SWEEP_METHODS.filter((m) => m in METHODS && m !== 'gradmag');
  return [formatVariant(DEFAULT_RECIPE), ...SWEEP_METHODS.filter((m) => m in METHODS)];
}

/** One progress bar at a time, for whichever stage reports. */
function stageProgress(quiet?: boolean) {
  let current: { stage: SweepStage; bar: Progress } | undefined;
  return {
    update(stage: SweepStage, done: number, total: number) {
      if (current?.stage !== stage) {
        current?.bar.stop();
        current = {
          stage,
          bar: progressBar(
            stage,
            stage === 'statistics' ? 'samples' : stage === 'nonlinear' ? 'weights' : 'batches',
            quiet,
          ),
        };
      }
      current.bar.update(done, total);
    },
    stop() {
      current?.bar.stop();
      current = undefined;
    },
  };
}

/** A command line that gives the same report: every setting spelled out. */
export function reproduceCommand(
  settings: SweepSettings,
  sizes: readonly number[],
  methods: readonly SweepMethod[],
): string {
  const quote = (text: string) =>
    /^[\w./:=,@+-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
  const option = (name: string, value: string | number | undefined) =>
    value === undefined ? [] : [name, quote(String(value))];
  const parts = ['ecprune', 'sweep', ...(settings.model ? [quote(settings.model)] : [])];
  if (settings.dataset !== undefined) {
    parts.push(...option('--dataset', settings.dataset));
    if (!settings.model) {
      parts.push(
        ...option('--layers', sizes.join(',')),
        ...option('--activation', formatActivation(settings.activation)),
      );
    }
  }
  parts.push(
    ...option('--calib', settings.calib),
    ...option('--calib-labels', settings.calibLabels),
    ...option('--data', settings.data),
    ...option('--labels', settings.labels),
    ...option('--train', settings.train),
    ...option('--train-labels', settings.trainLabels),
    ...option(
      '--calib-samples',
      settings.calibSamples ?? (settings.dataset ? DEFAULT_DATASET_CALIBRATION : undefined),
    ),
    ...option('--methods', methods.join(',')),
    ...option('--sparsities', settings.sparsities.join(',')),
    ...option('--scope', settings.scope.join(',')),
    ...option('--finetune-epochs', settings.finetuneEpochs.join(',')),
    ...option('--seeds', settings.seeds),
    ...(usesNonlinear(methods) ? option('--nonlinear-samples', settings.nonlinearSamples) : []),
    ...option('--epochs', settings.epochs),
    ...option('--lr', settings.lr),
    ...option('--batch-size', settings.batchSize),
    ...option('--seed', settings.seed),
    ...option('--loss', settings.loss),
    ...option('-o', settings.output),
  );
  return parts.join(' ');
}

/** Runs a sweep from settings: opens the data, trains or loads the model, prints the table, writes the report. */
export async function sweepAction(
  settings: SweepSettings,
  describe: { title?: string; command?: string } = {},
): Promise<string> {
  const dataFiles = [
    ...inputFiles({ file: settings.calib, labels: settings.calibLabels }),
    ...inputFiles({ file: settings.data, labels: settings.labels }),
    ...inputFiles({ file: settings.train, labels: settings.trainLabels }),
  ];
  await checkReportFolder(settings.output, {
    force: settings.force,
    inputs: [...(settings.model === undefined ? [] : [settings.model]), ...dataFiles],
  });
  let { calibration, test, train } = await openSweepData(settings);
  const methods = settings.methods ?? defaultMethods(calibration);
  let model: Model;
  let modelText: string;
  let modelFiles: readonly string[] = [];
  if (settings.model !== undefined) {
    const loaded = await loadModel(settings.model);
    // a chain as its layers (what the chain-only methods take), any other graph as it is
    model = loaded.mlp ?? loaded.graph;
    modelFiles = loaded.files;
    modelText = `${settings.model}: ${loaded.mlp ? describeArchitecture(loaded.mlp) : describeGraph(loaded.graph)}`;
    const named = [
      [calibration, settings.calibLabels],
      [test, settings.labels],
      ...(train && train !== calibration ? [[train, settings.trainLabels] as const] : []),
    ] as const;
    for (const [data, labels] of named) {
      checkDataFitsModel(data, loaded.shape, settings.model);
      checkTargetsFit(data, loaded.shape, labels ?? data.name, settings.loss);
    }
    // the fully-connected part sees every data set through the frozen prefix, if any
    [calibration, test] = [dataForModel(loaded, calibration), dataForModel(loaded, test)];
    train = train && dataForModel(loaded, train);
  } else {
    if (settings.dataset === undefined || train === undefined) {
      throw new EcpruneError('usage', 'give a model file, or --dataset NAME to train one');
    }
    const sizes = await architectureFor(train, settings.layers);
    if (usesNonlinear(methods))
      checkNonlinearSize(denseWeightCount(sizes), calibration.samples, settings.nonlinearSamples);
    const trained = await trainCached(
      {
        dataset: settings.dataset,
        sizes,
        activation: settings.activation,
        settings: trainingSettings(settings),
        cacheDir: settings.cacheDir,
        quiet: settings.quiet,
      },
      train,
    );
    model = trained.mlp;
    modelText =
      `${describeArchitecture(model)}, trained ${settings.epochs} epochs on ${train.name} (Adam, learning rate ${settings.lr}, ` +
      `batch ${settings.batchSize}, seed ${settings.seed}); cached as ${trained.file}`;
  }
  const progress = stageProgress(settings.quiet);
  const printRow = tablePrinter((line) => console.log(line), methods);
  const rows = await runSweep(model, calibration, test, {
    methods,
    sparsities: settings.sparsities,
    scopes: settings.scope,
    finetuneEpochs: settings.finetuneEpochs,
    seeds: settings.seeds,
    seed: settings.seed,
    train,
    training: trainingSettings(settings),
    loss: settings.loss,
    nonlinearSamples: settings.nonlinearSamples,
    onProgress: progress.update,
    onRow(row) {
      progress.stop();
      printRow(row);
    },
  }).finally(progress.stop);
  console.log(`\n${formatBest(rows)}`);

  const sizes = layerSizes(model);
  const command = reproduceCommand(settings, sizes, methods);
  const report = await writeReportFolder(
    settings.output,
    rows,
    {
      title: describe.title ?? `EC pruning study: ${sizes.join('-')} on ${test.name}`,
      model: modelText,
      data: `${test.name}: ${test.samples.toLocaleString('en')} samples`,
      heldOut:
        settings.data === undefined || path.resolve(settings.data) !== path.resolve(settings.calib ?? ''),
      calibration: `${calibration.name}: ${calibration.samples.toLocaleString('en')} samples`,
      command: describe.command ? `${describe.command}\n# the same as:\n${command}` : command,
      features: sizes[0],
      layerShapes: model.layers.map((layer) => `${layer.weight.rows}×${layer.weight.cols}`),
    },
    {
      force: settings.force,
      inputs: [...modelFiles, ...dataFiles],
    },
  );
  console.log(`report: ${report}`);
  return report;
}
