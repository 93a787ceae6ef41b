import { Command, InvalidArgumentError } from 'commander';
import type { Dataset } from '../../data/dataset.js';
import { EcpruneError } from '../../errors.js';
import type { ModelShape } from '../../graph/run.js';
import { layerSizes } from '../../model/mlp.js';
import { checkOutputPath, withParentDir, writeOutputAtomic } from '../../node/files.js';
import { loadModel, requireChain } from '../../node/models.js';
import { type CompressProbe, compress } from '../../pipeline/compress.js';
import { compressTable } from '../../report/compress.js';
import { CODEBOOK_BITS } from '../../runtime/index.js';
import { estimateTrainMemory } from '../../train/train.js';
import {
  checkDataFitsModel,
  checkMemory,
  checkTargetsFit,
  type DataChoice,
  inputFiles,
  openData,
  targetsName,
} from '../data.js';
import { archOption, MODEL_FILES, parseMethod, parseNonNegativeInt, parsePositiveInt } from '../options.js';
import { progressBar } from '../progress.js';
import { addTrainingDataOptions, parseFraction, parseLearningRate, trainingDataChoice } from './train.js';

const EXAMPLES = `
Stages: EC pruning with fine-tuning, weight sharing (a k-means codebook of 2^bits values per layer,
centroids fine-tuned), then .ecsr version 2 (Huffman-coded indices). The search keeps the
validation accuracy within --max-accuracy-drop points of the dense model's: bisection over the
sparsity (first probe --max-sparsity, then the geometric mean of the kept fractions), then the fewest
codebook bits. Each sparsity probe prunes the dense model gradually while fine-tuning it (EC at
each of about 10 pruning steps over the first two thirds of --finetune-epochs, masks held after). The test data, when given
(--test-data, or the test split of --dataset), is reported in the table and never steers the search.
With --validation f, train the dense model with the same --validation f --seed s, so that it has not
seen the validation part either.

Examples:
  $ ecprune train --dataset mnist --layers 784,300,100,10 --epochs 10 --validation 0.1 --seed 0 -o model.onnx
  $ ecprune compress model.onnx --dataset mnist --validation 0.1 --seed 0 -o model.ecsr
  $ ecprune compress model.onnx --data x.npy --labels y.npy --val-data xv.npy --val-labels yv.npy --max-accuracy-drop 0.5 -o model.ecsr`;

function parsePoints(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && value <= 100))
    throw new InvalidArgumentError(`expected accuracy points from 0 to 100, got '${text}'`);
  return value;
}

function parseBits(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < CODEBOOK_BITS.min || value > CODEBOOK_BITS.max)
    throw new InvalidArgumentError(
      `expected ${CODEBOOK_BITS.min} to ${CODEBOOK_BITS.max} bits, got '${text}'`,
    );
  return value;
}

/** A file pair given as `--<name>-data` and `--<name>-labels`: both or neither. */
function filePair(
  what: string,
  data: string | undefined,
  labels: string | undefined,
): DataChoice | undefined {
  if (data === undefined && labels === undefined) return undefined;
  if (data === undefined || labels === undefined) {
    throw new EcpruneError('usage', `give --${what}-data and --${what}-labels together`);
  }
  return { file: data, labels, split: 'test' };
}

/** Opens held-out data and checks it against the model like the training data. */
async function openHeldOut(
  choice: DataChoice,
  what: string,
  shape: ModelShape,
  modelFile: string,
): Promise<Dataset> {
  const data = await openData(choice, what);
  checkDataFitsModel(data, shape, modelFile);
  checkTargetsFit(data, shape, targetsName(choice, data));
  return data;
}

function describeProbe(probe: CompressProbe): string {
  const point =
    probe.stage === 'prune'
      ? `pruned gradually to ${(100 * probe.sparsity).toFixed(1)} % while fine-tuning`
      : `${probe.bits}-bit codebooks at ${(100 * probe.sparsity).toFixed(1)} %`;
  return `${point}: validation accuracy ${(100 * probe.validationAccuracy).toFixed(2)} % (${probe.accepted ? 'within' : 'outside'} the budget)`;
}

