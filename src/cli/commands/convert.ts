import { Command } from 'commander';
import { chainOf } from '../../graph/mlp-graph.js';
import { layerSizes } from '../../model/mlp.js';
import { checkModelOutput, loadModel, saveModel, storedDtype, writtenDtype } from '../../node/models.js';
import { VERSION } from '../../version.js';
import { archOption, MODEL_FILES } from '../options.js';
import { describeGraph } from './train.js';

const EXAMPLES = `
The input format is read from the content, the output format from the extension:
  .onnx  ONNX   .json  TF.js LayersModel (weights written next to it)   .safetensors   .pt/.pth (torch.save state_dict)   .npz (W0, b0, ...)
A chain of layers converts to every format; a graph (residual, normalisation, head) to ONNX and to
TF.js (a functional model; refused, naming the node, where an op has no Keras layer tfjs-layers
loads); a frozen prefix (a convolutional feature extractor) only to ONNX. float64 weights keep
their precision in .pt, safetensors and .npz, and in ONNX from ONNX; float16 in a .pt and in ONNX
from ONNX; a note says where the type changes.

Examples:
  $ ecprune convert model.onnx -o web/model.json
  $ ecprune convert state_dict.safetensors --arch 784,300,100,10:relu -o model.onnx
  $ ecprune convert tfjs/model.json -o weights.npz`;

export function convertCommand(): Command {
  return new Command('convert')
    .description('convert a model between ONNX, TF.js, safetensors (PyTorch state_dict) and .npz')
    .argument('<model>', `the model: ${MODEL_FILES}`)
    .requiredOption('-o, --output <file>', 'where to write it (.onnx, .json, .safetensors, .pt, .npz)')
    .addOption(archOption())
    .option('--force', 'overwrite the output if it exists')
    .addHelpText('after', EXAMPLES)
    .action(async (modelFile: string, flags) => {
      const write = { force: flags.force, inputs: [modelFile] };
      await checkModelOutput(flags.output, write);
      const model = await loadModel(modelFile, { arch: flags.arch });
      await saveModel(flags.output, model.graph, {
        ...write,
        like: model,
        metadata: { ecprune_version: VERSION },
      });
      // widths joined say "a chain"; a graph is described by its layers and ops instead
      const shape = chainOf(model.graph)
        ? `model ${layerSizes(model.graph).join('-')}`
        : `model, ${describeGraph(model.graph)}`;
      console.log(`${model.format} ${shape}: wrote ${flags.output}`);
      const [stored, written] = [storedDtype(model), writtenDtype(flags.output, model)];
      if (stored !== undefined && stored !== written)
        console.error(
          `ecprune: note: the weights are ${stored} in ${modelFile}; ${flags.output} stores them as ${written}`,
        );
    });
}
