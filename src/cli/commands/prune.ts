import path from 'node:path';
import { Command, Option } from 'commander';
import type { Dataset } from '../../data/dataset.js';
import { EcpruneError, withFlags } from '../../errors.js';
import type { Model } from '../../graph/graph.js';
import type { ModelShape } from '../../graph/run.js';
import { weightCount } from '../../model/mlp.js';
import { checkFormatHolds, checkModelOutput, dataForModel, loadModel, saveModel } from '../../node/models.js';
import { type BudgetProbe, DEFAULT_BUDGET_RESOLUTION, pruneToBudget } from '../../pipeline/budget.js';
import {
  checkVariantApplies,
  DEFAULT_RECIPE,
  type PruneOptions,
  type PruneResult,
  prune,
} from '../../pipeline/prune.js';
import { formatVariant, pruneMetadata, pruneMethodsText } from '../../pipeline/variant-name.js';
import { describeThinLayer, MIN_KEPT_PER_NEURON, thinLayers } from '../../select/layers.js';
import { finetune } from '../../train/train.js';
import {
  checkDataFitsModel,
  checkPruneMemory,
  checkTargetsFit,
  type DataChoice,
  inputFiles,
  openData,
  targetsName,
} from '../data.js';
import {
  archOption,
  MODEL_FILES,
  parseFraction,
  parseLayerList,
  parseLayerSparsity,
  parseLoss,
  parseNonNegative,
  parseNonNegativeInt,
  parsePositiveInt,
  parseScope,
  parseSparsity,
} from '../options.js';
import { progressBar } from '../progress.js';
import { CALIBRATION_PHASES, startClock } from '../timings.js';
import {
  addVariantOptions,
  nonlinearSamplesOption,
  parsePruneMethod,
  VARIANT_EXAMPLES,
  variantOptions,
} from '../variants.js';

/** Options every command that reads calibration data shares. */
export function addCalibrationOptions(command: Command): Command {
  return (
    command
      .option('--calib <file>', 'calibration inputs: .npy, .npz, .csv or IDX (a slice of the training data)')
      .option(
        '--dataset <name>',
        'a built-in data set instead of --calib: mnist, fashion-mnist, diffusion-sorption',
      )
      .option(
        '--calib-labels <file>',
        'targets of the calibration samples (class ids or values); needed by gradmag',
      )
      // with --data (prune's held-out data) its labels, as with --data everywhere else (eval,
      // train, finetune, sweep); without it, the earlier name of --calib-labels
      .addOption(new Option('--labels <file>').hideHelp())
      .option('--label-column <name>', 'CSV: the column that holds the targets')
      .option('--calib-samples <n>', 'use only the first n calibration samples', parsePositiveInt)
      .option(
        '--batch-size <n>',
        'samples per batch; memory grows with it, not with N',
        parsePositiveInt,
        1000,
      )
      .option(
        '--no-graph',
        'run the calibration pass GEMM by GEMM instead of one onnxruntime graph per batch (slower; --timings then splits forward, sensitivity and statistics)',
      )
      .option('--seed <n>', 'seed of the random method', parsePositiveIntOrZero, 0)
      .addOption(
        new Option(
          '--loss <kind>',
          'the loss: ce (class ids) or mse, for gradmag, --sensitivity loss and the default recipe; default from the labels (the default recipe without labels: ce for a softmax head or several outputs, else mse)',
        ).argParser(parseLoss),
      )
  );
}

/** What the memory estimate of a calibration command depends on besides the model and the data. */
export interface CalibrationMemory {
  readonly what: string;
  readonly file?: string;
  readonly probes?: number;
  readonly gradmag?: boolean;
  readonly sparseOnnx?: boolean;
}

/** Before the data is opened: the memory the model's part of the work needs. */
export function checkCalibrationMemory(
  mlp: ModelShape,
  flags: CalibrationFlags,
  memory: CalibrationMemory,
): void {
  checkPruneMemory(mlp, { batchSize: flags.batchSize, ...memory, lossGradient: memory.gradmag });
}

