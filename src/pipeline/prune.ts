import { applyPruning } from '../compensate/apply.js';
import { optimalBiasShift } from '../compensate/delta.js';
import { obsPrune } from '../compensate/obs.js';
import { type RefitResult, refitBiases } from '../compensate/refit.js';
import { calibrateShiftScales, type Discrepancy, scaledCompensation } from '../compensate/scale.js';
import { type Dataset, firstSamples, materialize } from '../data/dataset.js';
import { EcpruneError, option } from '../errors.js';
import { compensationTarget, type Graph, type Model } from '../graph/graph.js';
import { type LossKind, lossFor } from '../graph/loss.js';
import { asGraph, chainOf, headOf, logitsGraph } from '../graph/mlp-graph.js';
import type { FloatArray } from '../model/matrix.js';
import { type Mlp, weightCount } from '../model/mlp.js';
import type { LayerScores } from '../score/criterion.js';
import { magnitudeScore } from '../score/magnitude.js';
import { checkMethod, METHODS, type MethodName, type MethodSpec } from '../score/methods.js';
import { checkNonlinearSize, NONLINEAR_DEFAULT_SAMPLES, nonlinearScore } from '../score/nonlinear.js';
import {
  type CalibrationStatistics,
  collectStatistics,
  type LayerStatistics,
  type SensitivityKind,
  type StatisticsOptions,
} from '../score/statistics.js';
import { type LayerControl, layerTargets } from '../select/layers.js';
import {
  checkPattern,
  type NmPattern,
  patternSparsity,
  selectPattern,
  selectPatternLayer,
} from '../select/pattern.js';
import {
  checkScope,
  checkSparsity,
  type KeepMask,
  type LayerTargets,
  lowestK,
  prunedCounts,
  type Scope,
  selectMasks,
  selectWithBudgets,
} from '../select/select.js';
import {
  neuronKeepMasks,
  neuronScores,
  removeNeurons,
  selectNeurons,
  unitFlows,
  type WholeLayer,
} from '../select/structure.js';
import { timePhase } from '../timings.js';
import type { ScoreOptions, ScoreResult } from './score.js';

/**
 * The one prune pipeline: score → select → compensate, with the "beyond the paper" variants as
 * options. Every option defaults to the paper's one-shot EC: score every weight (score.ts), prune
 * the lowest k globally, shift each neuron's bias by the optimal compensation of its pruned weights.
 *
 *   sensitivity: 'loss'  s_i = J_iᵀ H J_i with H the output Hessian of the loss (see statistics.ts);
 *                        the Hessian's loss is `loss` (default from the labels; needed without them).
 *   probes: m            s estimated with m Rademacher probes per sample, seeded by `seed`.
 *   sequential           layers pruned in order, each on the already-pruned upstream network, the
 *                        bias compensation aiming at the DENSE network's pre-activations (below).
 *   steps: k             k prune–recompute rounds; kept fraction (1-S)^(t/k) after round t.
 *   pattern: {n, m}      N:M along the inputs of each row; the sparsity becomes (m-n)/m and the
 *                        scope is ignored; with steps, round t keeps n_t = round(m (n/m)^(t/k)).
 *   structure: 'neuron'  whole hidden neurons removed and the model shrunk, from the hidden layers
 *                        whose units reach their consumers unit by unit (select/structure.ts);
 *                        the others (units feeding a residual Add, LayerNorm ...) are left whole;
 *                        sparsity = the fraction of units removed among the units of the hidden
 *                        layers that can lose them.
 *   obs                  layer-wise OBS (SparseGPT) reconstruction; CHANGES SURVIVING WEIGHTS.
 *   refitBiases: iters   after everything else, a joint Gauss–Newton refit of all biases to the
 *                        dense network's outputs (compensate/refit.ts); never raises the error.
 *
 * Sequential compensation. Let z^D_l(x) = W a^D(x) + b be the dense pre-activation and
 * z^P_l(x) = W a^P(x) + b the one on the inputs a^P of the already-pruned upstream network. Pruning
 * the set R_i of row i and shifting the bias by δ_i gives z_i = z^P_i - Σ_{j∈R_i} W_ij a^P_j + δ_i.
 * The s-weighted least squares toward the dense target,
 *   min_δ Σ_n s_i(x_n) (z_i(x_n) - z^D_i(x_n))²,
 * is a weighted mean: δ_i = E_s[Σ_{j∈R_i} W_ij a^P_j] + E_s[z^D_i - z^P_i]
 *                         = Σ_{j∈R_i} δ_ij + u_i,   u_i = Σ_n s_i (z^D_i - z^P_i) / Σ_n s_i,
 * i.e. plain EC on the upstream-pruned statistics plus the s-weighted mean gap u_i, which corrects
 * the mean error the pruned upstream layers pass down (collected as `referenceGap`). u_i is added to
 * every neuron of the layer, pruned weights or not. s is the sensitivity of the current network.
 * The score stays the EC score w² Var_s(a^P_j)/N: the exact increase of the objective would add the
 * cross term -2 w Cov_s(z^D_i - z^P_i, a^P_j)/N, which needs another n_out x n_in moment; left out.
 * Budgets: with `scope: 'layer'` each layer prunes its share; with `global`, the per-layer counts
 * come from one global ranking on the network as it is at the start of the step. For layer 0 the
 * inputs are the data, so u = 0 exactly and a one-layer network is pruned exactly like EC.
 * Without compensation (`magnitude`, `ec-nocomp`, ...) u is not applied either.
 */
