/**
 * The report's charts as vega-lite specs, rendered to SVG strings by vega without a DOM or a
 * canvas (`renderer: 'none'`), so the same code runs in Node and in browsers. Every data point
 * carries its series as `method`, which vega writes into each mark's aria-label
 * (`method: ec; …`): the tests find the marks of every method that way. The best method at each
 * sparsity is ringed (aria-label `best at 90%: …`).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { SweepRow } from '../pipeline/sweep.js';
import { type Better, bestRows, CHANCE_BASELINE, competingRows, variantOf } from './best.js';
import { formatNumber, formatPercent, taskOf } from './table.js';

export interface Chart {
  /** file name stem: charts/<name>.svg */
  readonly name: string;
  readonly title: string;
  readonly spec: TopLevelSpec;
}

export interface RenderedChart extends Chart {
  readonly svg: string;
}

/** What accuracy and loss were measured on, for the titles: held-out data, or the calibration samples. */
export interface EvaluatedOn {
  /** the data set's name, e.g. `x_test.npy` */
  readonly name: string;
  /** false: the calibration samples themselves (the numbers are optimistic and favour EC) */
  readonly heldOut: boolean;
}

export interface ChartOptions {
  /** per layer, its weight shape, e.g. `300×784` */
  readonly layerShapes?: readonly string[];
  /** default: held-out data without a name */
  readonly evaluatedOn?: EvaluatedOn;
}

/** Log scale when the positive values span a decade or more. */
function scaleFor(values: readonly number[]): { type: 'log' | 'linear' } {
  const positive = values.filter((v) => v > 0);
  if (positive.length === 0) return { type: 'linear' };
  return { type: Math.max(...positive) / Math.min(...positive) >= 10 ? 'log' : 'linear' };
}

/** Sizes for a chart that spans the page: a reader sees every label without zooming. */
const WIDTH = 820;
const HEIGHT = 330;
const CONFIG = {
  axis: { labelFontSize: 14, titleFontSize: 15, titleFontWeight: 'normal' },
  legend: { labelFontSize: 14, titleFontSize: 15, symbolSize: 140, labelLimit: 320 },
  header: { labelFontSize: 15, labelFontWeight: 'bold' },
  title: { fontSize: 19, subtitleFontSize: 14, subtitleColor: '#444', anchor: 'start', offset: 12 },
} as const;

function sparsityAxis(sparsities: readonly number[]) {
  return {
    field: 'sparsity',
    type: 'quantitative',
    title: 'sparsity (fraction of weights removed)',
    scale: { zero: false, padding: 22 },
    axis: { format: '.0%', values: [...new Set(sparsities)].sort((a, b) => a - b), labelOverlap: 'greedy' },
  } as const;
}

const formatValue = (value: number, percent?: boolean) =>
  percent ? `${(100 * value).toFixed(1)}%` : formatNumber(value);

/**
 * The y range the methods other than the chance baseline need (and the dense value), padded;
 * undefined when every point fits in it anyway. `random` far below (accuracy) or above (loss)
 * would otherwise squash the differences that matter into a sliver: its points outside are drawn
 * on the axis edge as triangles with their value written next to them.
 */
function usefulDomain(
  points: readonly { method: string; value: number }[],
  dense: number | undefined,
  scale: 'log' | 'linear',
  percent: boolean,
): [number, number] | undefined {
  const useful = points.filter((p) => p.method !== CHANCE_BASELINE).map((p) => p.value);
  // a study of the chance baseline alone keeps its own range
  if (useful.length === 0) return undefined;
  if (dense !== undefined) useful.push(dense);
  let lo = Math.min(...useful);
  let hi = Math.max(...useful);
  if (scale === 'log') {
    lo /= 1.5;
    hi *= 1.5;
  } else {
    // room at the edges for the off-axis triangles and their values
    const pad = 0.1 * (hi - lo || Math.abs(hi) || 1);
    lo -= pad;
    hi += pad;
    if (percent) [lo, hi] = [Math.max(0, lo), Math.min(1, hi)];
  }
  return points.some((p) => p.value < lo || p.value > hi) ? [lo, hi] : undefined;
}

