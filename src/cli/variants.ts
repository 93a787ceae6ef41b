/**
 * The command-line face of the beyond-the-paper variants (src/pipeline/prune.ts), shared by
 * `prune` and `sweep`: every flag maps onto one PruneOptions field.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { EcpruneError } from '../errors.js';
import type { PruneOptions } from '../pipeline/prune.js';
import { parseVariant, type VariantOptions } from '../pipeline/variant-name.js';
import { NONLINEAR_DEFAULT_SAMPLES } from '../score/nonlinear.js';
import { parsePositiveInt } from './options.js';

/** `--method`: a name of the method list, with or without modifiers (`ec+sequential+refit5`). */
export function parsePruneMethod(text: string): string {
  try {
    parseVariant(text);
  } catch (error) {
    throw error instanceof EcpruneError ? new InvalidArgumentError(error.detail) : error;
  }
  return text;
}

function parsePattern(text: string): { n: number; m: number } {
  const match = /^(\d+):(\d+)$/.exec(text.trim());
  const [n, m] = match ? [Number(match[1]), Number(match[2])] : [0, 0];
  if (!match || n < 1 || m < 2 || n >= m)
    throw new InvalidArgumentError(`expected n:m with 1 <= n < m, such as 2:4, got '${text}'`);
  return { n, m };
}

export function addVariantOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--sensitivity <kind>',
        'what the error is measured on: the output (the paper) or the loss (dyᵀ H dy)',
      )
        .choices(['output', 'loss'])
        .default('output'),
    )
    .option(
      '--probes <m>',
      'estimate the sensitivities with m random probes per sample (many outputs)',
      parsePositiveInt,
    )
    .option(
      '--sequential',
      'prune layer by layer on the already-pruned network, compensating toward the dense one',
    )
    .option(
      '--refit-biases [iterations]',
      'refit all biases jointly to the dense outputs (Gauss-Newton)',
      parsePositiveInt,
    )
    .option(
      '--steps <k>',
      'reach the sparsity in k prune-recompute steps (geometric schedule)',
      parsePositiveInt,
      1,
    )
    .option(
      '--pattern <n:m>',
      'N:M sparsity along the inputs of each row, e.g. 2:4 (overrides --sparsity)',
      parsePattern,
    )
    .addOption(
      new Option(
        '--structure <kind>',
        'remove single weights, or whole hidden neurons from the hidden layers that can lose them (--sparsity = fraction of their units; layers whose units feed a residual Add, LayerNorm, Concat ... are left whole)',
      )
        .choices(['weight', 'neuron'])
        .default('weight'),
    )
    .option(
      '--shift-scale <alpha>',
      "multiply the bias shifts by alpha in [0, 1] (1: the paper), or 'calibrated': one scale per layer chosen on the calibration inputs",
      parseShiftScale,
    )
    .addOption(
      new Option(
        '--budgets <from>',
        "global scope: each layer's share of the pruned weights from the method's own ranking (score, the paper) or from magnitude's",
      ).choices(['score', 'magnitude']),
    );
}

function parseShiftScale(text: string): number | 'calibrated' {
  if (text === 'calibrated') return text;
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && value <= 1))
    throw new InvalidArgumentError(`expected a number in [0, 1] or 'calibrated', got '${text}'`);
  return value;
}

export interface VariantFlags {
  /** a method name, possibly with modifiers (variant-name.ts); absent: the default recipe (prune.ts DEFAULT_RECIPE) */
  method?: string;
  sensitivity: 'output' | 'loss';
  probes?: number;
  sequential?: boolean;
  refitBiases?: number | true;
  steps: number;
  pattern?: { n: number; m: number };
  structure: 'weight' | 'neuron';
  shiftScale?: number | 'calibrated';
  budgets?: 'score' | 'magnitude';
}

/** `--refit-biases` alone means 5 iterations. */
const DEFAULT_REFIT_ITERATIONS = 5;

/** `--nonlinear-samples`, with the library's default, in prune and sweep. */
export function nonlinearSamplesOption(): Option {
  return new Option('--nonlinear-samples <n>', 'calibration samples of the nonlinear method (the first ones)')
    .argParser(parsePositiveInt)
    .default(NONLINEAR_DEFAULT_SAMPLES);
}

/** The flags' values that ask for nothing: a modifier of the method name may set these fields. */
const UNSET: Partial<Record<keyof VariantOptions, unknown>> = {
  sensitivity: 'output',
  probes: undefined,
  sequential: undefined,
  refitBiases: undefined,
  steps: 1,
  pattern: undefined,
  structure: 'weight',
  shiftScale: undefined,
  budgets: undefined,
};

/** The method name's options, with the variant flags added (a flag and a modifier for the same field: a usage error). */
export function variantOptions(flags: VariantFlags): PruneOptions {
  const named = flags.method === undefined ? {} : parseVariant(flags.method);
  const fromFlags: VariantOptions = {
    sensitivity: flags.sensitivity,
    probes: flags.probes,
    sequential: flags.sequential,
    refitBiases: flags.refitBiases === true ? DEFAULT_REFIT_ITERATIONS : flags.refitBiases,
    steps: flags.steps,
    pattern: flags.pattern,
    structure: flags.structure,
    shiftScale: flags.shiftScale,
    budgets: flags.budgets,
  };
  for (const field of Object.keys(named) as (keyof VariantOptions)[]) {
    if (field in UNSET && fromFlags[field] !== UNSET[field] && fromFlags[field] !== false) {
      throw new EcpruneError(
        'usage',
        `--method ${flags.method} already sets ${field}: drop the flag or the modifier`,
      );
    }
  }
  return { ...fromFlags, ...named };
}

export const VARIANT_EXAMPLES = `

Beyond the paper (combine freely):
  $ ecprune prune model.onnx --calib calib.npy --sequential --refit-biases --steps 3 -o out.onnx
  $ ecprune prune model.onnx --calib calib.npy --pattern 2:4 -o out24.onnx
  $ ecprune prune model.onnx --calib calib.npy --structure neuron --sparsity 0.5 -o smaller.onnx
  $ ecprune prune model.onnx --calib calib.npy --method obs -o obs.onnx   # changes surviving weights`;
