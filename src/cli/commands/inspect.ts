import { Command } from 'commander';
import { formatActivation } from '../../model/activations.js';
import { nonzeroWeightCount, weightCount } from '../../model/mlp.js';
import { loadModel } from '../../node/models.js';
import { archOption, MODEL_FILES } from '../options.js';

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('layers, shapes, activations, parameters and sparsity of a model')
    .argument('<model>', `the model (${MODEL_FILES})`)
    .addOption(archOption())
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExample:\n  $ ecprune inspect pruned.onnx')
    .action(async (modelFile: string, flags) => {
      const { mlp, format } = await loadModel(modelFile, { arch: flags.arch });
      const layers = mlp.layers.map((layer, l) => {
        const weights = layer.weight.data.length;
        const nonzero = nonzeroWeightCount({ layers: [layer] });
        return {
          layer: l,
          shape: [layer.weight.rows, layer.weight.cols],
          activation: formatActivation(layer.activation),
          weights,
          nonzero,
          biases: layer.bias.length,
          sparsity: 1 - nonzero / weights,
        };
      });
      const total = weightCount(mlp);
      const nonzero = nonzeroWeightCount(mlp);
      const summary = {
        file: modelFile,
        format,
        layers,
        weights: total,
        nonzero,
        sparsity: 1 - nonzero / total,
      };
      if (flags.json) {
        console.log(JSON.stringify(summary));
        return;
      }
      console.log(
        `${modelFile} (${format}): ${mlp.layers.length} layers, ${total.toLocaleString('en')} weights, ` +
          `${nonzero.toLocaleString('en')} non-zero, sparsity ${(100 * summary.sparsity).toFixed(2)} %`,
      );
      console.log('  layer  shape (out x in)  activation        weights   non-zero  sparsity');
      for (const row of layers) {
        console.log(
          `  ${String(row.layer).padEnd(5)}  ${`${row.shape[0]} x ${row.shape[1]}`.padEnd(16)}  ${row.activation.padEnd(14)}  ` +
            `${row.weights.toLocaleString('en').padStart(9)}  ${row.nonzero.toLocaleString('en').padStart(9)}  ${(100 * row.sparsity).toFixed(2).padStart(8)} %`,
        );
      }
    });
}