export interface PruneOptions extends ScoreOptions, LayerControl {
  /** fraction of weights to remove, in [0, 1); default 0.9 */
  readonly sparsity?: number;
  /** rank all layers together (`global`, default) or each layer on its own (`layer`) */
  readonly scope?: Scope;
  /**
   * a layer stored without a bias (and no BatchNorm after it to absorb the shift) gets a bias to
   * compensate into (default true); false keeps the structure exactly and prunes those layers
   * without compensation
   */
  readonly newBias?: boolean;

  /** what s measures: 'output' (default, the paper) or 'loss' (dyᵀ H dy, H the Hessian of `loss`) */
  readonly sensitivity?: SensitivityKind;
  /** estimate s with this many Rademacher probes per sample (seeded by `seed`); default exact */
  readonly probes?: number;
  /** prune layer by layer on the already-pruned upstream network, compensating toward the dense one */
  readonly sequential?: boolean;
  /** Gauss–Newton iterations of the joint bias refit after the mask is fixed; default 0 (none) */
  readonly refitBiases?: number;
  /** reach the sparsity in this many prune–recompute steps; default 1 */
  readonly steps?: number;
  /** N:M pattern along the input dimension: overrides `sparsity` with (m-n)/m, ignores `scope` */
  readonly pattern?: NmPattern;
  /**
   * 'weight' (default) or 'neuron' (whole hidden neurons; sparsity = the fraction of units removed
   * among the units of the hidden layers that can lose them; the others are left whole)
   */
  readonly structure?: 'weight' | 'neuron';
  /** layer-wise OBS reconstruction instead of the bias compensation (changes surviving weights) */
  readonly obs?: boolean;
  /**
   * weights pruned before this call (0 = pruned, e.g. by an earlier step of a gradual schedule,
   * src/train/schedule.ts): ranked first (-∞), never kept, counted in the sparsity; a zero weight
   * shifts no bias, so they are not compensated twice. Weight pruning only.
   */
  readonly keepMasks?: readonly KeepMask[];
  /**
   * the calibration statistics of this model under these same options, from an earlier result
   * (`result.statistics` of a one-shot prune): the calibration pass on the dense model is skipped.
   * Not with `sequential` or `steps` > 1, whose passes run on partly pruned networks.
   */
  readonly statistics?: CalibrationStatistics;
  /**
   * the exact non-linear criterion and bias compensation (score/nonlinear.ts) instead of the
   * method's: the network re-run for every weight, so small chains only
   */
  readonly nonlinear?: boolean;
  /** calibration samples `nonlinear` uses (the first ones); default 512 */
  readonly nonlinearSamples?: number;
  /**
   * the bias shifts of a compensating method multiplied by this scale in [0, 1] (1: the paper), or
   * by one scale per layer chosen on the calibration inputs without labels ('calibrated', see
   * compensate/scale.ts); default 1
   */
  readonly shiftScale?: number | 'calibrated';
  /**
   * global scope: how many weights each layer loses: as the method's own global ranking says
   * ('score', the paper) or as magnitude's does ('magnitude'); the method ranks inside each layer
   */
  readonly budgets?: 'score' | 'magnitude';
  /**
   * what shiftScale 'calibrated' minimises: 'kl' (classifiers) or 'mse' (regression); default from
   * `loss`, else the calibration labels, else a softmax head (kl), else kl for a model with several
   * outputs and mse for one (the width of the last fully-connected layer)
   */
  readonly discrepancy?: Discrepancy;
}