/**
 * After the data is opened, before any work: its features and labels against the model and the
 * loss, and the memory with batches of the data's size.
 */
export function checkCalibration(
  mlp: ModelShape,
  modelFile: string,
  calibration: Dataset,
  flags: CalibrationFlags,
  memory: CalibrationMemory,
): void {
  checkDataFitsModel(calibration, mlp, modelFile);
  checkTargetsFit(calibration, mlp, targetsName(calibrationChoice(flags), calibration), flags.loss);
  checkPruneMemory(mlp, {
    batchSize: flags.batchSize,
    samples: calibration.samples,
    ...memory,
    lossGradient: memory.gradmag,
  });
}

function parsePositiveIntOrZero(text: string): number {
  return text === '0' ? 0 : parsePositiveInt(text);
}

export interface CalibrationFlags {
  calib?: string;
  /** prune's held-out data: with it, --labels are its labels */
  data?: string;
  dataset?: string;
  calibLabels?: string;
  labels?: string;
  labelColumn?: string;
  calibSamples?: number;
  batchSize: number;
  seed: number;
  loss?: 'ce' | 'mse';
  quiet?: boolean;
  timings?: boolean;
}

export function calibrationChoice(flags: CalibrationFlags): DataChoice {
  return {
    file: flags.calib,
    labels: flags.calibLabels ?? (flags.data === undefined ? flags.labels : undefined),
    dataset: flags.dataset,
    split: 'train',
    samples: flags.calibSamples,
    labelColumn: flags.labelColumn,
  };
}

const EXAMPLES = `
Examples:
  $ ecprune prune model.onnx --calib calib.npy --sparsity 0.9 -o pruned.onnx
  $ ecprune prune model.onnx --dataset mnist --calib-samples 2000 --method magnitude -o mag.onnx
  $ ecprune prune model.onnx --calib x.npy --calib-labels y.npy --method gradmag --scope layer -o out.onnx

Per layer (names as ecprune inspect lists them, or indices). A layer left with fewer than
${MIN_KEPT_PER_NEURON} weights per output neuron on average (a quarter of its inputs when it has fewer
than ${4 * MIN_KEPT_PER_NEURON}) is named in a warning:
  $ ecprune prune model.onnx --calib calib.npy --sparsity 0.9 --exclude head -o out.onnx
  $ ecprune prune model.onnx --calib calib.npy --scope layer --layer-sparsity fc1:0.95,head:0.5 -o out.onnx

Sparsity from a quality budget on held-out data (prints the curve it probed and the choice):
  $ ecprune prune model.onnx --calib calib.npy --data x_test.npy --labels y_test.npy --min-accuracy 0.97 -o out.onnx
  $ ecprune prune model.onnx --calib calib.npy --data x_test.npy --labels y_test.npy --max-loss-increase 0.02 -o out.onnx`;

