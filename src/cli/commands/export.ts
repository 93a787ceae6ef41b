import { Command, Option } from 'commander';
import { EcpruneError } from '../../errors.js';
import { writeEcsr } from '../../io/ecsr.js';
import { type Layer, nonzeroWeightCount, weightCount } from '../../model/mlp.js';
import { checkOutputPath, withParentDir, writeOutputAtomic } from '../../node/files.js';
import { loadModel, requireChain } from '../../node/models.js';
import { quantizeCodebook, quantizeInt8 } from '../../quantize/quantize.js';
import { CODEBOOK_BITS } from '../../runtime/index.js';
import { keepMasksOf } from '../../train/train.js';
import { VERSION } from '../../version.js';
import { archOption, MODEL_FILES } from '../options.js';

const EXAMPLES = `
The .ecsr format (docs/FORMAT-ECSR.md) stores each layer as compressed sparse rows with the
smallest index type that fits; 'ecprune/runtime' runs it in Node and browsers with no dependencies.

Examples:
  $ ecprune export pruned.onnx --format csr -o model.ecsr
  $ ecprune export pruned.onnx --format csr --values float16 -o model.ecsr
  $ ecprune export pruned.onnx --format csr --values int8 -o model.ecsr
  $ ecprune export pruned.onnx --format csr --values codebook:5 -o model.ecsr

int8 and codebook:<bits> write .ecsr version 2: per-row int8 with a scale, or a k-means codebook of
2^bits shared values per layer (bits 2 to 8, seeded by --seed), with the column indices and values
entropy-coded (Huffman).`;

/** How `--values` asks for the weights to be stored. */
type ValueChoice = { kind: 'float32' | 'float16' | 'int8' } | { kind: 'codebook'; bits: number };

function parseValues(text: string): ValueChoice {
  if (text === 'float32' || text === 'float16' || text === 'int8') return { kind: text };
  const match = /^codebook:(\d+)$/.exec(text);
  const bits = match ? Number(match[1]) : Number.NaN;
  if (!(bits >= CODEBOOK_BITS.min && bits <= CODEBOOK_BITS.max)) {
    throw new EcpruneError(
      'usage',
      `--values '${text}': expected float32, float16, int8 or codebook:<bits> with bits ${CODEBOOK_BITS.min} to ${CODEBOOK_BITS.max}`,
    );
  }
  return { kind: 'codebook', bits };
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write a pruned model as a compact sparse file for the ecprune runtime')
    .argument('<model>', `the pruned model (${MODEL_FILES})`)
    .requiredOption('-o, --output <file>', 'where to write the sparse model (.ecsr)')
    .addOption(new Option('--format <format>', 'the sparse format').choices(['csr']).default('csr'))
    .option(
      '--values <type>',
      'how values are stored: float32, float16, int8 or codebook:<bits> (2-8)',
      'float32',
    )
    .option('--seed <n>', 'seed of the k-means initialisation (codebook values)', '0')
    .addOption(archOption())
    .option('--force', 'overwrite the output if it exists')
    .addHelpText('after', EXAMPLES)
    .action(async (modelFile: string, flags) => {
      const write = { force: flags.force, inputs: [modelFile] };
      await checkOutputPath(flags.output, write);
      const values = parseValues(flags.values);
      const seed = Number(flags.seed);
      if (!Number.isSafeInteger(seed))
        throw new EcpruneError('usage', `--seed '${flags.seed}' is not a whole number`);
      const model = await loadModel(modelFile, { arch: flags.arch });
      // a TF.js model's shards are inputs too: known once it is read
      write.inputs.push(...model.files);
      await checkOutputPath(flags.output, write);
      const metadata = { ecprune_version: VERSION, source: modelFile, values: flags.values };
      const mlp = requireChain(
        model,
        'the .ecsr runtime format',
        'keep it as ONNX or TF.js (prune --onnx-sparse stores an ONNX model’s weights sparse)',
      );
      const masks = keepMasksOf(mlp);
      const quantize = (layer: Layer, l: number) =>
        values.kind === 'codebook'
          ? quantizeCodebook(layer.weight, masks[l], { bits: values.bits, seed: seed + l })
          : quantizeInt8(layer.weight, masks[l]);
      const bytes =
        values.kind === 'float32' || values.kind === 'float16'
          ? writeEcsr(mlp, { valueType: values.kind, metadata })
          : writeEcsr(mlp, { metadata, quantized: mlp.layers.map(quantize) });
      await withParentDir(flags.output, () => writeOutputAtomic(flags.output, bytes, write));
      const dense = 4 * (weightCount(mlp) + mlp.layers.reduce((n, l) => n + l.bias.length, 0));
      console.log(
        `${nonzeroWeightCount(mlp).toLocaleString('en')} non-zero weights: wrote ${flags.output} ` +
          `(${bytes.length.toLocaleString('en')} bytes, ${(dense / bytes.length).toFixed(1)}x smaller than dense float32)`,
      );
    });
}
