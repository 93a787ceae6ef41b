/** Hand-made sweep rows for the report tests: every number is chosen here, nothing is computed. */

import type { SweepRow } from '../../src/pipeline/sweep.js';
import type { ReportInfo } from '../../src/report/results.js';

export const SPARSITIES = [0.5, 0.9, 0.95];
export const METHODS = ['ec', 'ec-nocomp', 'magnitude', 'random'] as const;
const NEURONS = 10;
const PIXELS = 784;

/**
 * Layer 0 masks (10 x 784): `ec` keeps pixels 0–9 of neuron 0 only; `magnitude` keeps pixel 100
 * of every neuron. So ec: 10 kept, 9 empty neurons, 774 unused pixels; magnitude: 10 kept, 0
 * empty neurons, 783 unused pixels.
 */
export function firstLayerMask(method: string): Uint8Array {
  const mask = new Uint8Array(NEURONS * PIXELS);
  if (method === 'ec') mask.fill(1, 0, 10);
  else for (let i = 0; i < NEURONS; i++) mask[i * PIXELS + 100] = 1;
  return mask;
}

function row(
  method: SweepRow['method'],
  sparsity: number,
  k: number,
  extra: Partial<SweepRow> = {},
): SweepRow {
  return {
    method,
    scope: 'global',
    sparsity,
    finetuneEpochs: 0,
    testLoss: 0.3 + 0.5 * k * sparsity, // 0.3 … 2.2 for the plotted rows: a linear scale
    accuracy: 0.95 - 0.1 * k * sparsity,
    outputMse: method === 'dense' ? 0 : 10 ** (k - 4) * sparsity, // spans decades: log scale
    layerSparsity: [sparsity + 0.03, sparsity - 0.2, sparsity / 2],
    nonzero: Math.round(266_200 * (1 - sparsity)),
    ms: 12.5 * (k + 1),
    ...extra,
  };
}

export function classificationRows(): SweepRow[] {
  const rows: SweepRow[] = [row('dense', 0, 0, { layerSparsity: [0, 0, 0], nonzero: 266_200, ms: 0 })];
  for (const sparsity of SPARSITIES) {
    rows.push(row('ec', sparsity, 0, { keptFirstLayer: firstLayerMask('ec') }));
    rows.push(row('ec-nocomp', sparsity, 1));
    rows.push(row('magnitude', sparsity, 2, { keptFirstLayer: firstLayerMask('magnitude') }));
    const seeds = [0, 1, 2].map((seed) => row('random', sparsity, 3 + seed, { seed }));
    rows.push(...seeds, row('random', sparsity, 4, { seeds: 3 }));
  }
  return rows;
}

/** Regression: a test MSE instead of an accuracy. */
export function regressionRows(): SweepRow[] {
  return classificationRows().map(({ accuracy: _accuracy, keptFirstLayer: _mask, ...r }) => ({
    ...r,
    testMse: r.testLoss,
  }));
}

export const INFO: ReportInfo = {
  title: 'Study <of> "EC" & friends',
  model: '784-10-… relu (test)',
  data: 'test set: 2,000 samples',
  calibration: 'calibration: 1,000 samples',
  command: "ecprune sweep --dataset mnist --methods ec,magnitude -o 'my report'",
  features: PIXELS,
  layerShapes: ['10×784', '5×10', '2×5'],
};
