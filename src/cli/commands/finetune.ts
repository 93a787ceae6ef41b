import { Command } from 'commander';
import { layerSizes, nonzeroWeightCount } from '../../model/mlp.js';
import { checkModelOutput, loadModel, requireChain, saveModel } from '../../node/models.js';
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
  addTrainingDataOptions,
  addTrainingOptions,
  trainingDataChoice,
  trainingProgress,
  trainingSettings,
} from './train.js';

const EXAMPLES = `
The weights that are zero in the input model stay exactly zero; every other weight and every bias trains.

Examples:
  $ ecprune finetune pruned.onnx --dataset mnist --epochs 2 -o pruned-ft.onnx
  $ ecprune finetune pruned.onnx --data x_train.npy --labels y_train.npy --epochs 3 --lr 3e-4 -o out.onnx`;

export function finetuneCommand(): Command {
  const command = new Command('finetune')
    .description('train a pruned network further, keeping its pruned weights at zero')
    .argument('<model>', `the pruned model (${MODEL_FILES})`)
    .requiredOption(
      '-o, --output <file>',
      'where to write the fine-tuned model (its format from the extension)',
    )
    .option('--force', 'overwrite the output if it exists')
    .option('--quiet', 'no progress bar');
  addTrainingDataOptions(command);
  addTrainingOptions(command, 2);
  return command.addHelpText('after', EXAMPLES).action(async (modelFile: string, flags) => {
    const write = { force: flags.force, inputs: [modelFile, ...inputFiles(trainingDataChoice(flags))] };
    await checkModelOutput(flags.output, write);
    const model = await loadModel(modelFile);
    const mlp = requireChain(model, 'finetune');
    const sizes = layerSizes(mlp);
    checkMemory(estimateTrainMemory(sizes, flags.batchSize), `fine-tuning ${sizes.join('-')}`, modelFile);
    const data = await openData(trainingDataChoice(flags), 'training');
    checkDataFitsModel(data, model.shape, modelFile);
    checkTargetsFit(data, model.shape, targetsName(trainingDataChoice(flags), data), flags.loss);
    const progress = trainingProgress('finetune', flags.epochs, flags.quiet);
    const result = await finetune(mlp, data, {
      ...trainingSettings(flags),
      validationFraction: flags.validation,
      ...progress,
    }).finally(progress.stop);
    await saveModel(flags.output, result.model, {
      ...write,
      like: model,
      metadata: {
        ecprune_version: VERSION,
        ecprune_finetune_epochs: String(flags.epochs),
        ecprune_finetuned_on: data.name,
      },
    });
    const nonzero = nonzeroWeightCount(result.model);
    console.log(
      `fine-tuned ${modelFile} on ${data.name} for ${flags.epochs} epochs (${nonzero.toLocaleString('en')} non-zero weights, ` +
        `${nonzeroWeightCount(mlp).toLocaleString('en')} before): wrote ${flags.output}`,
    );
  });
}
