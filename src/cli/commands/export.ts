import { Command, Option } from 'commander';
import { writeEcsr } from '../../io/ecsr.js';
import { nonzeroWeightCount, weightCount } from '../../model/mlp.js';
import { checkOutputPath, writeOutputAtomic } from '../../node/files.js';
import { loadModel, requireChain } from '../../node/models.js';
import { VERSION } from '../../version.js';
import { archOption } from '../options.js';

const EXAMPLES = `
The .ecsr format (docs/FORMAT-ECSR.md) stores each layer as compressed sparse rows with the
smallest index type that fits; 'ecprune/runtime' runs it in Node and browsers with no dependencies.

Examples:
  $ ecprune export pruned.onnx --format csr -o model.ecsr
  $ ecprune export pruned.onnx --format csr --values float16 -o model.ecsr`;

export function exportCommand(): Command {
  return new Command('export')
    .description('write a pruned model as a compact sparse file for the ecprune runtime')
    .argument('<model>', 'the pruned model (.onnx, TF.js model.json, .safetensors, .npz)')
    .requiredOption('-o, --output <file>', 'where to write the sparse model (.ecsr)')
    .addOption(new Option('--format <format>', 'the sparse format').choices(['csr']).default('csr'))
    .addOption(
      new Option('--values <type>', 'how values are stored')
        .choices(['float32', 'float16'])
        .default('float32'),
    )
    .addOption(archOption())
    .option('--force', 'overwrite the output if it exists')
    .addHelpText('after', EXAMPLES)
    .action(async (modelFile: string, flags) => {
      const write = { force: flags.force, inputs: [modelFile] };
      await checkOutputPath(flags.output, write);
      const model = await loadModel(modelFile, { arch: flags.arch });
      const mlp = requireChain(model, 'the .ecsr runtime format');
      const bytes = writeEcsr(mlp, {
        valueType: flags.values,
        metadata: { ecprune_version: VERSION, source: modelFile },
      });
      await writeOutputAtomic(flags.output, bytes, write);
      const dense = 4 * (weightCount(mlp) + mlp.layers.reduce((n, l) => n + l.bias.length, 0));
      console.log(
        `${nonzeroWeightCount(mlp).toLocaleString('en')} non-zero weights: wrote ${flags.output} ` +
          `(${bytes.length.toLocaleString('en')} bytes, ${(dense / bytes.length).toFixed(1)}x smaller than dense float32)`,
      );
    });
}
