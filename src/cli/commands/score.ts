import { Command } from 'commander';
import { writeNpz } from '../../io/npz.js';
import { checkOutputPath, withParentDir, writeOutputAtomic } from '../../node/files.js';
import { dataForModel, loadModel } from '../../node/models.js';
import { score } from '../../pipeline/score.js';
import { METHOD_NAMES } from '../../score/methods.js';
import { inputFiles, openData } from '../data.js';
import { archOption, MODEL_FILES, parseMethod } from '../options.js';
import { progressBar } from '../progress.js';
import { CALIBRATION_PHASES, startClock } from '../timings.js';
import {
  addCalibrationOptions,
  calibrationChoice,
  checkCalibration,
  checkCalibrationMemory,
} from './prune.js';

const EXAMPLES = `
Writes per layer l (from 0): importance_<l> and delta_<l>, float32 arrays shaped like the layer's
weight (n_out x n_in): the criterion's score and the optimal bias shift for removing each weight.

Examples:
  $ ecprune score model.onnx --calib calib.npy -o scores.npz
  $ ecprune score model.onnx --dataset mnist --calib-samples 1000 --method obd -o obd.npz`;

export function scoreCommand(): Command {
  const command = new Command('score')
    .description('score every weight (importance and optimal bias shift) without pruning')
    .argument('<model>', `the trained model (${MODEL_FILES})`)
    .requiredOption('-o, --output <file>', 'where to write the scores (.npz)')
    .option(
      '--method <name>',
      `the criteria of the method list: ${METHOD_NAMES.join(', ')}`,
      parseMethod,
      'ec',
    )
    .addOption(archOption())
    .option('--force', 'overwrite the output if it exists')
    .option('--timings', 'print the time of each phase as one JSON line on stderr')
    .option('--quiet', 'no progress bar');
  addCalibrationOptions(command);
  return command.addHelpText('after', EXAMPLES).action(async (modelFile: string, flags) => {
    const clock = startClock(CALIBRATION_PHASES);
    const writeOptions = { force: flags.force, inputs: [modelFile, ...inputFiles(calibrationChoice(flags))] };
    await checkOutputPath(flags.output, writeOptions);
    const model = await loadModel(modelFile, { arch: flags.arch });
    // a TF.js model's shards are inputs too: known once it is read
    writeOptions.inputs.push(...model.files);
    await checkOutputPath(flags.output, writeOptions);
    const memory = { what: 'scoring', file: modelFile, gradmag: flags.method === 'gradmag' };
    checkCalibrationMemory(model.shape, flags, memory);
    const calibration = await openData(calibrationChoice(flags), 'calibration');
    checkCalibration(model.shape, modelFile, calibration, flags, memory);
    clock.lap('load');
    const bar = progressBar('statistics', 'samples', flags.quiet);
    const result = await score(model.graph, dataForModel(model, calibration), {
      method: flags.method,
      seed: flags.seed,
      loss: flags.loss,
      batchSize: flags.batchSize,
      onProgress: bar.update,
      timings: clock.phases,
      withDelta: true,
    }).finally(bar.stop);
    clock.skip();
    const arrays: Record<string, { shape: number[]; data: Float32Array }> = {};
    model.graph.layers.forEach((layer, l) => {
      const shape = [layer.weight.rows, layer.weight.cols];
      arrays[`importance_${l}`] = { shape, data: Float32Array.from(result.importance[l]) };
      arrays[`delta_${l}`] = { shape, data: Float32Array.from(result.deltaBias![l]) };
    });
    await withParentDir(flags.output, () => writeOutputAtomic(flags.output, writeNpz(arrays), writeOptions));
    clock.lap('write');
    console.log(
      `${result.method} scores of ${model.graph.layers.length} layers from ${result.statistics.samples} samples: wrote ${flags.output}`,
    );
    if (flags.timings) clock.print();
  });
}
