import { Command, Option } from 'commander';
import type { Dataset } from '../../data/dataset.js';
import type { Model } from '../../graph/graph.js';
import { chainOf } from '../../graph/mlp-graph.js';
import type { ModelShape } from '../../graph/run.js';
import { weightCount } from '../../model/mlp.js';
import { checkModelOutput, dataForModel, loadModel, requireChain, saveModel } from '../../node/models.js';
import {
  chainOnlyVariant,
  DEFAULT_RECIPE,
  type PruneOptions,
  prune,
  pruneMetadata,
} from '../../pipeline/prune.js';
import { formatVariant } from '../../pipeline/variant-name.js';
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
  parseLoss,
  parseNonNegativeInt,
  parsePositiveInt,
  parseScope,
  parseSparsity,
} from '../options.js';
import { progressBar } from '../progress.js';
import { CALIBRATION_PHASES, startClock } from '../timings.js';
import {
  addVariantOptions,
  describeVariant,
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
      // the earlier name; --labels goes with --data everywhere else (eval, train, finetune, sweep)
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
    labels: flags.calibLabels ?? flags.labels,
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
  $ ecprune prune model.onnx --calib x.npy --calib-labels y.npy --method gradmag --scope layer -o out.onnx`;

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
      `ec (the paper's one-shot EC), ec-nocomp, obd, magnitude, magnitude-comp, gradmag, random, or obs (reference that changes surviving weights); without it and without variant flags, the default recipe (${formatVariant(DEFAULT_RECIPE)}, see the README)`,
      parsePruneMethod,
    )
    .option('--sparsity <s>', 'fraction of weights to remove, in [0, 1)', parseSparsity, 0.9)
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
    );
  addCalibrationOptions(command);
  addVariantOptions(command);
  return command
    .addHelpText('after', EXAMPLES + VARIANT_EXAMPLES)
    .action(async (modelFile: string, flags) => {
      const clock = startClock(CALIBRATION_PHASES);
      const writeOptions = {
        force: flags.force,
        inputs: [modelFile, ...inputFiles(calibrationChoice(flags))],
      };
      await checkModelOutput(flags.output, writeOptions);
      const model = await loadModel(modelFile, { arch: flags.arch });
      const memory = {
        what: 'pruning',
        file: modelFile,
        probes: flags.probes,
        gradmag: flags.method === 'gradmag',
        sparseOnnx: flags.onnxSparse,
      };
      const epochs: number = flags.finetuneEpochs;
      const variants = variantOptions(flags);
      const chainOnly = chainOnlyVariant(variants);
      if (chainOnly !== undefined) requireChain(model, chainOnly);
      if (epochs > 0) requireChain(model, '--finetune-epochs');
      checkCalibrationMemory(model.shape, flags, memory);
      const calibration = await openData(calibrationChoice(flags), 'calibration');
      checkCalibration(model.shape, modelFile, calibration, flags, memory);
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
      };
      const data = dataForModel(model, calibration);
      // the graph keeps what the chain view cannot say (a layer stored without a bias); the
      // chain-only variants take the chain view of it themselves
      const result = await prune(model.graph, data, options).finally(bar.stop);
      clock.skip(); // prune() timed its own phases
      let tuned: Model = result.model;
      if (epochs > 0) {
        // checked to be a chain before any work
        const chain = 'nodes' in tuned ? chainOf(tuned)! : tuned;
        tuned = (await finetune(chain, calibration, { epochs, seed: flags.seed, loss: flags.loss })).model;
        clock.lap('finetune');
      }
      await saveModel(flags.output, tuned, {
        ...writeOptions,
        like: model,
        onnxSparse: flags.onnxSparse,
        metadata: {
          ...pruneMetadata(result, calibration, describeVariant(flags)),
          ...(epochs > 0 ? { ecprune_finetune_epochs: String(epochs) } : {}),
        },
      });
      clock.lap('write');
      printPruneSummary(describeVariant(flags), result, model.graph, flags.output);
      if (flags.timings) clock.print();
    });
}

function printPruneSummary(
  method: string,
  result: Awaited<ReturnType<typeof prune>>,
  dense: Parameters<typeof weightCount>[0],
  output: string,
) {
  const total = weightCount(dense);
  const pruned = result.keepMasks.reduce((sum, mask) => sum + mask.reduce((n, keep) => n + (1 - keep), 0), 0);
  console.log(
    `${method}, ${result.scope} scope: pruned ${pruned.toLocaleString('en')} of ${total.toLocaleString('en')} weights ` +
      `(${((100 * pruned) / total).toFixed(1)} %), calibrated on ${result.statistics.samples} samples`,
  );
  result.keepMasks.forEach((mask, l) => {
    const kept = mask.reduce((n, keep) => n + keep, 0);
    const { rows, cols } = dense.layers[l].weight;
    const name = 'name' in dense.layers[l] ? ` ${String(dense.layers[l].name)}` : '';
    console.log(
      `  layer ${l}${name}  ${rows}x${cols}  kept ${kept.toLocaleString('en')} (${((100 * kept) / mask.length).toFixed(1)} %)`,
    );
  });
  if (result.addedBiases.length > 0) {
    console.log(`  added a bias to compensate into (stored without one): ${result.addedBiases.join(', ')}`);
  }
  if (result.uncompensated.length > 0) {
    console.log(`  not compensated (no bias, --no-new-bias): ${result.uncompensated.join(', ')}`);
  }
  console.log(`wrote ${output}`);
}