/**
 * What `prune` does when no method is named and no variant is asked for (the CLI's `prune` without
 * method flags): the bias-only recipe chosen on the panel of models (docs/PANEL.md). Naming a
 * method, e.g. `{ method: 'ec' }`, gives that method exactly as METHOD.md defines it (the paper's
 * one-shot EC for 'ec').
 */
export const DEFAULT_RECIPE = {
  method: 'ec',
  sensitivity: 'loss',
  steps: 5,
  shiftScale: 'calibrated',
} as const satisfies PruneOptions;

/** The options that select a recipe (any of them set means the caller chose one); named by variant-name.ts. */
export type RecipeOptions = Pick<
  PruneOptions,
  | 'method'
  | 'obs'
  | 'sensitivity'
  | 'probes'
  | 'sequential'
  | 'steps'
  | 'refitBiases'
  | 'pattern'
  | 'structure'
  | 'nonlinear'
  | 'shiftScale'
  | 'budgets'
>;

/** Whether the options name a method or ask for a variant (values equal to the paper's defaults, such as steps 1, do not count). */
export function recipeChosen(options: RecipeOptions): boolean {
  return (
    options.method !== undefined ||
    !!options.obs ||
    !!options.nonlinear ||
    options.sensitivity === 'loss' ||
    options.probes !== undefined ||
    !!options.sequential ||
    (options.steps ?? 1) > 1 ||
    (options.refitBiases ?? 0) > 0 ||
    options.pattern !== undefined ||
    options.structure === 'neuron' ||
    options.shiftScale !== undefined ||
    options.budgets !== undefined
  );
}

/**
 * The options with their method resolved: DEFAULT_RECIPE when no method and no variant is asked
 * for, else the named method (default 'ec') with the options as given.
 */
export function resolveRecipe<O extends RecipeOptions>(options: O): O & { readonly method: MethodName } {
  return recipeChosen(options)
    ? { ...options, method: checkMethod(options.method) }
    : { ...options, ...DEFAULT_RECIPE };
}

/**
 * Whether this recipe's calibration statistics of the dense model serve a prune at another
 * sparsity (`statistics`): one-shot recipes; sequential and multi-step ones measure partly pruned
 * networks. No method named: the default recipe's answer.
 */
export function reusesStatistics(options: RecipeOptions): boolean {
  const recipe = resolveRecipe(options);
  return !recipe.sequential && (recipe.steps ?? 1) === 1;
}

/**
 * What `prune` returns. For multi-pass variants `importance`, `deltaBias` and
 * `statistics` are those of the last step (sequential: each layer's entry from the pass that pruned
 * it); for obs, `importance` holds the OBS saliencies w²/[H⁻¹]_jj of the dense weights. `keepMasks`
 * always have the original shapes (structure 'neuron': the rows and columns of removed neurons are
 * 0, while `model` is the shrunk network); `sparsity` is the N:M value (m-n)/m under a pattern and,
 * under structure 'neuron', the fraction of units removed among the units of the hidden layers that
 * can lose them.
 */
export interface PruneResult extends ScoreResult {
  /** the pruned (and compensated) network, of the kind it was given (graph or MLP) */
  readonly model: Model;
  readonly keepMasks: KeepMask[];
  readonly sparsity: number;
  readonly scope: Scope;
  /** names of bias-free layers that gained a bias, and of those left uncompensated (`newBias: false`) */
  readonly addedBiases: readonly string[];
  readonly uncompensated: readonly string[];
  /** the bias refit, when `refitBiases` > 0 (its output errors before and after) */
  readonly refit?: Omit<RefitResult, 'model'>;
  /**
   * structure 'neuron': per hidden layer that can lose units (`layers`, their indices), 1 = neuron
   * kept, and the neuron scores; the hidden layers left whole, each with the op that keeps it so
   */
  readonly neurons?: {
    readonly layers: number[];
    readonly keep: Uint8Array[];
    readonly scores: Float64Array[];
    readonly leftWhole: WholeLayer[];
  };
  /** per layer, the scale the bias shifts were multiplied by (compensating methods; last step) */
  readonly shiftScales?: number[];
  /** the recipe that ran (no method named: the default recipe); variant-name.ts formatVariant names it */
  readonly recipe: RecipeOptions;
}