export function pruneCommand(): Command {
  const command = new Command('prune')
    .description('remove the least important weights and compensate them through the biases (EC pruning)')
    .argument('<model>', `the trained model (${MODEL_FILES})`)
    .requiredOption(
      '-o, --output <file>',
      'where to write the pruned model (its format from the extension; .onnx or model.json for graphs)',
    )
    .option(
      '--method <name>',
      `${pruneMethodsText()}; the variant flags below add to a name. Without a method and without variant flags: the default recipe (${formatVariant(DEFAULT_RECIPE)}, see the README)`,
      parsePruneMethod,
    )
    .addOption(nonlinearSamplesOption())
    .option(
      '--sparsity <s>',
      'fraction of weights to remove, in [0, 1) (with --structure neuron: of hidden units)',
      parseSparsity,
      0.9,
    )
    .option(
      '--scope <scope>',
      'rank weights across all layers (global) or within each layer (layer)',
      parseScope,
      'global',
    )
    .option(
      '--onnx-sparse',
      'store the weights as ONNX sparse_initializer (onnxruntime densifies them at load)',
    )
    .addOption(archOption())
    .addOption(
      new Option(
        '--measure <tensor>',
        "what EC's output error is measured on: output (the model's output, a softmax head included) or logits (before a Softmax/LogSoftmax head)",
      )
        .choices(['output', 'logits'])
        .default('output'),
    )
    .option(
      '--no-new-bias',
      'keep the structure exactly: layers stored without a bias (and no BatchNorm after them) are pruned without compensation instead of gaining a bias',
    )
    .option('--force', 'overwrite the output if it exists')
    .option('--timings', 'print the time of each phase as one JSON line on stderr')
    .option('--quiet', 'no progress bar')
    .option(
      '--finetune-epochs <n>',
      'then fine-tune on the calibration data and labels (pruned weights stay 0)',
      parseNonNegativeInt,
      0,
    )
    .option(
      '--exclude <layers>',
      'comma-separated layers to keep dense: names as `inspect` lists them, or indices (e.g. the output layer)',
      parseLayerList,
    )
    .option(
      '--layer-sparsity <list>',
      'layers at a sparsity of their own, e.g. fc1:0.95,head:0.5 (names or indices); --sparsity and --scope apply to the rest',
      parseLayerSparsity,
    )
    .option(
      '--max-loss-increase <x>',
      "budget: the highest sparsity whose held-out mean loss (cross-entropy or MSE) is at most x above the dense model's",
      parseNonNegative,
    )
    .option(
      '--min-accuracy <a>',
      'budget: the highest sparsity whose held-out accuracy is at least a, in [0, 1]',
      parseFraction,
    )
    .option(
      '--resolution <r>',
      'budget: the sparsities searched are multiples of r, by bisection up to 0.99',
      parseSparsity,
      DEFAULT_BUDGET_RESOLUTION,
    )
    .option(
      '--data <file>',
      'budget: held-out inputs, with --labels <file> their targets; never the calibration data (with --dataset: its test split by default)',
    );
  addCalibrationOptions(command);
  addVariantOptions(command);
  return command
    .addHelpText('after', EXAMPLES + VARIANT_EXAMPLES)
    .action(async (modelFile: string, flags, self: Command) => {
      const clock = startClock(CALIBRATION_PHASES);
      const budget = flags.maxLossIncrease !== undefined || flags.minAccuracy !== undefined;
      if (!budget && flags.data !== undefined) {
        throw new EcpruneError(
          'usage',
          '--data is the held-out data of a budget: add --max-loss-increase or --min-accuracy',
        );
      }
      const heldOutChoice = budget ? heldOutData(flags, self) : undefined;
      const writeOptions = {
        force: flags.force,
        inputs: [modelFile, ...inputFiles(calibrationChoice(flags)), ...inputFiles(heldOutChoice ?? {})],
      };
      await checkModelOutput(flags.output, writeOptions);
      const model = await loadModel(modelFile, { arch: flags.arch });
      const variants = variantOptions(flags);
      const memory = {
        what: 'pruning',
        file: modelFile,
        probes: variants.probes,
        gradmag: variants.method === 'gradmag',
        sparseOnnx: flags.onnxSparse,
      };
      const epochs: number = flags.finetuneEpochs;
      checkVariantApplies(model.graph, variants);
      await checkFormatHolds(flags.output, model);
      checkCalibrationMemory(model.shape, flags, memory);
      const calibration = await openData(calibrationChoice(flags), 'calibration');
      checkCalibration(model.shape, modelFile, calibration, flags, memory);
      const heldOut = heldOutChoice && (await openData(heldOutChoice, 'held-out'));
      if (heldOut) {
        checkDataFitsModel(heldOut, model.shape, modelFile);
        checkTargetsFit(heldOut, model.shape, targetsName(heldOutChoice, heldOut), flags.loss);
      }
      clock.lap('load');
      const bar = progressBar('statistics', 'samples', flags.quiet);
      const options: PruneOptions = {
        ...variants,
        measure: flags.measure,
        newBias: flags.newBias,
        sparsity: flags.sparsity,
        scope: flags.scope,
        seed: flags.seed,
        loss: flags.loss,
        batchSize: flags.batchSize,
        onProgress: bar.update,
        timings: clock.phases,
        nonlinearSamples: flags.nonlinearSamples,
        exclude: flags.exclude,
        layerSparsity: flags.layerSparsity,
      };
      const data = dataForModel(model, calibration);
      // the graph keeps what the chain view cannot say (a layer stored without a bias)
      const result: PruneResult = heldOut
        ? await searchBudget(model.graph, data, dataForModel(model, heldOut), options, flags).finally(
            bar.stop,
          )
        : await prune(model.graph, data, options).finally(bar.stop);
      clock.skip(); // prune() timed its own phases
      if (variants.structure !== 'neuron') {
        for (const thin of thinLayers(model.graph.layers, result.keepMasks))
          console.error(`ecprune: warning: ${withFlags(describeThinLayer(thin))}`);
      }
      let tuned: Model = result.model;
      if (epochs > 0) {
        tuned = (await finetune(tuned, data, { epochs, seed: flags.seed, loss: flags.loss })).model;
        clock.lap('finetune');
      }
      await saveModel(flags.output, tuned, {
        ...writeOptions,
        like: model,
        onnxSparse: flags.onnxSparse,
        metadata: {
          ...pruneMetadata(result, calibration),
          ...(epochs > 0 ? { ecprune_finetune_epochs: String(epochs) } : {}),
        },
      });
      clock.lap('write');
      printPruneSummary(formatVariant(result.recipe), result, model.graph, flags.output);
      if (flags.timings) clock.print();
    });
}

