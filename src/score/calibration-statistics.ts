/** What the calibration pass collects (statistics.ts) and how it is asked for. */
import type { Gemm } from '../gemm/gemm.js';
import type { Model } from '../graph/graph.js';
import type { LossKind } from '../graph/loss.js';
import type { PhaseTimings } from '../timings.js';

export interface LayerStatistics {
  readonly shift: Float64Array; // n_in
  readonly m0: Float64Array; // n_out
  readonly m1: Float64Array; // n_out x n_in, row-major
  readonly m2: Float64Array; // n_out x n_in, row-major
  /** mean dL/dW over the calibration set (n_out x n_in), when a loss gradient was requested */
  readonly lossGradient?: Float64Array;
  /**
   * Σ_n s_i(x_n) (z_ref[i](x_n) - z[i](x_n)) (n_out), when a `reference` network was given: the
   * s-weighted gap between the reference's pre-activations and this network's (see pipeline/prune.ts, sequential).
   */
  readonly referenceGap?: Float64Array;
}

/** What the sensitivities s_i measure: the output change or the loss change (see statistics.ts). */
export type SensitivityKind = 'output' | 'loss';

export interface CalibrationStatistics {
  readonly samples: number;
  readonly layers: readonly LayerStatistics[];
}

export interface StatisticsOptions {
  readonly gemm?: Gemm;
  readonly batchSize?: number;
  /** collect m0/m1/m2 (default true = 'output'; false = none) and what s measures */
  readonly sensitivity?: boolean | SensitivityKind;
  /**
   * the loss whose output Hessian weights 'loss' sensitivities; default `lossGradient`, else the
   * loss that fits the calibration targets (class ids → ce, values → mse)
   */
  readonly sensitivityLoss?: LossKind;
  /** estimate s with this many Rademacher probes per sample instead of the exact K rows */
  readonly probes?: number;
  /** seed of the probes (default 0) */
  readonly probeSeed?: number;
  /** accumulate the moments of these layers only (default all); the others stay zero */
  readonly layers?: readonly number[];
  /** a network of the same shape; fills `referenceGap` of every accumulated layer */
  readonly reference?: Model;
  /** also collect the loss gradient dL/dW (needs targets) */
  readonly lossGradient?: LossKind;
  readonly onProgress?: (samplesDone: number, samplesTotal: number) => void;
  /**
   * when given, the milliseconds of `forward`, `sensitivity` and `statistics` are added to it; on
   * the graph path (see collectStatistics) the three run fused and are booked as `statistics`
   * (`forward` is then only the short run for the shift), and building the graph as `compile`
   */
  readonly timings?: PhaseTimings;
}
