import path from 'node:path';
import { Command } from 'commander';
import { parseActivation } from '../../model/activations.js';
import { isReportFolder } from '../../node/report-files.js';
import { DEFAULT_RECIPE } from '../../pipeline/prune.js';
import { formatVariant } from '../../pipeline/variant-name.js';
import { parseNonNegativeInt, parsePositiveInt } from '../options.js';
import { DEFAULT_SPARSITIES, type SweepSettings, sweepAction } from './sweep.js';

/** The demo's study: prune's default recipe and the 7 pruning methods on the built-in MNIST, 784-300-100-10 ReLU. */
/** ~2.5 s each with the onnxruntime GEMM on 2 cores: the whole demo takes under a minute from scratch */
export const DEMO_EPOCHS = 8;

export const DEMO_METHODS = [
  formatVariant(DEFAULT_RECIPE),
  'ec',
  'ec-nocomp',
  'magnitude',
  'magnitude-comp',
  'obd',
  'gradmag',
  'random',
];

export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'the study on the built-in MNIST (what `npm start` runs): train or reuse the network, sweep, write report.html',
    )
    .option(
      '-o, --output <dir>',
      'the report folder (a previous demo report there is replaced)',
      path.join('reports', 'demo'),
    )
    .option('--epochs <n>', 'training epochs of the 784-300-100-10 network', parseNonNegativeInt, DEMO_EPOCHS)
    .option('--calib-samples <n>', 'calibration samples from the training split', parsePositiveInt, 2000)
    .option(
      '--cache-dir <dir>',
      'where the trained network is kept for the next run',
      path.join('.cache', 'ecprune'),
    )
    .option('--force', 'write into a report folder that is not empty')
    .option('--quiet', 'no progress bars')
    .action(async (flags) => {
      const settings: SweepSettings = {
        dataset: 'mnist',
        layers: [784, 300, 100, 10],
        activation: parseActivation('relu')!,
        epochs: flags.epochs,
        lr: 1e-3,
        batchSize: 128,
        seed: 0,
        calibSamples: flags.calibSamples,
        methods: [...DEMO_METHODS],
        sparsities: DEFAULT_SPARSITIES,
        scope: ['global'],
        finetuneEpochs: [0],
        seeds: 3,
        nonlinearSamples: 256,
        cacheDir: flags.cacheDir,
        output: flags.output,
        // its own earlier output is replaced; any other non-empty folder needs --force
        force: flags.force || (await isReportFolder(flags.output)),
        quiet: flags.quiet,
      };
      await sweepAction(settings, {
        title: 'EC pruning demo: MNIST 784-300-100-10 ReLU',
        command: `npm start   # = ecprune demo --epochs ${flags.epochs} --calib-samples ${flags.calibSamples} -o ${flags.output}`,
      });
    });
}
