import { Command } from 'commander';
import { evaluate } from '../../evaluate.js';
import { loadModel } from '../../node/models.js';
import { openData } from '../data.js';
import { parseLoss, parsePositiveInt } from '../options.js';

const EXAMPLES = `
Examples:
  $ ecprune eval pruned.onnx --data x_test.npy --labels y_test.npy
  $ ecprune eval pruned.onnx --dataset mnist --reference model.onnx --json`;

export function evalCommand(): Command {
  return new Command('eval')
    .description('accuracy and loss on labelled data, and output error against the dense model')
    .argument('<model>', 'the model to evaluate (.onnx)')
    .option('--data <file>', 'inputs: .npy, .npz, .csv or IDX')
    .option('--dataset <name>', 'a built-in data set (its test split) instead of --data')
    .option('--labels <file>', 'targets: class ids (accuracy + cross-entropy) or values (MSE)')
    .option('--label-column <name>', 'CSV: the column that holds the targets')
    .option('--reference <model>', 'the dense model: also report the mean squared output difference')
    .option('--loss <kind>', 'ce or mse; default from the labels', parseLoss)
    .option('--samples <n>', 'use only the first n samples', parsePositiveInt)
    .option('--batch-size <n>', 'samples per batch', parsePositiveInt, 1000)
    .option('--json', 'print the result as JSON')
    .addHelpText('after', EXAMPLES)
    .action(async (modelFile: string, flags) => {
      const model = await loadModel(modelFile);
      const reference = flags.reference ? await loadModel(flags.reference) : undefined;
      const data = await openData(
        {
          file: flags.data,
          labels: flags.labels,
          dataset: flags.dataset,
          split: 'test',
          samples: flags.samples,
          labelColumn: flags.labelColumn,
        },
        'evaluation',
      );
      const result = await evaluate(model.mlp, data, {
        reference: reference?.mlp,
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
