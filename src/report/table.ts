/**
 * The results table: one column list, printed as a fixed-width terminal table (row by row, as the
 * sweep goes) or as markdown.
 */
import type { SweepRow } from '../pipeline/sweep.js';
import { type Better, bestRows, competingRows, variantOf } from './best.js';

/** Class labels (accuracy) or real-valued targets (test MSE). */
export type TaskKind = 'classes' | 'values';

export interface Column {
  readonly header: string;
  readonly width: number;
  readonly align: 'left' | 'right';
  readonly value: (row: SweepRow) => string;
  /** a measure of quality: the number behind the text, which way is better, and its name */
  readonly quality?: {
    readonly value: (row: SweepRow) => number | undefined;
    readonly better: Better;
    readonly label: string;
  };
}

export function taskOf(row: SweepRow): TaskKind {
  return row.accuracy !== undefined ? 'classes' : 'values';
}

/** A number in 4 significant digits, or 3 in exponent form outside [1e-3, 1e5) (`9e-5`, `1.23e-4`). */
export function formatNumber(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '';
  if (value === 0) return '0';
  const size = Math.abs(value);
  return size >= 1e-3 && size < 1e5
    ? Number(value.toPrecision(4)).toString()
    : Number(value.toPrecision(3)).toExponential();
}

export function formatPercent(fraction: number | undefined, digits = 1): string {
  return fraction === undefined ? '' : `${(100 * fraction).toFixed(digits)}%`;
}

/** `ec`, `random (seed 1)`, `random (mean of 3)`; ` +2 ep` after fine-tuning. */
export function methodLabel(row: SweepRow): string {
  const runs =
    row.seed !== undefined ? ` (seed ${row.seed})` : row.seeds !== undefined ? ` (mean of ${row.seeds})` : '';
  return `${row.method}${runs}`;
}

/** A right-aligned column of a quality measure: the number, how it is printed, which way is better. */
function qualityColumn(
  header: string,
  width: number,
  value: (row: SweepRow) => number | undefined,
  format: (value: number | undefined) => string,
  better: Better,
  label = header,
): Column {
  return {
    header,
    width,
    align: 'right',
    value: (row) => format(value(row)),
    quality: { value, better, label },
  };
}

/** The table's columns; for regression the test loss is the test MSE, so it is one column. */
export function tableColumns(task: TaskKind, layers: number, methodWidth = 22): Column[] {
  const quality: Column[] =
    task === 'classes'
      ? [
          qualityColumn('test loss', 9, (row) => row.testLoss, formatNumber, 'lower'),
          qualityColumn(
            'accuracy',
            8,
            (row) => row.accuracy,
            (v) => formatPercent(v, 2),
            'higher',
            'test accuracy',
          ),
        ]
      : [qualityColumn('test MSE', 9, (row) => row.testMse ?? row.testLoss, formatNumber, 'lower')];
  return [
    { header: 'method', width: methodWidth, align: 'left', value: methodLabel },
    { header: 'scope', width: 6, align: 'left', value: (row) => row.scope },
    { header: 'sparsity', width: 8, align: 'right', value: (row) => formatPercent(row.sparsity) },
    { header: 'ft', width: 2, align: 'right', value: (row) => String(row.finetuneEpochs) },
    ...quality,
    qualityColumn('output MSE', 10, (row) => row.outputMse, formatNumber, 'lower'),
    {
      header: 'nonzero',
      width: 9,
      align: 'right',
      value: (row) => Math.round(row.nonzero).toLocaleString('en'),
    },
    {
      header: 'pruned per layer %',
      width: Math.max(18, 4 * layers - 1),
      align: 'left',
      value: (row) => row.layerSparsity.map((s) => (100 * s).toFixed(0)).join('/'),
    },
    { header: 'ms', width: 7, align: 'right', value: (row) => Math.round(row.ms).toLocaleString('en') },
  ];
}

/** Per quality column (one with a better direction), the rows best at their sparsity. */
export function bestCells(rows: readonly SweepRow[], columns: readonly Column[]): Map<Column, Set<SweepRow>> {
  return new Map(
    columns.flatMap((c) =>
      c.quality ? [[c, bestRows(rows, c.quality.value, c.quality.better)] as const] : [],
    ),
  );
}