/**
 * One line per method and variant of `value` against the sparsity: colour = method, and when the
 * study has several variants (scopes, fine-tuning) dash and point shape = variant. The best method
 * at each sparsity is ringed; the dense network is a dashed grey rule when it has a value for it.
 * Points whose value is not positive are left out of log scales.
 */
function metricChart(
  rows: readonly SweepRow[],
  name: string,
  title: string,
  label: string,
  value: (row: SweepRow) => number | undefined,
  options: { better: Better; percent?: boolean; dense?: boolean },
): Chart | undefined {
  const percent = options.percent ?? false;
  const best = bestRows(rows, value, options.better);
  const points = competingRows(rows)
    .map((row) => ({
      method: row.method,
      variant: variantOf(row),
      sparsity: row.sparsity,
      value: value(row),
      best: best.has(row),
    }))
    .filter(
      (
        point,
      ): point is {
        method: SweepRow['method'];
        variant: string;
        sparsity: number;
        value: number;
        best: boolean;
      } => point.value !== undefined && Number.isFinite(point.value),
    );
  if (points.length === 0) return undefined;
  const scale = percent ? { type: 'linear' as const } : scaleFor(points.map((p) => p.value));
  const denseRow = rows.find((row) => row.method === 'dense');
  const denseValue = options.dense && denseRow ? value(denseRow) : undefined;
  const domain = usefulDomain(
    scale.type === 'log' ? points.filter((p) => p.value > 0) : points,
    denseValue,
    scale.type,
    percent,
  );
  const [lo, hi] = domain ?? [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY];
  const several = new Set(points.map((p) => p.variant)).size > 1;
  const shown = (scale.type === 'log' ? points.filter((p) => p.value > 0) : points).map((p) => ({
    ...p,
    off: p.value < lo ? 'below' : p.value > hi ? 'above' : undefined,
    y: Math.min(hi, Math.max(lo, p.value)),
    text: formatValue(p.value, percent),
    who: several ? `${p.method} (${p.variant})` : p.method,
  }));
  // vega writes `description` as a mark's aria-label: the real value, also where it is drawn on the edge
  const described = (p: (typeof shown)[number]) =>
    `method: ${p.method}; variant: ${p.variant}; sparsity: ${formatPercent(p.sparsity, 0)}; ${label}: ${p.text}${p.off ? ` (off the axis, ${p.off})` : ''}`;
  const description = { field: 'description' } as const;
  const y = {
    field: 'y',
    type: 'quantitative',
    title: label,
    scale: {
      ...(scale.type === 'log' ? scale : { ...scale, zero: false }),
      ...(domain && { domain, clamp: true }),
    },
    axis: percent ? { format: '.0%' } : {},
  } as const;
  const x = sparsityAxis(shown.map((p) => p.sparsity));
  const color = { field: 'method', type: 'nominal', sort: null, title: 'method' } as const;
  const variant = several
    ? { strokeDash: { field: 'variant', type: 'nominal', sort: null, title: 'variant' } }
    : { detail: { field: 'variant', type: 'nominal' } };
  const offScale = shown.filter((p) => p.off !== undefined);
  const layers: unknown[] = [
    {
      data: {
        values: shown.map((p) => ({ ...p, description: `method: ${p.method}; variant: ${p.variant}; line` })),
      },
      mark: { type: 'line', strokeWidth: 2.5 },
      encoding: { x, y, color, description, ...variant },
    },
    {
      data: {
        values: shown.filter((p) => p.off === undefined).map((p) => ({ ...p, description: described(p) })),
      },
      mark: { type: 'point', filled: true, size: 70, opacity: 1 },
      encoding: {
        x,
        y,
        color,
        description,
        ...(several && { shape: { field: 'variant', type: 'nominal', sort: null, title: 'variant' } }),
      },
    },
  ];
  if (offScale.length > 0) {
    for (const side of ['below', 'above'] as const) {
      const values = offScale.filter((p) => p.off === side).map((p) => ({ ...p, description: described(p) }));
      if (values.length === 0) continue;
      layers.push(
        {
          data: { values },
          mark: {
            type: 'point',
            shape: side === 'below' ? 'triangle-down' : 'triangle-up',
            filled: true,
            size: 150,
            opacity: 1,
          },
          encoding: { x, y, color, description },
        },
        {
          // the value next to the triangle; its aria-label says it is a label, not a data point
          data: { values: values.map((p) => ({ ...p, description: `value label: ${p.who} ${p.text}` })) },
          mark: { type: 'text', dy: side === 'below' ? -14 : 14, fontSize: 13, fontWeight: 'bold' },
          encoding: { x, y, color, text: { field: 'text' }, description },
        },
      );
    }
  }
  const ringed = shown
    .filter((p) => p.best)
    .map((p) => ({ ...p, description: `best at ${formatPercent(p.sparsity, 0)}: ${p.who} ${p.text}` }));
  layers.push({
    data: { values: ringed },
    mark: {
      type: 'point',
      shape: 'circle',
      filled: false,
      size: 420,
      strokeWidth: 2.5,
      color: '#111',
      opacity: 1,
    },
    encoding: { x, y, description },
  });
  if (denseValue !== undefined) {
    layers.push({
      data: { values: [{ method: 'dense', y: denseValue }] },
      mark: { type: 'rule', strokeDash: [6, 4], color: '#555', strokeWidth: 1.5 },
      encoding: { y },
    });
  }
  const notes = [
    `○ best method at each sparsity (${options.better} is better)${denseValue !== undefined ? '; dashed: the dense network' : ''}`,
    ...(offScale.length > 0
      ? [
          `${[...new Set(offScale.map((p) => p.method))].join(', ')}: ▼▲ off the axis (value written), which is kept to the range of the other methods`,
        ]
      : []),
  ];
  return {
    name,
    title,
    spec: {
      width: WIDTH,
      height: HEIGHT,
      title: { text: title, subtitle: notes },
      config: CONFIG,
      layer: layers,
    } as TopLevelSpec,
  };
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
      config: CONFIG,
      data: { values },
      mark: { type: 'line', point: true, strokeWidth: 2 },
      encoding: {
        x: sparsityAxis(values.map((v) => v.sparsity)),
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
      width: WIDTH / 2 - 60,
      height: HEIGHT,
    } as TopLevelSpec,
  };
}

