import { Command, CommanderError } from 'commander';
import { defaultGemm, setDefaultGemm } from '../gemm/default.js';
import { withoutGraphs } from '../gemm/gemm.js';
import { VERSION } from '../version.js';
import { compressCommand } from './commands/compress.js';
import { convertCommand } from './commands/convert.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { exportCommand } from './commands/export.js';
import { finetuneCommand } from './commands/finetune.js';
import { inspectCommand } from './commands/inspect.js';
import { pruneCommand } from './commands/prune.js';
import { scoreCommand } from './commands/score.js';
import { sweepCommand } from './commands/sweep.js';
import { trainCommand } from './commands/train.js';
import { describeError, exitCodeOf, oneLine } from './errors.js';

function buildProgram(): Command {
  const program = new Command('ecprune')
    .description(
      'Elimination-compensation pruning of fully-connected networks: every removed weight is compensated by an optimal shift of the bias it feeds.',
    )
    .version(VERSION)
    .option('--debug', 'print stack traces of errors')
    // one line per error, like every other ecprune error
    // (commander's own second line, "(Did you mean ...?)", joins the first; a value's line breaks and
    // control characters are escaped by oneLine)
    .configureOutput({
      outputError: (text, write) =>
        write(
          `ecprune: ${oneLine(
            text
              .replace(/^error: /, '')
              .trimEnd()
              .replace(/\n\(Did you mean/, ' (Did you mean'),
          )}\n`,
        ),
    })
    .addHelpText(
      'after',
      `
Examples:
  $ ecprune inspect model.onnx
  $ ecprune prune model.onnx --calib calib.npy --sparsity 0.9 -o pruned.onnx
  $ ecprune eval pruned.onnx --data x_test.npy --labels y_test.npy --reference model.onnx`,
    );
  for (const command of [
    pruneCommand(),
    scoreCommand(),
    evalCommand(),
    inspectCommand(),
    convertCommand(),
    exportCommand(),
    compressCommand(),
    trainCommand(),
    finetuneCommand(),
    sweepCommand(),
    demoCommand(),
  ]) {
    program.addCommand(command.exitOverride().configureOutput(program.configureOutput()));
  }
  return program.exitOverride();
}

/**
 * Runs the command line `argv` (without `node` and the script) and returns the exit code:
 * 0 success, 2 bad usage or input, 1 internal error. Never calls process.exit, so tests can run
 * it in-process.
 */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  const backend = defaultGemm();
  // --no-graph: this command's calibration pass runs GEMM by GEMM (restored after: tests run the CLI in-process)
  program.hook('preAction', (_, action) => {
    if (action.opts().graph === false) setDefaultGemm(withoutGraphs(backend));
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    // help and version "errors" are successes; everything commander rejects is bad usage
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    console.error(describeError(error, argv.includes('--debug')));
    return exitCodeOf(error);
  } finally {
    setDefaultGemm(backend);
  }
}
