/**
 * The table of `compress`: one row per stage of the chosen point (dense, pruned, weight-shared and
 * coded), as a fixed-width terminal table.
 */
import type { CompressStage } from '../pipeline/compress.js';

const STAGE_NAMES: Record<CompressStage['stage'], string> = {
  dense: 'dense',
  pruned: 'pruned + fine-tuned',
  shared: 'weight sharing + coding',
};

const HEADERS = ['stage', 'stored as', 'sparsity', 'bits', 'bytes', 'ratio', 'val accuracy', 'test accuracy'];

const percent = (fraction: number | undefined) =>
  fraction === undefined ? '' : `${(100 * fraction).toFixed(2)} %`;

/** The test column only when a stage has a test accuracy. */
function rowsOf(stages: readonly CompressStage[]): string[][] {
  const columns = stages.some((s) => s.testAccuracy !== undefined) ? HEADERS.length : HEADERS.length - 1;
  return [HEADERS, ...stages.map(cells)].map((row) => row.slice(0, columns));
}

function cells(stage: CompressStage): string[] {
  return [
    STAGE_NAMES[stage.stage],
    stage.storage,
    `${(100 * stage.sparsity).toFixed(1)} %`,
    String(stage.bits),
    stage.bytes.toLocaleString('en'),
    `${stage.ratio.toFixed(1)}x`,
    percent(stage.validationAccuracy),
    percent(stage.testAccuracy),
  ];
}

/** The stages as a terminal table: text columns left-aligned, numbers right-aligned. */
export function compressTable(stages: readonly CompressStage[]): string {
  const rows = rowsOf(stages);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows
    .map((row) =>
      row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '),
    )
    .join('\n');
}
