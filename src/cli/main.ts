#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { setDefaultGemm } from '../gemm/default.js';
import { lazyOrtGemm } from '../node/ort-gemm.js';
import { VERSION } from '../version.js';
import { evalCommand } from './commands/eval.js';
import { inspectCommand } from './commands/inspect.js';
import { pruneCommand } from './commands/prune.js';
import { scoreCommand } from './commands/score.js';
import { describeError, exitCodeOf } from './errors.js';

const program = new Command('ecprune')
  .description('Elimination-compensation pruning of fully-connected networks: every removed weight is\ncompensated by an optimal shift of the bias it feeds.')
  .version(VERSION)
  .option('--debug', 'print stack traces of errors')
  // one line per error, like every other ecprune error
  .configureOutput({ outputError: (text, write) => write(`ecprune: ${text.replace(/^error: /, '')}`) })
  .addHelpText('after', `
Examples:
  $ ecprune inspect model.onnx
  $ ecprune prune model.onnx --calib calib.npy --sparsity 0.9 -o pruned.onnx
  $ ecprune eval pruned.onnx --data x_test.npy --labels y_test.npy --reference model.onnx`);

for (const command of [pruneCommand(), scoreCommand(), evalCommand(), inspectCommand()]) {
  program.addCommand(command.exitOverride().configureOutput(program.configureOutput()));
}
program.exitOverride();

setDefaultGemm(lazyOrtGemm());

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // help and version "errors" are successes; everything commander rejects is bad usage
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else {
    console.error(describeError(error, program.opts().debug === true || process.argv.includes('--debug')));
    process.exitCode = exitCodeOf(error);
  }
}
