/**
 * The machine-readable results: results.json (the rows and the report's description) and
 * results.csv (one line per row, columns in a fixed order). Layer 0's keep-mask is drawn in the
 * report but not stored here (it has as many entries as the layer has weights).
 */
import type { SweepRow } from '../pipeline/sweep.js';
import { VERSION } from '../version.js';

/** What the report says about the study, besides the rows. */
export interface ReportInfo {
  readonly title: string;
  /** the network: architecture, weights, how it was trained or which file */
  readonly model: string;
  /** the test set */
  readonly data: string;
  /** false when the test set is the calibration set (said in the report); default true */
  readonly heldOut?: boolean;
  /** the calibration set */
  readonly calibration: string;
  /** the command that reproduces the report */
  readonly command: string;
  /** input features of the network (images: side², for the mask drawings) */
  readonly features: number;
  /** per layer, its weight shape, e.g. `300×784` */
  readonly layerShapes?: readonly string[];
  /** extra remarks shown under the description */
  readonly notes?: readonly string[];
}

/** The CSV's fixed columns, in order; then one `layer<l>_sparsity` per layer. */
export const CSV_COLUMNS = [
  'method',
  'scope',
  'sparsity',
  'finetune_epochs',
  'seed',
  'seeds',
  'test_loss',
  'accuracy',
  'test_mse',
  'output_mse',
  'nonzero',
  'ms',
] as const;

function fixedFields(row: SweepRow): Record<(typeof CSV_COLUMNS)[number], string | number | undefined> {
  return {
    method: row.method,
    scope: row.scope,
    sparsity: row.sparsity,
    finetune_epochs: row.finetuneEpochs,
    seed: row.seed,
    seeds: row.seeds,
    test_loss: row.testLoss,
    accuracy: row.accuracy,
    test_mse: row.testMse,
    output_mse: row.outputMse,
    nonzero: row.nonzero,
    ms: Math.round(row.ms * 10) / 10,
  };
}

export function resultsCsv(rows: readonly SweepRow[]): string {
  const layers = rows[0]?.layerSparsity.length ?? 0;
  const header = [...CSV_COLUMNS, ...Array.from({ length: layers }, (_, l) => `layer${l}_sparsity`)];
  const lines = rows.map((row) => {
    const fields = fixedFields(row);
    return [...CSV_COLUMNS.map((name) => fields[name]), ...row.layerSparsity]
      .map((v) => (v === undefined ? '' : String(v)))
      .join(',');
  });
  return `${[header.join(','), ...lines].join('\n')}\n`;
}

/** The rows without the keep-masks, in the same order as the CSV's columns. */
export function resultsJson(rows: readonly SweepRow[], info: ReportInfo): string {
  const plain = rows.map(({ keptFirstLayer: _mask, ...row }) => row);
  return `${JSON.stringify({ ecprune: VERSION, ...info, rows: plain }, null, 2)}\n`;
}