/** What the accuracy and loss charts say they were measured on. */
function evaluatedText(on: EvaluatedOn | undefined): { adjective: string; suffix: string } {
  if (on === undefined) return { adjective: 'held-out', suffix: '' };
  return on.heldOut
    ? { adjective: 'held-out', suffix: ` (${on.name})` }
    : { adjective: 'calibration', suffix: ' (no held-out data: measured on the calibration samples)' };
}

/**
 * The charts that the rows have data for, in report order: what a user cares about first
 * (accuracy, loss), then EC's own objective (the output error), then where the weights went.
 */
export function buildCharts(rows: readonly SweepRow[], options: ChartOptions = {}): Chart[] {
  if (rows.length === 0) return [];
  const classes = taskOf(rows[0]) === 'classes';
  const { adjective, suffix } = evaluatedText(options.evaluatedOn);
  const charts = [
    classes
      ? metricChart(
          rows,
          'accuracy',
          `Accuracy on the ${adjective} data vs sparsity${suffix}`,
          `${adjective} accuracy`,
          (row) => row.accuracy,
          { better: 'higher', percent: true, dense: true },
        )
      : undefined,
    metricChart(
      rows,
      'test-loss',
      `Loss on the ${adjective} data vs sparsity${suffix}`,
      `${adjective} ${classes ? 'cross-entropy' : 'MSE'}`,
      (row) => row.testLoss,
      { better: 'lower', dense: true },
    ),
    metricChart(
      rows,
      'output-error',
      'Output error vs sparsity (against the dense network: what EC minimises)',
      'mean squared output change',
      (row) => row.outputMse,
      { better: 'lower' },
    ),
    layerSparsityChart(rows, options.layerShapes),
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
  options: ChartOptions = {},
): Promise<RenderedChart[]> {
  const charts = buildCharts(rows, options);
  return Promise.all(charts.map(async (chart) => ({ ...chart, svg: await renderSvg(chart.spec) })));
}