type Pruned = Omit<
  PruneResult,
  'method' | 'sparsity' | 'scope' | 'refit' | 'addedBiases' | 'uncompensated' | 'recipe'
>;

/**
 * Refuses, before any work, a variant that cannot apply to this model: neuron removal where no
 * hidden layer can lose a unit (each one's units feed an op that cannot drop one, a residual Add,
 * LayerNorm ...; see select/structure.ts), or `nonlinear` on a graph that is not a chain. Every other option runs on any
 * graph. `prune` asks it first; the CLI before loading the calibration data.
 */
export function checkVariantApplies(
  model: Model,
  options: Pick<PruneOptions, 'structure' | 'nonlinear'>,
): void {
  if (options.structure === 'neuron') unitFlows(model);
  if (options.nonlinear) chainFor(model, 'nonlinear');
}

/** The model as a chain, for the variants that rebuild or solve layer by layer along one. */
function chainFor(model: Model, variant: string): Mlp {
  const chain = chainOf(model);
  if (chain) return chain;
  throw new EcpruneError(
    'unsupported',
    `${variant} needs a plain chain of fully-connected layers and activations; this model is a graph (${asGraph(model).nodes.length} ops)`,
  );
}

/** What every variant needs: the resolved method and options. */
interface Run {
  readonly calibration: Dataset;
  readonly options: PruneOptions;
  readonly spec: MethodSpec;
  readonly sparsity: number;
  readonly scope: Scope;
  readonly steps: number;
  readonly pattern?: NmPattern;
  /** the model as given, as a graph: where each layer's compensation can go */
  readonly graph: Graph;
  /** layers with a sparsity of their own (`exclude`, `layerSparsity`) */
  readonly targets?: LayerTargets;
  /** bias-free layers that gained a bias, or stayed uncompensated (`newBias: false`) */
  readonly addedBiases: Set<string>;
  readonly uncompensated: Set<string>;
  readonly shiftScale: number | 'calibrated';
  readonly budgets: 'score' | 'magnitude';
}

/**
 * Prunes `mlp` (a graph or an MLP) with the chosen method and variants (see above).
 * @example const { model } = await prune(model, calibration, { method: 'ec', sparsity: 0.9 });
 * @example const { model } = await prune(mlp, calibration, { sparsity: 0.9, sequential: true, refitBiases: 3 });
 */