/** The held-out data a budget is measured on: --data/--labels, else the --dataset's test split. */
function heldOutData(
  flags: CalibrationFlags & { dataset?: string; labels?: string },
  command: Command,
): DataChoice {
  if (command.getOptionValueSource('sparsity') === 'cli')
    throw new EcpruneError(
      'usage',
      '--sparsity and a budget (--max-loss-increase, --min-accuracy) exclude each other',
    );
  if (flags.data !== undefined) {
    if (flags.calib !== undefined && path.resolve(flags.data) === path.resolve(flags.calib)) {
      throw new EcpruneError(
        'usage',
        'the budget is measured on held-out data: give --data other samples than --calib',
        flags.data,
      );
    }
    return { file: flags.data, labels: flags.labels, split: 'test', labelColumn: flags.labelColumn };
  }
  if (flags.dataset !== undefined) return { dataset: flags.dataset, split: 'test' };
  throw new EcpruneError(
    'usage',
    'a budget is measured on held-out data: give --data <inputs> --labels <targets> (other samples than --calib)',
  );
}

/** The budget search, its curve printed as probed and then in order of sparsity. */
async function searchBudget(
  graph: Model,
  calibration: Dataset,
  heldOut: Dataset,
  options: PruneOptions,
  flags: { maxLossIncrease?: number; minAccuracy?: number; resolution: number },
): Promise<PruneResult> {
  const { sparsity: _sparsity, ...rest } = options;
  const row = (probe: BudgetProbe) =>
    `  ${probe.sparsity.toFixed(4).padEnd(9)} ${probe.loss.toFixed(5).padStart(10)} ${
      probe.accuracy === undefined ? '         -' : probe.accuracy.toFixed(4).padStart(10)
    }  ${probe.met ? 'yes' : 'no'}${probe.sparsity === 0 ? ' (dense)' : ''}`;
  const budget =
    flags.minAccuracy !== undefined
      ? `held-out accuracy >= ${flags.minAccuracy}`
      : `held-out loss at most ${flags.maxLossIncrease} above the dense model's`;
  console.log(
    `budget: ${budget} on ${heldOut.name} (${heldOut.samples} samples); bisection over sparsities in steps of ${flags.resolution}`,
  );
  const header = `  ${'sparsity'.padEnd(9)} ${'loss'.padStart(10)} ${'accuracy'.padStart(10)}  met`;
  console.log(`probed, in order:\n${header}`);
  const search = await pruneToBudget(graph, calibration, heldOut, {
    ...rest,
    maxLossIncrease: flags.maxLossIncrease,
    minAccuracy: flags.minAccuracy,
    resolution: flags.resolution,
    onProbe: (probe) => console.log(row(probe)),
  });
  console.log(`the curve, by sparsity:\n${header}\n${search.probes.map(row).join('\n')}`);
  console.log(
    `chose sparsity ${search.sparsity}${
      search.failedAbove
        ? ` (${search.failedAbove.sparsity}, the next probed above, does not meet the budget)`
        : ' (the highest searched)'
    }`,
  );
  return search.result;
}