export function compressCommand(): Command {
  const command = new Command('compress')
    .description('the smallest .ecsr file within an accuracy budget: pruning, weight sharing, entropy coding')
    .argument('<model>', `the dense model (${MODEL_FILES})`)
    .requiredOption('-o, --output <file>', 'where to write the compressed model (.ecsr version 2)')
    .option(
      '--val-data <file>',
      'validation inputs the search is judged on (default: --validation of the training data)',
    )
    .option('--val-labels <file>', 'class ids of the validation inputs')
    .option('--test-data <file>', 'test inputs, reported in the table only')
    .option('--test-labels <file>', 'class ids of the test inputs')
    .option(
      '--max-accuracy-drop <points>',
      'validation accuracy may fall this many points below the dense model',
      parsePoints,
      0.1,
    )
    .option('--max-sparsity <fraction>', 'the first and largest sparsity probed', parseFraction, 0.98)
    .option(
      '--sparsity-probes <n>',
      'bisection steps over the sparsity after the first probe',
      parseNonNegativeInt,
      4,
    )
    .option('--min-bits <n>', 'the fewest codebook bits tried', parseBits, CODEBOOK_BITS.min)
    .option('--max-bits <n>', 'the most codebook bits tried', parseBits, CODEBOOK_BITS.max)
    .option('--method <name>', 'the pruning criterion', parseMethod, 'ec')
    .option('--calib-samples <n>', 'training samples that calibrate each pruning', parsePositiveInt, 1000)
    .option(
      '--finetune-epochs <n>',
      'epochs of each sparsity probe: pruned gradually over the first two thirds, masks held after',
      parseNonNegativeInt,
      3,
    )
    .option('--centroid-epochs <n>', 'epochs of centroid fine-tuning per codebook', parseNonNegativeInt, 1)
    .option('--lr <rate>', 'Adam learning rate of the fine-tuning', parseLearningRate, 1e-3)
    .option('--batch-size <n>', 'training mini-batch size', parsePositiveInt, 128)
    .option(
      '--seed <n>',
      'seed of the validation split, the shuffles and the k-means',
      parseNonNegativeInt,
      0,
    )
    .addOption(archOption())
    .option('--force', 'overwrite the output if it exists')
    .option('--quiet', 'no progress bar');
  addTrainingDataOptions(command);
  return command.addHelpText('after', EXAMPLES).action(async (modelFile: string, flags) => {
    const trainChoice = trainingDataChoice(flags);
    const validationChoice = filePair('val', flags.valData, flags.valLabels);
    const testChoice =
      filePair('test', flags.testData, flags.testLabels) ??
      (flags.dataset === undefined ? undefined : { dataset: flags.dataset, split: 'test' as const });
    if (validationChoice && flags.validation !== undefined) {
      throw new EcpruneError('usage', 'give --val-data/--val-labels or --validation <fraction>, not both');
    }
    if (flags.minBits > flags.maxBits) {
      throw new EcpruneError('usage', `--min-bits ${flags.minBits} is above --max-bits ${flags.maxBits}`);
    }
    const inputs = [
      modelFile,
      ...[trainChoice, validationChoice, testChoice].flatMap((c) => (c ? inputFiles(c) : [])),
    ];
    const write = { force: flags.force, inputs };
    await checkOutputPath(flags.output, write);
    const model = await loadModel(modelFile, { arch: flags.arch });
    write.inputs.push(...model.files);
    await checkOutputPath(flags.output, write);
    // before any work: the result must be a file the runtime runs
    const what = 'compress (the .ecsr runtime)';
    const dense = requireChain(model, what);
    const sizes = layerSizes(dense);
    checkMemory(estimateTrainMemory(sizes, flags.batchSize), `compressing ${sizes.join('-')}`, modelFile);
    const train = await openHeldOut(trainChoice, 'training', model.shape, modelFile);
    const validation =
      validationChoice && (await openHeldOut(validationChoice, 'validation', model.shape, modelFile));
    const test = testChoice && (await openHeldOut(testChoice, 'test', model.shape, modelFile));

    let bar = progressBar('compress', 'probes', flags.quiet);
    let last = { step: 0, steps: 1 };
    const result = await compress(dense, train, {
      validation,
      validationFraction: validation ? undefined : (flags.validation ?? 0.1),
      test,
      maxAccuracyDrop: flags.maxAccuracyDrop,
      maxSparsity: flags.maxSparsity,
      sparsityProbes: flags.sparsityProbes,
      minBits: flags.minBits,
      maxBits: flags.maxBits,
      method: flags.method,
      calibrationSamples: flags.calibSamples,
      finetuneEpochs: flags.finetuneEpochs,
      centroidEpochs: flags.centroidEpochs,
      learningRate: flags.lr,
      batchSize: flags.batchSize,
      seed: flags.seed,
      onStep(step, steps) {
        last = { step, steps };
        bar.update(step - 1, steps);
      },
      onProbe(probe) {
        bar.stop();
        console.log(`compress: probe ${last.step}/${last.steps}: ${describeProbe(probe)}`);
        bar = progressBar('compress', 'probes', flags.quiet);
        bar.update(last.step, last.steps);
      },
    }).finally(() => bar.stop());
    await withParentDir(flags.output, () => writeOutputAtomic(flags.output, result.file, write));
    console.log(
      `compress: ${(100 * result.sparsity).toFixed(1)} % sparse, ${result.bits}-bit codebooks, validation accuracy at least ` +
        `${(100 * result.threshold).toFixed(2)} % (dense minus ${flags.maxAccuracyDrop} points): wrote ${flags.output}`,
    );
    console.log(compressTable(result.stages));
  });
}