export async function prune(
  mlp: Mlp,
  calibration: Dataset,
  options?: PruneOptions,
): Promise<PruneResult & { readonly model: Mlp }>;
export async function prune(mlp: Model, calibration: Dataset, options?: PruneOptions): Promise<PruneResult>;
export async function prune(
  mlp: Model,
  calibration: Dataset,
  given: PruneOptions = {},
): Promise<PruneResult> {
  const graph = asGraph(mlp);
  const resolved = resolveRecipe(given);
  // the default recipe runs without labels: its loss sensitivity takes the task's loss (taskLoss)
  const options =
    !recipeChosen(given) && resolved.sensitivity === 'loss' && resolved.loss === undefined
      ? { ...resolved, loss: taskLoss(graph, calibration) }
      : resolved;
  const { method } = options;
  const scope = checkScope(options.scope ?? 'global');
  const steps = options.steps ?? 1;
  if (!Number.isInteger(steps) || steps < 1)
    throw new EcpruneError('usage', `steps must be a positive integer, got ${steps}`);
  const refitIterations = options.refitBiases ?? 0;
  if (!Number.isInteger(refitIterations) || refitIterations < 0) {
    throw new EcpruneError('usage', `refitBiases must be a non-negative integer, got ${refitIterations}`);
  }
  const structure = options.structure ?? 'weight';
  if (structure !== 'weight' && structure !== 'neuron')
    throw new EcpruneError('usage', `unknown structure '${structure}' (choose weight or neuron)`);
  const pattern = options.pattern && checkPattern(options.pattern);
  const sparsity = pattern ? patternSparsity(pattern) : checkSparsity(options.sparsity ?? 0.9);
  const conflicts: [boolean, string][] = [
    [
      structure === 'neuron' && (pattern !== undefined || steps > 1 || !!options.sequential || !!options.obs),
      'structure neuron takes none of pattern, steps, sequential, obs',
    ],
    [!!options.obs && (pattern !== undefined || steps > 1), 'obs takes neither pattern nor steps'],
    [
      options.keepMasks !== undefined && (structure === 'neuron' || !!options.obs),
      'keepMasks (already pruned weights) go with weight pruning, not structure neuron or obs',
    ],
    [
      (options.exclude !== undefined || options.layerSparsity !== undefined) &&
        (pattern !== undefined || structure === 'neuron'),
      `${option('exclude')} and ${option('layerSparsity')} take neither pattern nor structure neuron`,
    ],
    [
      !!options.nonlinear &&
        (structure === 'neuron' ||
          !!options.obs ||
          !!options.sequential ||
          steps > 1 ||
          options.sensitivity === 'loss' ||
          options.probes !== undefined),
      'nonlinear takes none of structure neuron, obs, sequential, steps, sensitivity loss, probes',
    ],
    [
      options.statistics !== undefined && (steps > 1 || !!options.sequential),
      'reused statistics are for one-shot pruning (no sequential, steps 1)',
    ],
    [
      (options.shiftScale !== undefined || options.budgets !== undefined) &&
        (structure === 'neuron' || !!options.obs || !!options.sequential),
      'shiftScale and budgets take none of structure neuron, obs, sequential',
    ],
  ];
  for (const [conflict, message] of conflicts) if (conflict) throw new EcpruneError('usage', message);
  checkVariantApplies(mlp, options);

  const run: Run = {
    calibration,
    options,
    spec: METHODS[method],
    sparsity,
    scope,
    steps,
    pattern,
    graph,
    targets: layerTargets(
      graph.layers.map((layer) => layer.name),
      options,
    ),
    addedBiases: new Set(),
    uncompensated: new Set(),
    shiftScale: checkShiftScale(options.shiftScale ?? 1),
    budgets: checkBudgets(options.budgets ?? 'score'),
  };
  const pruned = options.nonlinear
    ? await pruneNonlinear(chainFor(mlp, 'nonlinear'), run)
    : structure === 'neuron'
      ? await pruneNeurons(mlp, run)
      : options.obs
        ? await pruneObs(mlp, run)
        : await pruneWeights(mlp, run);
  const result: PruneResult = {
    ...pruned,
    method,
    sparsity,
    scope,
    addedBiases: [...run.addedBiases],
    uncompensated: [...run.uncompensated],
    recipe: {
      method,
      obs: options.obs,
      nonlinear: options.nonlinear,
      sensitivity: options.sensitivity,
      probes: options.probes,
      sequential: options.sequential,
      steps: options.steps,
      refitBiases: options.refitBiases,
      pattern: options.pattern,
      structure: options.structure,
      shiftScale: options.shiftScale,
      budgets: options.budgets,
    },
  };
  if (refitIterations === 0) return result;
  const { model, ...refit } = await timePhase(options.timings, 'refit', () =>
    refitBiases(result.model, mlp, calibration, {
      iterations: refitIterations,
      gemm: options.gemm,
      batchSize: options.batchSize,
    }),
  );
  return { ...result, model, refit };
}

/** The statistics options of a method under the variant's sensitivity settings. */
function statisticsOptions(run: Run, extra: Partial<StatisticsOptions> = {}): StatisticsOptions {
  const { options, spec, calibration } = run;
  let lossGradient: LossKind | undefined;
  if (spec.needsLossGradient) {
    if (calibration.targetKind === undefined) {
      throw new EcpruneError(
        'usage',
        `the method needs labels for the calibration set (${option('calibrationLabels')})`,
        calibration.name,
      );
    }
    lossGradient = options.loss ?? lossFor(calibration.targetKind);
  }
  const needsSensitivity = spec.needsSensitivity || spec.compensate || !!options.withDelta;
  return {
    gemm: options.gemm,
    batchSize: options.batchSize,
    sensitivity: needsSensitivity ? (options.sensitivity ?? 'output') : false,
    sensitivityLoss: options.loss,
    probes: options.probes,
    probeSeed: options.seed,
    lossGradient,
    onProgress: options.onProgress,
    timings: options.timings,
    ...extra,
  };
}

/** Scores, with the weights that are already pruned forced to the front (-∞). */
function scoresOf(
  mlp: Model,
  statistics: CalibrationStatistics,
  run: Run,
  keepMasks: readonly KeepMask[],
): LayerScores {
  const scores = run.spec.criterion(mlp, statistics, { seed: run.options.seed });
  scores.forEach((s, l) => {
    for (let p = 0; p < s.length; p++) if (keepMasks[l][p] === 0) s[p] = Number.NEGATIVE_INFINITY;
  });
  return scores;
}

