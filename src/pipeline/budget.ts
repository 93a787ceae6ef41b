/**
 * Sparsity from a quality budget: the highest sparsity whose pruned model still meets a bound on
 * held-out data (loss increase over the dense model, or accuracy), found by bisection on a grid of
 * `resolution` steps. Held-out data is the caller's, distinct from the calibration set: it is
 * what the budget is measured on, never what the statistics are collected on.
 *
 * Bisection assumes quality falls as sparsity rises. Where the curve is not monotone it still
 * returns a sparsity that meets the budget whose next probed sparsity above does not (both printed
 * in the curve), not necessarily the highest such point of the grid.
 */
import type { Dataset } from '../data/dataset.js';
import { EcpruneError, option } from '../errors.js';
import type { Model } from '../graph/graph.js';
import { checkSparsity } from '../select/select.js';
import { evaluate } from '../train/evaluate.js';
import { bisect } from './bisect.js';
import { type PruneOptions, type PruneResult, prune, reusesStatistics } from './prune.js';

export interface BudgetOptions extends Omit<PruneOptions, 'sparsity' | 'statistics'> {
  /** the held-out mean loss (cross-entropy or MSE, as `loss`) may rise by at most this much over the dense model's */
  readonly maxLossIncrease?: number;
  /** the held-out accuracy (fraction, class labels) must stay at or above this */
  readonly minAccuracy?: number;
  /** the grid of sparsities searched: multiples of this; default 0.01 */
  readonly resolution?: number;
  /** the highest sparsity tried; default 0.99 */
  readonly maxSparsity?: number;
  /** each probe as soon as it is measured (sparsity 0 is the dense model) */
  readonly onProbe?: (probe: BudgetProbe) => void;
}

export interface BudgetProbe {
  readonly sparsity: number;
  /** held-out mean loss */
  readonly loss: number;
  /** held-out accuracy (class labels only) */
  readonly accuracy?: number;
  readonly met: boolean;
}

export interface BudgetResult {
  /** the pruning at the chosen sparsity */
  readonly result: PruneResult;
  readonly sparsity: number;
  /** every probe, by sparsity (the first is the dense model) */
  readonly probes: readonly BudgetProbe[];
  /** the lowest probed sparsity above the chosen one, which does not meet the budget (none when the chosen is `maxSparsity`) */
  readonly failedAbove?: BudgetProbe;
}

export const DEFAULT_BUDGET_RESOLUTION = 0.01;
export const DEFAULT_MAX_SPARSITY = 0.99;

/**
 * Prunes `model` at the highest sparsity that meets the budget on `heldOut` (labelled). One-shot
 * recipes (no `sequential`, one step) collect the calibration statistics once and reuse them for
 * every probe; the others prune from scratch at every probe.
 * @example const { sparsity, result } = await pruneToBudget(model, calibration, heldOut, { minAccuracy: 0.97 });
 */