function printPruneSummary(
  method: string,
  result: Awaited<ReturnType<typeof prune>>,
  dense: Parameters<typeof weightCount>[0],
  output: string,
) {
  // ' fc1', or nothing for a layer without a name
  const layerName = (l: number) => ('name' in dense.layers[l] ? ` ${String(dense.layers[l].name)}` : '');
  if (result.neurons) printNeuronSummary(method, result, result.neurons, dense, layerName);
  else {
    const total = weightCount(dense);
    const pruned = result.keepMasks.reduce(
      (sum, mask) => sum + mask.reduce((n, keep) => n + (1 - keep), 0),
      0,
    );
    console.log(
      `${method}, ${result.scope} scope: pruned ${pruned.toLocaleString('en')} of ${total.toLocaleString('en')} weights ` +
        `(${((100 * pruned) / total).toFixed(1)} %), calibrated on ${result.statistics.samples} samples`,
    );
    result.keepMasks.forEach((mask, l) => {
      const kept = mask.reduce((n, keep) => n + keep, 0);
      const { rows, cols } = dense.layers[l].weight;
      console.log(
        `  layer ${l}${layerName(l)}  ${rows}x${cols}  kept ${kept.toLocaleString('en')} (${((100 * kept) / mask.length).toFixed(1)} %)`,
      );
    });
  }
  if (result.addedBiases.length > 0) {
    console.log(`  added a bias to compensate into (stored without one): ${result.addedBiases.join(', ')}`);
  }
  if (result.uncompensated.length > 0) {
    console.log(`  not compensated (no bias, --no-new-bias): ${result.uncompensated.join(', ')}`);
  }
  console.log(`wrote ${output}`);
}

/**
 * Neuron removal counts units, not weights: the sparsity is the fraction of units removed among the
 * units of the hidden layers that can lose them; the hidden layers left whole are named with the op
 * that keeps them so, and every layer's shape before and after.
 */
function printNeuronSummary(
  method: string,
  result: PruneResult,
  { layers, keep, leftWhole }: NonNullable<PruneResult['neurons']>,
  dense: Parameters<typeof weightCount>[0],
  layerName: (l: number) => string,
) {
  const units = layers.reduce((sum, l) => sum + dense.layers[l].weight.rows, 0);
  const removed = keep.reduce((sum, mask) => sum + mask.reduce((n, k) => n + (1 - k), 0), 0);
  console.log(
    `${method}, ${result.scope} scope: removed ${removed.toLocaleString('en')} of ${units.toLocaleString('en')} hidden units ` +
      `(${((100 * removed) / units).toFixed(1)} %) from the layers that can lose units (${layers.map((l) => layerName(l).trim() || `layer ${l}`).join(', ')}), ` +
      `calibrated on ${result.statistics.samples} samples`,
  );
  if (leftWhole.length > 0)
    console.log(`  left whole: ${leftWhole.map(({ name, reason }) => `${name} (${reason})`).join(', ')}`);
  dense.layers.forEach(({ weight }, l) => {
    const shrunk = result.model.layers[l].weight;
    console.log(
      `  layer ${l}${layerName(l)}  ${weight.rows}x${weight.cols} -> ${shrunk.rows}x${shrunk.cols}`,
    );
  });
}