/**
 * The optimal bias shifts (compensating methods, or `withDelta`). A layer stored without a bias
 * and with no BatchNorm after it to absorb the shift gains a bias, or with `newBias: false` keeps
 * its structure and is not compensated (graph.ts compensationTarget); both are recorded by name.
 */
function deltaOf(mlp: Model, statistics: CalibrationStatistics, run: Run): Float64Array[] | undefined {
  if (!run.spec.compensate && !run.options.withDelta) return undefined;
  return optimalBiasShift(mlp, statistics).map((delta, l) => {
    if (!run.spec.compensate || compensationTarget(run.graph, l) !== 'new-bias') return delta;
    const name = run.graph.layers[l].name;
    if (run.options.newBias === false) {
      run.uncompensated.add(name);
      return new Float64Array(delta.length);
    }
    run.addedBiases.add(name);
    return delta;
  });
}

/** The statistics of the model as given: reused from `options.statistics`, or collected. */
async function denseStatistics(model: Model, run: Run): Promise<CalibrationStatistics> {
  const reused = run.options.statistics;
  if (reused === undefined)
    return collectStatistics(measured(model, run), run.calibration, statisticsOptions(run));
  if (reused.samples !== run.calibration.samples || reused.layers.length !== model.layers.length) {
    throw new EcpruneError(
      'usage',
      `the reused statistics (${reused.samples} samples, ${reused.layers.length} layers) are not of this model and calibration set (${run.calibration.samples} samples, ${model.layers.length} layers)`,
    );
  }
  return reused;
}

/** What the statistics measure: the model's output, or the logits before its softmax head. */
function measured(model: Model, run: Run): Model {
  return run.options.measure === 'logits' ? logitsGraph(asGraph(model)) : model;
}

/** Weight pruning: one-shot or sequential, in one or more steps, unstructured or N:M. */
async function pruneWeights(mlp: Model, run: Run): Promise<Pruned> {
  const { calibration, spec, steps, scope, pattern } = run;
  const shapes = mlp.layers.map((layer) => layer.weight);
  let current = mlp;
  let keepMasks: KeepMask[] = mlp.layers.map(
    (layer, l) => run.options.keepMasks?.[l].slice() ?? new Uint8Array(layer.weight.data.length).fill(1),
  );
  if (keepMasks.some((mask, l) => mask.length !== mlp.layers[l].weight.data.length)) {
    throw new EcpruneError('usage', 'keepMasks must have one entry per weight of every layer');
  }
  let last:
    | {
        importance: LayerScores;
        deltaBias?: Float64Array[];
        statistics: CalibrationStatistics;
        shiftScales?: number[];
      }
    | undefined;
  for (let step = 1; step <= steps; step++) {
    const atStep = (sparsity: number) => (step === steps ? sparsity : 1 - (1 - sparsity) ** (step / steps));
    const stepTargets = run.targets?.map((target) => (target === undefined ? undefined : atStep(target)));
    const stepPattern = pattern && patternAtStep(pattern, step, steps);
    const held = keepMasks;
    // a weight pruned earlier stays pruned even where this step's count is below the earlier one
    const select = (scores: LayerScores) =>
      heldPruned(
        stepPattern
          ? selectPattern(scores, shapes, stepPattern)
          : selectMasks(scores, atStep(run.sparsity), scope, stepTargets),
        held,
      );

    if (!run.options.sequential) {
      const statistics =
        step === 1
          ? await denseStatistics(current, run)
          : await collectStatistics(measured(current, run), calibration, statisticsOptions(run));
      const previous = keepMasks;
      const stepResult = await timePhase(run.options.timings, 'select', () => {
        const importance = scoresOf(current, statistics, run, previous);
        const deltaBias = deltaOf(current, statistics, run);
        // magnitude's budgets: as many per layer as magnitude's selection (targets and held masks
        // included) would prune; EC's ranking inside each layer
        const masks =
          run.budgets === 'magnitude' && !stepPattern && scope === 'global'
            ? heldPruned(
                selectWithBudgets(importance, prunedCounts(select(magnitudeScore(current, statistics, {})))),
                held,
              )
            : select(importance);
        return { importance, deltaBias, masks };
      });
      const { importance, deltaBias, masks } = stepResult;
      const compensated = await compensate(current, masks, deltaBias, run);
      keepMasks = masks;
      current = compensated.model;
      last = { importance, deltaBias, statistics, shiftScales: compensated.shiftScales };
      continue;
    }

    // sequential: the first pass (all layers) also fixes the per-layer budgets of this step
    const first = await collectStatistics(
      measured(current, run),
      calibration,
      statisticsOptions(run, { reference: mlp }),
    );
    const firstScores = scoresOf(current, first, run, keepMasks);
    const budgets = select(firstScores).map((keep) => keep.length - keep.reduce((sum, k) => sum + k, 0));
    const importance: LayerScores = [];
    const deltas: Float64Array[] = [];
    const layerStatistics: LayerStatistics[] = [];
    for (let l = 0; l < current.layers.length; l++) {
      const statistics =
        l === 0
          ? first
          : await collectStatistics(
              measured(current, run),
              calibration,
              statisticsOptions(run, { reference: mlp, layers: [l] }),
            );
      const scores = l === 0 ? firstScores : scoresOf(current, statistics, run, keepMasks);
      const { rows, cols } = current.layers[l].weight;
      const keep = heldPruned(
        [
          stepPattern
            ? selectPatternLayer(scores[l], rows, cols, stepPattern)
            : lowestK(scores[l], budgets[l]),
        ],
        [held[l]],
      )[0];
      const delta = deltaOf(current, statistics, run);
      const masks = current.layers.map((layer, k) =>
        k === l ? keep : new Uint8Array(layer.weight.data.length).fill(1),
      );
      current = applyPruning(current, masks, spec.compensate ? delta : undefined);
      if (spec.compensate) addUpstreamGap(current.layers[l].bias, statistics.layers[l]);
      keepMasks = keepMasks.map((mask, k) => (k === l ? keep : mask));
      importance.push(scores[l]);
      if (delta) deltas.push(delta[l]);
      layerStatistics.push(statistics.layers[l]);
    }
    last = {
      importance,
      deltaBias: deltas.length > 0 ? deltas : undefined,
      statistics: { samples: first.samples, layers: layerStatistics },
    };
  }
  return { ...last!, model: current, keepMasks };
}