export async function pruneToBudget(
  model: Model,
  calibration: Dataset,
  heldOut: Dataset,
  options: BudgetOptions,
): Promise<BudgetResult> {
  const { maxLossIncrease, minAccuracy, onProbe, resolution = DEFAULT_BUDGET_RESOLUTION } = options;
  const maxSparsity = checkSparsity(options.maxSparsity ?? DEFAULT_MAX_SPARSITY);
  if ((maxLossIncrease === undefined) === (minAccuracy === undefined)) {
    throw new EcpruneError(
      'usage',
      `give one budget: ${option('maxLossIncrease')} or ${option('minAccuracy')}`,
    );
  }
  if (maxLossIncrease !== undefined && !(maxLossIncrease >= 0))
    throw new EcpruneError('usage', `${option('maxLossIncrease')} must be >= 0, got ${maxLossIncrease}`);
  if (minAccuracy !== undefined && !(minAccuracy >= 0 && minAccuracy <= 1))
    throw new EcpruneError('usage', `${option('minAccuracy')} must be in [0, 1], got ${minAccuracy}`);
  if (!(resolution > 0 && resolution <= maxSparsity))
    throw new EcpruneError('usage', `the resolution must be in (0, ${maxSparsity}], got ${resolution}`);
  if (options.pattern !== undefined)
    throw new EcpruneError('usage', 'an N:M pattern fixes the sparsity: it takes no budget');
  if (heldOut.targetKind === undefined)
    throw new EcpruneError(
      'usage',
      `the budget is measured on held-out labels (${option('labels')})`,
      heldOut.name,
    );
  if (minAccuracy !== undefined && heldOut.targetKind !== 'classes') {
    throw new EcpruneError(
      'usage',
      `${option('minAccuracy')} needs class labels; these are values (use ${option('maxLossIncrease')})`,
      heldOut.name,
    );
  }

  const measure = async (pruned: Model, sparsity: number, denseLoss?: number): Promise<BudgetProbe> => {
    const evaluation = await evaluate(pruned, heldOut, {
      loss: options.loss,
      batchSize: options.batchSize,
      gemm: options.gemm,
    });
    const loss = evaluation.meanLoss!;
    const met =
      minAccuracy !== undefined
        ? evaluation.accuracy! >= minAccuracy
        : loss - (denseLoss ?? loss) <= maxLossIncrease!;
    const probe = { sparsity, loss, accuracy: evaluation.accuracy, met };
    onProbe?.(probe);
    return probe;
  };
  const dense = await measure(model, 0);
  const probes: BudgetProbe[] = [dense];
  const budgetText =
    minAccuracy !== undefined
      ? `accuracy >= ${minAccuracy} (${option('minAccuracy')})`
      : `loss increase <= ${maxLossIncrease} (${option('maxLossIncrease')})`;
  if (!dense.met) {
    throw new EcpruneError(
      'usage',
      `no sparsity meets the budget: the dense model's held-out accuracy is ${dense.accuracy}, below ${minAccuracy} (${option('minAccuracy')})`,
      heldOut.name,
    );
  }

  // one-shot recipes: the statistics of the dense model serve every probe
  const reusable = reusesStatistics(options);
  let statistics: PruneResult['statistics'] | undefined;
  // bisection only raises `low`: the last result that met the budget is the one to return
  let best: PruneResult | undefined;
  // grid steps of `resolution` up to maxSparsity (>= 1: resolution <= maxSparsity is checked)
  const steps = Math.floor(maxSparsity / resolution + 1e-9);
  const sparsityAt = (step: number) => Number((step * resolution).toFixed(12));
  const probeAt = async (step: number): Promise<boolean> => {
    const sparsity = sparsityAt(step);
    const result = await prune(model, calibration, { ...options, sparsity, statistics });
    if (reusable) statistics = result.statistics;
    const probe = await measure(result.model, sparsity, dense.loss);
    probes.push(probe);
    if (probe.met) best = result;
    return probe.met;
  };

  // step 0 (the dense model) meets the budget; the highest step first, then bisection below it
  const low = (await probeAt(steps)) ? steps : await bisect(0, steps, probeAt);
  probes.sort((a, b) => a.sparsity - b.sparsity);
  if (low === 0) {
    const first = probes.find((probe) => probe.sparsity > 0)!;
    throw new EcpruneError(
      'usage',
      `no sparsity meets the budget (${budgetText}): already at ${first.sparsity} the held-out loss is ${first.loss.toFixed(4)} (dense ${dense.loss.toFixed(4)})${first.accuracy === undefined ? '' : ` and the accuracy ${first.accuracy.toFixed(4)}`}`,
      heldOut.name,
    );
  }
  const chosen = sparsityAt(low);
  return {
    result: best!,
    sparsity: chosen,
    probes,
    failedAbove: low === steps ? undefined : probes.find((probe) => probe.sparsity > chosen),
  };
}
