import { optimalBiasShift } from '../compensate/delta.js';
import type { Dataset } from '../data/dataset.js';
import { EcpruneError, option } from '../errors.js';
import type { Gemm } from '../gemm/gemm.js';
import type { Model } from '../graph/graph.js';
import type { LossKind } from '../graph/loss.js';
import { lossFor } from '../graph/loss.js';
import { asGraph, logitsGraph } from '../graph/mlp-graph.js';
import type { LayerScores } from '../score/criterion.js';
import { checkMethod, METHODS, type MethodName } from '../score/methods.js';
import { type CalibrationStatistics, collectStatistics } from '../score/statistics.js';
import { type PhaseTimings, timePhase } from '../timings.js';

export interface ScoreOptions {
  /** criterion; default `ec` */
  readonly method?: MethodName;
  /** seed for `random` */
  readonly seed?: number;
  /** loss for `gradmag`; default from the labels (class ids → ce, values → mse) */
  readonly loss?: LossKind;
  /** calibration batch size (memory ∝ batch size × widest layer × outputs); default 1000 */
  readonly batchSize?: number;
  readonly gemm?: Gemm;
  readonly onProgress?: (samplesDone: number, samplesTotal: number) => void;
  /** when given, the milliseconds of each phase are added to it (see `--timings`) */
  readonly timings?: PhaseTimings;
  /** also compute the optimal bias shifts for methods that do not compensate (for `ecprune score`) */
  readonly withDelta?: boolean;
  /**
   * what EC's output error is measured on: `output` (default: the model's output as its graph
   * defines it, a softmax head included) or `logits` (the tensor before a Softmax/LogSoftmax head)
   */
  readonly measure?: 'output' | 'logits';
}

export interface ScoreResult {
  readonly method: MethodName;
  /** per layer, n_out x n_in: low = pruned first */
  readonly importance: LayerScores;
  /** per layer, n_out x n_in: the optimal bias shift for removing each weight (compensating methods) */
  readonly deltaBias?: Float64Array[];
  readonly statistics: CalibrationStatistics;
}

/**
 * Scores every weight of `mlp` on the calibration set (streamed in batches).
 * @example const { importance, deltaBias } = await score(mlp, calibration, { method: 'ec' });
 */
export async function score(
  mlp: Model,
  calibration: Dataset,
  options: ScoreOptions = {},
): Promise<ScoreResult> {
  const method = checkMethod(options.method);
  const spec = METHODS[method];
  let loss: LossKind | undefined;
  if (spec.needsLossGradient) {
    if (calibration.targetKind === undefined) {
      throw new EcpruneError(
        'usage',
        `method '${method}' needs labels for the calibration set (${option('calibrationLabels')})`,
        calibration.name,
      );
    }
    loss = options.loss ?? lossFor(calibration.targetKind);
  }
  const measured = options.measure === 'logits' ? logitsGraph(asGraph(mlp)) : mlp;
  const statistics = await collectStatistics(measured, calibration, {
    gemm: options.gemm,
    batchSize: options.batchSize,
    sensitivity: spec.needsSensitivity || options.withDelta,
    lossGradient: loss,
    onProgress: options.onProgress,
    timings: options.timings,
  });
  const { importance, deltaBias } = await timePhase(options.timings, 'select', () => ({
    importance: spec.criterion(mlp, statistics, { seed: options.seed }),
    deltaBias: spec.compensate || options.withDelta ? optimalBiasShift(mlp, statistics) : undefined,
  }));
  return { method, importance, deltaBias, statistics };
}
