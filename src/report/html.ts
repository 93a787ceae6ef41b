/**
 * report.html: one self-contained page (inline CSS, inline SVG charts, masks as data: URIs, no
 * script, no external URL), readable offline and printable.
 */
import type { SweepRow } from '../pipeline/sweep.js';
import { VERSION } from '../version.js';
import type { RenderedChart } from './charts.js';
import { type MaskComparison, maskComparison } from './masks.js';
import type { ReportInfo } from './results.js';
import { bestCells, bestPerSparsity, formatPercent, tableColumns, taskOf } from './table.js';

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 .4em; }
h2 { font-size: 1.2em; margin: 1.6em 0 .5em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
dl.about { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: 0; }
dl.about dt { font-weight: 600; }
dl.about dd { margin: 0; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font: 13px/1.3 ui-monospace, "DejaVu Sans Mono", monospace; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; white-space: nowrap; }
th { text-align: left; border-bottom: 2px solid #ccc; }
td.right, th.right { text-align: right; }
tr.dense td { background: #f0f4fa; font-weight: 600; }
tr.seed td { color: #888; }
.charts { display: flex; flex-direction: column; gap: 28px; }
figure { margin: 0; }
figure.chart svg { width: 100%; height: auto; }
td.best { font-weight: 700; background: #fff4c2; }
td.best::after { content: " ★"; }
table.best-of td, table.best-of th { font: 14px/1.4 system-ui, "DejaVu Sans", sans-serif; }
p.warning { background: #fff0f0; border-left: 4px solid #c33; padding: 6px 10px; }
.masks { display: flex; flex-wrap: wrap; gap: 24px; }
.masks img { image-rendering: pixelated; border: 1px solid #ccc; }
.masks .tiles { width: 100%; max-width: 560px; }
.masks .heatmap { width: 168px; }
figcaption { font-size: .9em; color: #555; margin-top: .3em; }
pre { background: #f4f4f4; padding: 10px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
footer { margin-top: 2em; font-size: .85em; color: #777; }
`;

/**
 * Makes the ids inside one inline SVG unique in the page (several charts may define `clip1`):
 * prefixes every `id="…"` and its `url(#…)` / `href="#…"` references.
 */
function scopeSvgIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .replace(/href="#([^"]+)"/g, `href="#${prefix}-$1"`);
}

function resultsTable(rows: readonly SweepRow[]): string {
  if (rows.length === 0) return '<p>No results.</p>';
  const columns = tableColumns(taskOf(rows[0]), rows[0].layerSparsity.length);
  const best = bestCells(rows, columns);
  const head = columns.map((c) => `<th class="${c.align}">${escapeHtml(c.header)}</th>`).join('');
  const body = rows
    .map((row) => {
      const kind = row.method === 'dense' ? 'dense' : row.seed !== undefined ? 'seed' : '';
      const cells = columns
        .map((c) => {
          const mark = best.get(c)?.has(row) ? ' best' : '';
          return `<td class="${c.align}${mark}">${escapeHtml(c.value(row))}</td>`;
        })
        .join('');
      return `<tr class="${kind}">${cells}</tr>`;
    })
    .join('\n');
  return `<div class="table-wrap"><table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody></table></div>`;
}

/** One line per sparsity: the best method(s) of each quality column, with the value. */
function bestTable(rows: readonly SweepRow[]): string {
  const lines = bestPerSparsity(rows);
  if (lines.length === 0) return '';
  const body = lines.map(
    ({ sparsity, best }) =>
      `<tr><td class="right">${formatPercent(sparsity, 0)}</td>${best
        .map((cell) =>
          cell ? `<td><b>${escapeHtml(cell.names)}</b> ${escapeHtml(cell.value)}</td>` : '<td></td>',
        )
        .join('')}</tr>`,
  );
  const head = lines[0].best.map((_, k) => `<th>best ${escapeHtml(lines[0].labels[k])}</th>`).join('');
  return `<div class="table-wrap"><table class="best-of"><thead><tr><th>sparsity</th>${head}</tr></thead><tbody>
${body.join('\n')}
</tbody></table></div>`;
}

function chartsSection(charts: readonly RenderedChart[]): string {
  return `<div class="charts">${charts
    .map(
      (chart) =>
        `<figure class="chart" id="chart-${chart.name}">${scopeSvgIds(chart.svg, chart.name)}<figcaption>${escapeHtml(chart.title)} (charts/${chart.name}.svg, .png)</figcaption></figure>`,
    )
    .join('\n')}</div>`;
}

function masksSection(comparison: MaskComparison): string {
  const { sparsity, side } = comparison;
  const panels = comparison.panels
    .map((panel) => {
      const facts =
        `${panel.kept.toLocaleString('en')} of ${(panel.neurons * side * side).toLocaleString('en')} weights kept; ` +
        `${panel.emptyNeurons} of ${panel.neurons} neurons without inputs; ${panel.unusedPixels} of ${side * side} pixels unused`;
      return `<figure><h3>${escapeHtml(panel.method)}</h3>
<img class="tiles" src="${panel.tiles}" alt="${escapeHtml(panel.method)}: kept first-layer weights of each neuron">
<img class="heatmap" src="${panel.heatmap}" alt="${escapeHtml(panel.method)}: neurons reading each pixel">
<figcaption>${escapeHtml(facts)}</figcaption></figure>`;
    })
    .join('\n');
  return `<h2>First-layer masks at ${formatPercent(sparsity, 0)} sparsity</h2>
<p>Each tile is one neuron of layer 0 (in neuron order, the same in both panels): a black pixel is an
input weight that is kept. The small image counts, per pixel, the neurons that still read it (darker:
more). EC removes weights on pixels that are (nearly) constant over the calibration set first, because
the neuron's bias absorbs them.</p>
<div class="masks">${panels}</div>`;
}

/** Whether accuracy and loss come from held-out data, said before any number. */
function heldOutNote(info: ReportInfo): string {
  return info.heldOut === false
    ? `<p class="warning">The test data is the calibration data: accuracy and loss are not held out, and favour the methods that fit the calibration samples (EC among them). Give a separate test set (${escapeHtml('--data/--labels')}) for numbers to trust.</p>`
    : `<p>Accuracy and loss are measured on the held-out test data (${escapeHtml(info.data)}), not on the calibration samples the methods were fitted to.</p>`;
}

export interface ReportPage {
  readonly rows: readonly SweepRow[];
  readonly info: ReportInfo;
  readonly charts: readonly RenderedChart[];
}

/** The whole page as one string. */
export function reportHtml({ rows, info, charts }: ReportPage): string {
  const masks = maskComparison(rows, info.features);
  const notes = (info.notes ?? []).map((note) => `<p>${escapeHtml(note)}</p>`).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(info.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>${escapeHtml(info.title)}</h1>
<dl class="about">
<dt>Model</dt><dd>${escapeHtml(info.model)}</dd>
<dt>Test data</dt><dd>${escapeHtml(info.data)}</dd>
<dt>Calibration</dt><dd>${escapeHtml(info.calibration)}</dd>
</dl>
${notes}
${heldOutNote(info)}
<h2>Charts</h2>
${chartsSection(charts)}
<h2>Best method at each sparsity</h2>
<p>Per sparsity, the method with the highest test accuracy and the lowest test loss on the test data
(${escapeHtml(info.data)}), and the lowest output error against the dense network (EC's objective).
Marked ★ in the table below and ringed in the charts.</p>
${bestTable(rows)}
<h2>All results</h2>
<p>Sparsity: the fraction of weights removed. Test loss: ${rows[0] && taskOf(rows[0]) === 'classes' ? 'cross-entropy' : 'mean squared error'} on the test set.
Output MSE: the mean squared change of the outputs against the dense network on the test set. ft: fine-tuning epochs.
Random runs are listed per seed (grey) and as their mean, which the charts show. ms: scoring, selection,
compensation and fine-tuning of the row (the calibration pass is shared and not counted).</p>
${resultsTable(rows)}
${masks ? masksSection(masks) : ''}
<h2>How to reproduce</h2>
<pre><code>${escapeHtml(info.command)}</code></pre>
<footer>Written by ecprune ${escapeHtml(VERSION)}. Results: results.json, results.csv.</footer>
</main>
</body>
</html>
`;
}