/** The masks with every weight that `held` prunes pruned too. */
function heldPruned(masks: KeepMask[], held: readonly KeepMask[]): KeepMask[] {
  return masks.map((mask, l) => mask.map((keep, p) => keep & held[l][p]));
}

/**
 * Zeroes the pruned weights and shifts the biases: by the optimal shifts times the run's scale
 * (1: the paper), or times one scale per layer chosen on the calibration inputs ('calibrated').
 */
async function compensate<M extends Model>(
  model: M,
  masks: readonly KeepMask[],
  deltaBias: Float64Array[] | undefined,
  run: Run,
): Promise<{ model: M; shiftScales?: number[] }> {
  if (!run.spec.compensate || !deltaBias) return { model: applyPruning(model, masks) };
  const { shiftScale, options, calibration } = run;
  if (shiftScale === 'calibrated') {
    const calibrated = await timePhase(options.timings, 'compensate', () =>
      calibrateShiftScales(model, run.graph, masks, deltaBias, calibration, {
        discrepancy:
          options.discrepancy ?? (taskLoss(run.graph, calibration, options.loss) === 'ce' ? 'kl' : 'mse'),
        gemm: options.gemm,
        batchSize: options.batchSize,
      }),
    );
    return { model: calibrated.model, shiftScales: calibrated.scales };
  }
  const shiftScales = deltaBias.map(() => shiftScale);
  return { model: scaledCompensation(model, masks, deltaBias)(shiftScales), shiftScales };
}

/**
 * The loss of the model's task without asking the user: `loss` if given, else from the calibration
 * labels, else ce behind a softmax head, else ce (classifier) for several outputs of the last
 * fully-connected layer and mse (regression) for one.
 */
export function taskLoss(graph: Graph, calibration: Dataset, loss?: LossKind): LossKind {
  const kind = loss ?? (calibration.targetKind && lossFor(calibration.targetKind));
  if (kind) return kind;
  if (headOf(graph)) return 'ce';
  return graph.layers[graph.layers.length - 1].weight.rows > 1 ? 'ce' : 'mse';
}

function checkShiftScale(scale: number | 'calibrated'): number | 'calibrated' {
  if (scale === 'calibrated' || (typeof scale === 'number' && scale >= 0 && scale <= 1)) return scale;
  throw new EcpruneError('usage', `shiftScale must be a number in [0, 1] or 'calibrated', got ${scale}`);
}

