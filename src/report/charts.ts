/**
 * The report's charts as vega-lite specs, rendered to SVG strings by vega without a DOM or a
 * canvas (`renderer: 'none'`), so the same code runs in Node and in browsers. Every data point
 * carries its series as `method`, which vega writes into each mark's aria-label
 * (`method: ec; …`): the tests find the marks of every method that way.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { SweepRow } from '../pipeline/sweep.js';
import { taskOf } from './table.js';

export interface Chart {
  /** file name stem: charts/<name>.svg */
  readonly name: string;
  readonly title: string;
  readonly spec: TopLevelSpec;
}

export interface RenderedChart extends Chart {
  readonly svg: string;
}

/** How a row was pruned besides its method: the scope, and the fine-tuning when there was some. */
export function variantOf(row: SweepRow): string {
  return `${row.scope}${row.finetuneEpochs > 0 ? ` +${row.finetuneEpochs} ep` : ''}`;
}

/** The rows drawn as points: every pruned network, `random` as its mean over seeds. */
function plotted(rows: readonly SweepRow[]): SweepRow[] {
  const key = (row: SweepRow) => `${row.method} ${variantOf(row)} ${row.sparsity}`;
  const averaged = new Set(rows.filter((row) => row.seeds !== undefined).map(key));
  return rows.filter((row) => row.method !== 'dense' && (row.seed === undefined || !averaged.has(key(row))));
}

/** Log scale when the positive values span a decade or more. */
function scaleFor(values: readonly number[]): { type: 'log' | 'linear' } {
  const positive = values.filter((v) => v > 0);
  if (positive.length === 0) return { type: 'linear' };
  return { type: Math.max(...positive) / Math.min(...positive) >= 10 ? 'log' : 'linear' };
}

const WIDTH = 360;
const HEIGHT = 240;
const SPARSITY_AXIS = {
  field: 'sparsity',
  type: 'quantitative',
  title: 'sparsity (fraction of weights removed)',
  axis: { format: '.0%' },
} as const;

/**
 * One line per method and variant of `value` against the sparsity: colour = method, and when the
 * study has several variants (scopes, fine-tuning) dash and point shape = variant. The dense
 * network is a dashed grey rule when it has a value for it. Points whose value is not positive are
 * left out of log scales.
 */
function metricChart(
  rows: readonly SweepRow[],
  name: string,
  title: string,
  label: string,
  value: (row: SweepRow) => number | undefined,
  options: { percent?: boolean; dense?: boolean } = {},
): Chart | undefined {
  const points = plotted(rows)
    .map((row) => ({
      method: row.method,
      variant: variantOf(row),
      sparsity: row.sparsity,
      value: value(row),
    }))
    .filter(
      (point): point is { method: SweepRow['method']; variant: string; sparsity: number; value: number } =>
        point.value !== undefined && Number.isFinite(point.value),
    );
  if (points.length === 0) return undefined;
  const scale = options.percent ? { type: 'linear' as const } : scaleFor(points.map((p) => p.value));
  const shown = scale.type === 'log' ? points.filter((p) => p.value > 0) : points;
  const denseRow = rows.find((row) => row.method === 'dense');
  const denseValue = options.dense && denseRow ? value(denseRow) : undefined;
  const y = {
    field: 'value',
    type: 'quantitative',
    title: label,
    scale: scale.type === 'log' ? scale : { ...scale, zero: false },
    axis: options.percent ? { format: '.1%' } : {},
  } as const;
  const layers: unknown[] = [
    {
      data: { values: shown },
      mark: { type: 'line', point: true, strokeWidth: 2 },
      encoding: {
        x: SPARSITY_AXIS,
        y,
        color: { field: 'method', type: 'nominal', sort: null, title: 'method' },
        ...(new Set(shown.map((p) => p.variant)).size > 1
          ? {
              strokeDash: { field: 'variant', type: 'nominal', sort: null, title: 'variant' },
              shape: { field: 'variant', type: 'nominal', sort: null, title: 'variant' },
            }
          : { detail: { field: 'variant', type: 'nominal' } }),
      },
    },
  ];
  if (denseValue !== undefined) {
    layers.push({
      data: { values: [{ method: 'dense', value: denseValue }] },
      mark: { type: 'rule', strokeDash: [4, 4], color: '#555' },
      encoding: { y },
    });
  }
  return { name, title, spec: { width: WIDTH, height: HEIGHT, title, layer: layers } as TopLevelSpec };
}

/** The fraction of each layer's weights that the global ranking removed, for EC and magnitude. */
function layerSparsityChart(rows: readonly SweepRow[], layerShapes?: readonly string[]): Chart | undefined {
  const values = rows
    .filter(
      (row) =>
        (row.method === 'ec' || row.method === 'magnitude') &&
        row.scope === 'global' &&
        row.finetuneEpochs === 0,
    )
    .flatMap((row) =>
      row.layerSparsity.map((pruned, l) => ({
        method: row.method,
        sparsity: row.sparsity,
        layer: `layer ${l}${layerShapes?.[l] ? ` (${layerShapes[l]})` : ''}`,
        pruned,
      })),
    );
  if (values.length === 0) return undefined;
  const title = 'Per-layer sparsity chosen by the global ranking';
  return {
    name: 'layer-sparsity',
    title,
    spec: {
      title,
      data: { values },
      mark: { type: 'line', point: true, strokeWidth: 2 },
      encoding: {
        x: SPARSITY_AXIS,
        y: {
          field: 'pruned',
          type: 'quantitative',
          title: 'fraction of the layer removed',
          axis: { format: '.0%' },
        },
        color: { field: 'layer', type: 'nominal', title: 'layer', sort: null },
        column: { field: 'method', type: 'nominal', title: null, sort: null },
        detail: { field: 'method', type: 'nominal', title: 'method' },
      },
      width: WIDTH * 0.75,
      height: HEIGHT,
    } as TopLevelSpec,
  };
}

/** The charts that the rows have data for, in report order. */
export function buildCharts(rows: readonly SweepRow[], layerShapes?: readonly string[]): Chart[] {
  if (rows.length === 0) return [];
  const classes = taskOf(rows[0]) === 'classes';
  const charts = [
    metricChart(
      rows,
      'test-loss',
      'Test loss vs sparsity',
      classes ? 'test cross-entropy' : 'test MSE',
      (row) => row.testLoss,
      { dense: true },
    ),
    classes
      ? metricChart(rows, 'accuracy', 'Test accuracy vs sparsity', 'test accuracy', (row) => row.accuracy, {
          percent: true,
          dense: true,
        })
      : undefined,
    metricChart(
      rows,
      'output-error',
      'Output error vs sparsity (against the dense network)',
      'mean squared output change',
      (row) => row.outputMse,
    ),
    layerSparsityChart(rows, layerShapes),
  ];
  return charts.filter((chart): chart is Chart => chart !== undefined);
}

/** Renders a vega-lite spec to a standalone SVG string (no DOM, no canvas, no network). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function renderCharts(
  rows: readonly SweepRow[],
  layerShapes?: readonly string[],
): Promise<RenderedChart[]> {
  const charts = buildCharts(rows, layerShapes);
  return Promise.all(charts.map(async (chart) => ({ ...chart, svg: await renderSvg(chart.spec) })));
}