/** The best of one quality column at one sparsity: the methods (ties joined) and the value. */
export interface BestCell {
  readonly names: string;
  readonly value: string;
}

/**
 * Per sparsity (ascending), the best method(s) of each quality column of the table (test loss,
 * accuracy or test MSE, output MSE), with the column labels; a method is named with its variant
 * when the study has several (scopes, fine-tuning).
 */
export function bestPerSparsity(
  rows: readonly SweepRow[],
): { sparsity: number; labels: string[]; best: (BestCell | undefined)[] }[] {
  if (rows.length === 0) return [];
  const columns = tableColumns(taskOf(rows[0]), rows[0].layerSparsity.length).filter((c) => c.quality);
  const best = bestCells(rows, columns);
  const competing = competingRows(rows);
  const sparsities = [...new Set(competing.map((row) => row.sparsity))].sort((a, b) => a - b);
  const several = new Set(competing.map(variantOf)).size > 1;
  const name = (row: SweepRow) => `${methodLabel(row)}${several ? ` (${variantOf(row)})` : ''}`;
  return sparsities.map((sparsity) => ({
    sparsity,
    labels: columns.map((c) => c.quality!.label),
    best: columns.map((c) => {
      const winners = [...(best.get(c) ?? [])].filter((row) => row.sparsity === sparsity);
      return winners.length === 0
        ? undefined
        : { names: winners.map(name).join(', '), value: c.value(winners[0]) };
    }),
  }));
}

/** For the terminal, after the table: `best at 90%: test loss ec-nocomp 0.7144; test accuracy magnitude 88.60%; …`. */
export function formatBest(rows: readonly SweepRow[]): string {
  return bestPerSparsity(rows)
    .map(
      ({ sparsity, labels, best }) =>
        `best at ${formatPercent(sparsity, 0)}: ${best
          .flatMap((cell, k) => (cell ? [`${labels[k]} ${cell.names} ${cell.value}`] : []))
          .join('; ')}`,
    )
    .join('\n');
}

function cell(text: string, column: Column): string {
  return column.align === 'left' ? text.padEnd(column.width) : text.padStart(column.width);
}

export function tableHeader(columns: readonly Column[]): string {
  const header = columns.map((column) => cell(column.header, column)).join('  ');
  return `${header}\n${columns.map((column) => '-'.repeat(column.width)).join('  ')}`;
}

export function tableLine(columns: readonly Column[], row: SweepRow): string {
  return columns.map((column) => cell(column.value(row), column)).join('  ');
}

/** The whole table for the terminal. */
export function formatTable(rows: readonly SweepRow[]): string {
  if (rows.length === 0) return '';
  const columns = tableColumns(taskOf(rows[0]), rows[0].layerSparsity.length);
  return [tableHeader(columns), ...rows.map((row) => tableLine(columns, row))].join('\n');
}

/**
 * A printer for rows arriving one at a time: the header before the first (the dense row tells
 * whether the task has an accuracy), then one line per row.
 */
export function tablePrinter(
  write: (line: string) => void,
  methods: readonly string[] = [],
): (row: SweepRow) => void {
  let columns: Column[] | undefined;
  // wide enough for the longest method name and a "(mean of 3)" suffix
  const methodWidth = Math.max(22, ...methods.map((m) => m.length + 12));
  return (row) => {
    if (columns === undefined) {
      columns = tableColumns(taskOf(row), row.layerSparsity.length, methodWidth);
      write(tableHeader(columns));
    }
    write(tableLine(columns, row));
  };
}

/** The whole table as markdown (results.md), the best of each measure per sparsity in bold. */
export function markdownTable(rows: readonly SweepRow[]): string {
  if (rows.length === 0) return '';
  const columns = tableColumns(taskOf(rows[0]), rows[0].layerSparsity.length);
  const best = bestCells(rows, columns);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  // the best of each measure at its sparsity in bold, as the report stars it
  const text = (row: SweepRow, column: Column) => {
    const value = column.value(row).replaceAll('|', '\\|');
    return best.get(column)?.has(row) ? `**${value}**` : value;
  };
  return [
    line(columns.map((column) => column.header)),
    line(columns.map((column) => (column.align === 'right' ? '---:' : ':---'))),
    ...rows.map((row) => line(columns.map((column) => text(row, column)))),
  ].join('\n');
}