function checkBudgets(budgets: string): 'score' | 'magnitude' {
  if (budgets === 'score' || budgets === 'magnitude') return budgets;
  throw new EcpruneError('usage', `unknown budgets '${budgets}' (choose score or magnitude)`);
}

/** b_i += u_i = Σ_n s_i (z^D_i - z^P_i) / Σ_n s_i: the upstream mean gap (see the top). */
function addUpstreamGap(bias: FloatArray, statistics: LayerStatistics): void {
  const gap = statistics.referenceGap!;
  for (let i = 0; i < bias.length; i++)
    if (statistics.m0[i] > 0 && gap[i] !== 0) bias[i] += gap[i] / statistics.m0[i];
}

/** N:M for step t of k: keep n_t = round(m (n/m)^(t/k)) per group, never fewer than n. */
function patternAtStep(pattern: NmPattern, step: number, steps: number): NmPattern {
  const { n, m } = pattern;
  return { n: Math.min(m, Math.max(n, Math.round(m * (n / m) ** (step / steps)))), m };
}

/** Whole hidden neurons: scores from the weight criterion, EC fold into the next layer, model shrunk. */
async function pruneNeurons(mlp: Model, run: Run): Promise<Pruned> {
  const statistics = await denseStatistics(mlp, run);
  const importance = run.spec.criterion(mlp, statistics, { seed: run.options.seed });
  const deltaBias = deltaOf(mlp, statistics, run);
  const scores = neuronScores(mlp, importance);
  const keep = selectNeurons(scores, run.sparsity, run.scope);
  const model = removeNeurons(mlp, keep, run.spec.compensate ? deltaBias : undefined);
  const { flows, leftWhole } = unitFlows(mlp);
  return {
    importance,
    deltaBias,
    statistics,
    model,
    keepMasks: neuronKeepMasks(mlp, keep),
    neurons: { layers: flows.map((flow) => flow.layer), keep, scores, leftWhole },
  };
}

/**
 * Layer-wise OBS with per-layer counts from the scope (global: the criterion's ranking on the dense
 * network), on any graph. The bias column absorbs OBS's updates, so a bias-free layer gains a bias
 * (or, through a BatchNorm, shifts its mean) like EC's; with `newBias: false` it is solved without one.
 */
async function pruneObs(mlp: Model, run: Run): Promise<Pruned> {
  const statistics = await denseStatistics(mlp, run);
  const ranking = run.spec.criterion(mlp, statistics, { seed: run.options.seed });
  // global: the criterion's ranking on the dense network; layer: each layer's share
  const counts = selectMasks(ranking, run.sparsity, run.scope, run.targets).map(
    (keep) => keep.length - keep.reduce((sum, k) => sum + k, 0),
  );
  const fixedBias = new Set<number>();
  run.graph.layers.forEach((layer, l) => {
    if (compensationTarget(run.graph, l) !== 'new-bias') return;
    if (run.options.newBias === false) {
      fixedBias.add(l);
      run.uncompensated.add(layer.name);
    } else run.addedBiases.add(layer.name);
  });
  const { options } = run;
  const obs = await timePhase(options.timings, 'obs', () =>
    obsPrune(mlp, run.calibration, counts, {
      gemm: options.gemm,
      batchSize: options.batchSize,
      fixedBias,
    }),
  );
  return { importance: obs.saliency, statistics, model: obs.model, keepMasks: obs.keepMasks };
}

/** The exact non-linear criterion and compensation on the first calibration samples, then one selection. */
async function pruneNonlinear(mlp: Mlp, run: Run): Promise<Pruned> {
  const { options, calibration } = run;
  const samples = Math.min(calibration.samples, options.nonlinearSamples ?? NONLINEAR_DEFAULT_SAMPLES);
  checkNonlinearSize(weightCount(mlp), samples);
  const { x } = await materialize(firstSamples(calibration, samples));
  const { importance, deltaBias } = await timePhase(options.timings, 'nonlinear', () =>
    nonlinearScore(mlp, x, { gemm: options.gemm, maxSamples: samples }),
  );
  const keepMasks = run.pattern
    ? selectPattern(
        importance,
        mlp.layers.map((layer) => layer.weight),
        run.pattern,
      )
    : selectMasks(importance, run.sparsity, run.scope, run.targets);
  return {
    importance,
    deltaBias,
    // the criterion collects its own; none are shared
    statistics: { samples, layers: [] },
    model: applyPruning(mlp, keepMasks, deltaBias),
    keepMasks,
  };
}
