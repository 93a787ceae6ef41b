import { Command } from 'commander';
import { layerSizes, nonzeroWeightCount, weightCount } from '../../model/mlp.js';
import { checkModelOutput, dataForModel, loadModel, saveModel } from '../../node/models.js';
import { estimateTrainMemory, finetune } from '../../train/train.js';
import { VERSION } from '../../version.js';
import {
  checkDataFitsModel,
  checkMemory,
  checkTargetsFit,
  inputFiles,
  openData,
  targetsName,
} from '../data.js';
import { MODEL_FILES } from '../options.js';
import {
  addPruningScheduleOptions,
  addTrainingDataOptions,
  addTrainingOptions,
  pruningFromFlags,
  pruningMetadata,
  trainingDataChoice,
  trainingProgress,
  trainingSettings,
} from './train.js';

const EXAMPLES = `
The weights that are zero in the input model stay exactly zero; every other weight of the
fully-connected layers and every bias they store trains. Any graph model (ONNX, TF.js) fine-tunes:
the loss gradient reaches each fully-connected layer through the whole graph; BatchNorm and
LayerNorm parameters, other constants and a frozen prefix (run forward only) stay as they are.

Examples:
  $ ecprune finetune pruned.onnx --dataset mnist --epochs 2 -o pruned-ft.onnx
  $ ecprune finetune pruned.onnx --data x_train.npy --labels y_train.npy --epochs 3 --lr 3e-4 -o out.onnx
  $ ecprune finetune dense.onnx --dataset mnist --epochs 4 --prune-to 0.95 --prune-end 3 -o sparse.onnx
    (gradual pruning from the model's own sparsity to 95 % over 3 epochs, then 1 epoch with the masks held)`;

export function finetuneCommand(): Command {
  const command = new Command('finetune')
    .description(
      'train a model further, keeping its pruned weights at zero (with --prune-to, pruning it gradually as it trains)',
    )
    .argument('<model>', `the model, pruned or dense (${MODEL_FILES})`)
    .requiredOption(
      '-o, --output <file>',
      'where to write the fine-tuned model (its format from the extension)',
    )
    .option('--force', 'overwrite the output if it exists')
    .option('--quiet', 'no progress bar');
  addTrainingDataOptions(command);
  addTrainingOptions(command, 2);
  addPruningScheduleOptions(command, "the model's own sparsity");
  return command.addHelpText('after', EXAMPLES).action(async (modelFile: string, flags) => {
    const write = { force: flags.force, inputs: [modelFile, ...inputFiles(trainingDataChoice(flags))] };
    await checkModelOutput(flags.output, write);
    const model = await loadModel(modelFile);
    const sizes = layerSizes(model.graph);
    checkMemory(estimateTrainMemory(sizes, flags.batchSize), `fine-tuning ${sizes.join('-')}`, modelFile);
    const data = await openData(trainingDataChoice(flags), 'training');
    checkDataFitsModel(data, model.shape, modelFile);
    checkTargetsFit(data, model.shape, targetsName(trainingDataChoice(flags), data), flags.loss);
    const before = nonzeroWeightCount(model.graph);
    const pruning = pruningFromFlags(flags, data, 1 - before / weightCount(model.graph));
    const progress = trainingProgress('finetune', flags.epochs, flags.quiet);
    const result = await finetune(model.graph, dataForModel(model, data), {
      ...trainingSettings(flags),
      validationFraction: flags.validation,
      pruning,
      ...progress,
    }).finally(progress.stop);
    await saveModel(flags.output, result.model, {
      ...write,
      like: model,
      metadata: {
        ecprune_version: VERSION,
        ecprune_finetune_epochs: String(flags.epochs),
        ecprune_finetuned_on: data.name,
        ...pruningMetadata(pruning),
      },
    });
    const nonzero = nonzeroWeightCount(result.model);
    console.log(
      `fine-tuned ${modelFile} on ${data.name} for ${flags.epochs} epochs (${nonzero.toLocaleString('en')} non-zero weights, ` +
        `${before.toLocaleString('en')} before): wrote ${flags.output}`,
    );
  });
}
