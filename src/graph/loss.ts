import type { Targets } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import type { Matrix } from '../model/matrix.js';
import { zerosLike } from './tensor.js';

/** `ce`: softmax cross-entropy on logits with class ids; `mse`: per-sample mean squared error. */
export type LossKind = 'ce' | 'mse';

/** The loss that fits a kind of targets: class ids → cross-entropy, real values → MSE. */
export function lossFor(targets: Targets['kind']): LossKind {
  return targets === 'classes' ? 'ce' : 'mse';
}

function checkTargets(output: { readonly cols: number }, targets: Targets, loss: LossKind): void {
  if (loss === 'ce' && targets.kind !== 'classes') {
    throw new EcpruneError('usage', 'cross-entropy needs integer class labels, got real-valued targets');
  }
  if (loss === 'mse' && targets.kind === 'values' && targets.values.cols !== output.cols) {
    throw new EcpruneError(
      'input',
      `targets have ${targets.values.cols} columns, the model has ${output.cols} outputs`,
    );
  }
  if (targets.kind === 'classes') {
    for (let n = 0; n < targets.values.length; n++) {
      const c = targets.values[n];
      if (c < 0 || c >= output.cols) {
        throw new EcpruneError(
          'input',
          `label ${c} is out of range for ${output.cols} outputs`,
          undefined,
          `sample ${n}`,
        );
      }
    }
  }
}

/** The target of sample n, output k (one-hot for class ids). */
function targetValue(targets: Targets, n: number, k: number, outputs: number): number {
  return targets.kind === 'classes' ? +(targets.values[n] === k) : targets.values.data[n * outputs + k];
}

/** A batch's targets, which a loss gradient needs: a usage error naming the data set if there are none. */
export function requireTargets(targets: Targets | undefined, loss: LossKind, dataName: string): Targets {
  if (targets === undefined) {
    throw new EcpruneError('usage', `${loss} loss needs labels for the calibration set`, dataName);
  }
  return targets;
}

/**
 * The targets of a batch as B x K floats, one-hot for class ids (what a graph computing dL/dy
 * takes), after the same checks as `lossGradient`.
 */
export function targetMatrix(targets: Targets, outputs: number, loss: LossKind): Matrix {
  checkTargets({ cols: outputs }, targets, loss);
  if (targets.kind === 'values') return targets.values;
  const rows = targets.values.length;
  const data = new Float32Array(rows * outputs);
  for (let n = 0; n < rows; n++) data[n * outputs + targets.values[n]] = 1;
  return { rows, cols: outputs, data };
}

/** log Σ_k exp(y_k) of one row, shifted by the max so that large logits do not overflow. */
export function logSumExp(row: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

/** Per-sample losses (length B). */
export function sampleLosses(output: Matrix, targets: Targets, loss: LossKind): Float64Array {
  checkTargets(output, targets, loss);
  const { rows, cols } = output;
  const losses = new Float64Array(rows);
  for (let n = 0; n < rows; n++) {
    const row = output.data.subarray(n * cols, (n + 1) * cols);
    if (loss === 'ce') {
      losses[n] = logSumExp(row) - row[(targets as { values: Int32Array }).values[n]];
    } else {
      let sum = 0;
      for (let k = 0; k < cols; k++) sum += (row[k] - targetValue(targets, n, k, cols)) ** 2;
      losses[n] = sum / cols;
    }
  }
  return losses;
}

/**
 * d loss_n / d y for every sample n (B x K), not divided by the batch size; in the output's
 * precision (float64 for the finite-difference tests that run a graph in float64).
 */
export function lossGradient(output: Matrix, targets: Targets, loss: LossKind): Matrix {
  checkTargets(output, targets, loss);
  const { rows, cols } = output;
  const gradient = zerosLike(output.data, rows * cols) as Float32Array;
  for (let n = 0; n < rows; n++) {
    const row = output.data.subarray(n * cols, (n + 1) * cols);
    const lse = loss === 'ce' ? logSumExp(row) : 0;
    for (let k = 0; k < cols; k++) {
      const t = targetValue(targets, n, k, cols);
      gradient[n * cols + k] = loss === 'ce' ? Math.exp(row[k] - lse) - t : (2 * (row[k] - t)) / cols;
    }
  }
  return { rows, cols, data: gradient };
}
