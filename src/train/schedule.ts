/**
 * Gradual pruning during training, like TensorFlow Model Optimization's `PolynomialDecay`: the
 * sparsity rises from s0 to s1 between two optimizer steps,
 *   s(t) = s1 + (s0 − s1) · (1 − (t − begin) / (end − begin))^power,   begin ≤ t ≤ end,
 * and the network is pruned to s(t) every `frequency` steps from `begin`, and once more at `end`
 * (so that s1 is reached exactly even when end − begin is not a multiple of the frequency; tfmot
 * then stops short of it). Between pruning steps and after `end` the masks are held: a pruned
 * weight stays exactly zero. Each pruning step is the caller's `pruneTo`, run on the current network
 * with its current masks and a slice of the training data (the prune pipeline's, `pruneStep`, scores
 * by the chosen criterion and compensates where the method compensates).
 */
import type { Dataset } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import type { Model } from '../graph/graph.js';
import { checkSparsity, type KeepMask } from '../select/select.js';

/** A polynomial-decay schedule; steps count optimizer updates (batches), 0 = before the first. */
export interface PruningSchedule {
  /** s0, the sparsity at `begin`; default 0 */
  readonly initialSparsity?: number;
  /** s1, the sparsity reached at `end` and held after it */
  readonly finalSparsity: number;
  /** the first pruning step; default 0 (before any update) */
  readonly begin?: number;
  /** the last pruning step, at most the number of updates of the run */
  readonly end: number;
  /** updates between pruning steps; default 100 (tfmot's) */
  readonly frequency?: number;
  /** the decay's exponent; default 3 (tfmot's) */
  readonly power?: number;
}

/**
 * One pruning step: `model` pruned to `sparsity`, the weights `keepMasks` prunes staying pruned,
 * scored on `calibration`; it returns the pruned network and its masks.
 */
export type PruneTo = <M extends Model>(
  model: M,
  keepMasks: readonly KeepMask[],
  sparsity: number,
  calibration: Dataset,
) => Promise<{ model: M; keepMasks: readonly KeepMask[] }>;

/** How a training run prunes as it goes. */
export interface GradualPruning {
  readonly schedule: PruningSchedule;
  /** how each step scores, selects and compensates; the sparsity and the masks are the schedule's */
  readonly pruneTo: PruneTo;
  /** each step is scored on the first n samples of the training set; default 1000 */
  readonly calibrationSamples?: number;
  /** after every pruning step */
  readonly onPrune?: (info: PruningStepInfo) => void;
}

export interface PruningStepInfo {
  /** updates done before this pruning step */
  readonly step: number;
  /** s(step) */
  readonly targetSparsity: number;
  /** pruned weights / all weights of the fully-connected layers, after the step */
  readonly sparsity: number;
  readonly keepMasks: readonly KeepMask[];
  /** the network right after the step (training goes on updating its arrays in place) */
  readonly model: Model;
}

export type CheckedSchedule = Required<PruningSchedule>;

/** The schedule with its defaults, checked against a run of `totalSteps` updates. */
export function checkSchedule(schedule: PruningSchedule, totalSteps: number): CheckedSchedule {
  const checked = { initialSparsity: 0, begin: 0, frequency: 100, power: 3, ...schedule };
  const { initialSparsity, finalSparsity, begin, end, frequency, power } = checked;
  checkSparsity(initialSparsity);
  checkSparsity(finalSparsity);
  const isStep = (n: number) => Number.isInteger(n) && n >= 0;
  const problems: [boolean, string][] = [
    [
      !(finalSparsity >= initialSparsity),
      `the final sparsity ${finalSparsity} is below the initial ${initialSparsity}`,
    ],
    [
      !isStep(begin) || !isStep(end) || end < begin,
      `pruning must begin and end at steps 0 <= begin <= end, got ${begin} and ${end}`,
    ],
    [end > totalSteps, `pruning ends at step ${end}, after the ${totalSteps} steps of training`],
    [
      !(Number.isInteger(frequency) && frequency >= 1),
      `the pruning frequency must be a positive integer, got ${frequency}`,
    ],
    [!(power > 0 && Number.isFinite(power)), `the schedule's power must be positive, got ${power}`],
  ];
  for (const [problem, message] of problems) if (problem) throw new EcpruneError('usage', message);
  return checked;
}

/** s(t): s0 before `begin`, s1 from `end` on, the polynomial decay between. */
export function sparsityAt(schedule: CheckedSchedule, step: number): number {
  const { initialSparsity, finalSparsity, begin, end, power } = schedule;
  if (step >= end) return finalSparsity;
  if (step <= begin) return initialSparsity;
  return finalSparsity + (initialSparsity - finalSparsity) * (1 - (step - begin) / (end - begin)) ** power;
}

/** Whether the network is pruned at `step`: begin, begin + frequency, ... up to end, and end. */
export function isPruningStep(schedule: CheckedSchedule, step: number): boolean {
  const { begin, end, frequency } = schedule;
  return step === end || (step >= begin && step < end && (step - begin) % frequency === 0);
}
