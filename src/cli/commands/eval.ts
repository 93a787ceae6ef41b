import { Command } from 'commander';
import { EcpruneError } from '../../errors.js';
import type { ModelShape } from '../../graph/run.js';
import { dataForModel, loadModel } from '../../node/models.js';
import { evaluate } from '../../train/evaluate.js';
import { checkDataFitsModel, checkTargetsFit, type DataChoice, openData, targetsName } from '../data.js';
import { archOption, MODEL_FILES, parseLoss, parsePositiveInt } from '../options.js';

const EXAMPLES = `
Examples:
  $ ecprune eval pruned.onnx --data x_test.npy --labels y_test.npy
  $ ecprune eval pruned.onnx --dataset mnist --reference model.onnx --json`;

/** A reference model must take the same inputs and give the same outputs as the model. */
function checkSameInterface(
  model: ModelShape,
  modelFile: string,
  reference: ModelShape,
  referenceFile: string,
): void {
  const { inputs, outputs } = model;
  if (reference.inputs !== inputs || reference.outputs !== outputs) {
    throw new EcpruneError(
      'input',
      `the reference maps ${reference.inputs} inputs to ${reference.outputs} outputs, the model (${modelFile}) ${inputs} to ${outputs}`,
      referenceFile,
    );
  }
}

export function evalCommand(): Command {
  return new Command('eval')
    .description('accuracy and loss on labelled data, and output error against the dense model')
    .argument('<model>', `the model to evaluate (${MODEL_FILES})`)
    .option('--data <file>', 'inputs: .npy, .npz, .csv or IDX')
    .option('--dataset <name>', 'a built-in data set (its test split) instead of --data')
    .option('--labels <file>', 'targets: class ids (accuracy + cross-entropy) or values (MSE)')
    .option('--label-column <name>', 'CSV: the column that holds the targets')
    .option('--reference <model>', 'the dense model: also report the mean squared output difference')
    .option('--loss <kind>', 'ce or mse; default from the labels', parseLoss)
    .option('--samples <n>', 'use only the first n samples', parsePositiveInt)
    .option('--batch-size <n>', 'samples per batch', parsePositiveInt, 1000)
    .addOption(archOption())
    .option('--json', 'print the result as JSON')
    .addHelpText('after', EXAMPLES)
    .action(async (modelFile: string, flags) => {
      const model = await loadModel(modelFile, { arch: flags.arch });
      const reference = flags.reference ? await loadModel(flags.reference, { arch: flags.arch }) : undefined;
      if (reference !== undefined)
        checkSameInterface(model.shape, modelFile, reference.shape, flags.reference);
      const choice: DataChoice = {
        file: flags.data,
        labels: flags.labels,
        dataset: flags.dataset,
        split: 'test',
        samples: flags.samples,
        labelColumn: flags.labelColumn,
      };
      const data = await openData(choice, 'evaluation');
      checkDataFitsModel(data, model.shape, modelFile);
      checkTargetsFit(data, model.shape, targetsName(choice, data), flags.loss);
      if (reference?.prefix && !model.prefix) {
        throw new EcpruneError(
          'usage',
          'the reference has a frozen prefix the model does not have',
          flags.reference,
        );
      }
      const result = await evaluate(model.graph, dataForModel(model, data), {
        reference: reference?.graph,
        loss: flags.loss,
        batchSize: flags.batchSize,
      });
      if (flags.json) {
        console.log(JSON.stringify({ model: modelFile, data: data.name, ...result }));
        return;
      }
      console.log(`${modelFile} on ${data.name} (${result.samples} samples)`);
      if (result.accuracy !== undefined)
        console.log(`  accuracy        ${(100 * result.accuracy).toFixed(2)} %`);
      if (result.meanLoss !== undefined)
        console.log(
          `  ${result.loss === 'ce' ? 'cross-entropy' : 'MSE          '}   ${result.meanLoss.toPrecision(5)}`,
        );
      if (result.outputMse !== undefined)
        console.log(`  output MSE vs ${flags.reference}: ${result.outputMse.toPrecision(5)}`);
      if (result.meanLoss === undefined && result.outputMse === undefined) {
        console.log('  (no labels and no --reference: nothing to measure; pass --labels or --reference)');
      }
    });
}
