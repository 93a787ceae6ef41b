import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32, inflateSync } from 'node:zlib';
import type { SweepRow } from '../../src/pipeline/sweep.js';
import { buildCharts, type RenderedChart, renderCharts } from '../../src/report/charts.js';
import { reportHtml } from '../../src/report/html.js';
import { maskComparison } from '../../src/report/masks.js';
import { encodeGreyPng } from '../../src/report/png.js';
import { resultsCsv, resultsJson } from '../../src/report/results.js';
import {
  formatBest,
  formatNumber,
  formatTable,
  markdownTable,
  tablePrinter,
} from '../../src/report/table.js';
import { classificationRows, INFO, METHODS, regressionRows, SPARSITIES } from './rows.js';

/** Every element of `tag` in an SVG string, as attribute maps (vega writes plain double-quoted attributes). */
function elements(svg: string, tag: string): Record<string, string>[] {
  return [...svg.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'g'))].map((m) =>
    Object.fromEntries([...m[1].matchAll(/([\w:-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]])),
  );
}

/** The marks vega drew for one series: its points (symbols) and its line. */
function seriesMarks(svg: string, method: string) {
  const marks = elements(svg, 'path').filter((p) =>
    new RegExp(`(^|; )method: ${method}(;|$)`).test(p['aria-label'] ?? ''),
  );
  return {
    points: marks.filter((p) => p['aria-roledescription'] === 'point' && p.d),
    lines: marks.filter(
      (p) => p['aria-roledescription'] === 'line mark' && /^M[\d.-]+,[\d.-]+L/.test(p.d ?? ''),
    ),
  };
}

function yAxisLabel(svg: string): string {
  return elements(svg, 'g').find((g) => g['aria-label']?.startsWith('Y-axis'))!['aria-label'];
}

describe('charts', () => {
  let charts: RenderedChart[];
  const chart = (name: string) => charts.find((c) => c.name === name)!;

  it('renders one chart per measure, each with a line and a point per sparsity for every method', async () => {
    charts = await renderCharts(classificationRows(), INFO);
    assert.deepEqual(
      charts.map((c) => c.name),
      ['accuracy', 'test-loss', 'output-error', 'layer-sparsity'],
    );
    for (const name of ['accuracy', 'test-loss', 'output-error']) {
      const { svg } = chart(name);
      assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      for (const method of METHODS) {
        const { points, lines } = seriesMarks(svg, method);
        // random: only the mean over seeds is drawn, not each seed
        assert.equal(points.length, SPARSITIES.length, `${name}: points of ${method}`);
        assert.equal(lines.length, 1, `${name}: line of ${method}`);
      }
      assert.equal(seriesMarks(svg, 'dense').points.length, 0, 'the dense network is no series');
    }
  });

  it('draws the dense network as a reference rule, and uses log scales where values span decades', () => {
    const rules = elements(chart('test-loss').svg, 'line').filter(
      (l) => l['aria-roledescription'] === 'rule mark',
    );
    assert.equal(rules.length, 1);
    assert.match(rules[0]['aria-label'], /: 0\.3$/); // the dense test loss
    // output MSE spans 1e-4 … 0.95: log; test loss 0.3 … 4.1 and accuracy: linear
    assert.match(yAxisLabel(chart('output-error').svg), /for a log scale/);
    assert.match(yAxisLabel(chart('test-loss').svg), /for a linear scale/);
    assert.match(yAxisLabel(chart('accuracy').svg), /for a linear scale/);
  });

  it('shows the per-layer sparsity of the global ranking for EC and magnitude', () => {
    const paths = elements(chart('layer-sparsity').svg, 'path').filter(
      (p) => p['aria-roledescription'] === 'point',
    );
    for (const method of ['ec', 'magnitude']) {
      for (const layer of ['layer 0 (10×784)', 'layer 1 (5×10)', 'layer 2 (2×5)']) {
        const points = paths.filter((p) => p['aria-label'].includes(`layer: ${layer}; method: ${method}`));
        assert.equal(points.length, SPARSITIES.length, `${method} ${layer}`);
      }
    }
    assert.equal(paths.filter((p) => p['aria-label'].includes('method: random')).length, 0);
  });

  it('tells variants (scope, fine-tuning) apart by dash and point shape', async () => {
    const rows = classificationRows();
    const layer = rows
      .filter((r) => r.method === 'ec')
      .map((r) => ({ ...r, scope: 'layer' as const, testLoss: r.testLoss + 0.1 }));
    const [testLoss] = await renderCharts([...rows, ...layer]);
    const { lines, points } = seriesMarks(testLoss.svg, 'ec');
    assert.equal(lines.length, 2);
    assert.equal(points.length, 2 * SPARSITIES.length);
    assert.equal(
      new Set(lines.map((line) => line['stroke-dasharray'] ?? 'solid')).size,
      2,
      'two dash patterns',
    );
    assert.equal(new Set(points.map((point) => point.d)).size, 2, 'two point shapes');
    assert.equal(
      points.filter((point) => point['aria-label'].includes('variant: layer')).length,
      SPARSITIES.length,
    );
  });

  it('plots the test MSE for regression and has no accuracy chart', () => {
    const names = buildCharts(regressionRows()).map((c) => c.name);
    assert.deepEqual(names, ['test-loss', 'output-error', 'layer-sparsity']);
    assert.equal(buildCharts(regressionRows())[0].title, 'Loss on the held-out data vs sparsity');
    assert.match(JSON.stringify(buildCharts(regressionRows())[0].spec), /"title":"held-out MSE"/);
  });

  it('rings the best method at each sparsity, with its value, in every measure', () => {
    const rows = classificationRows();
    const measures = [
      ['accuracy', (r: SweepRow) => r.accuracy!, 'higher', (v: number) => `${(100 * v).toFixed(1)}%`],
      ['test-loss', (r: SweepRow) => r.testLoss, 'lower', formatNumber],
      ['output-error', (r: SweepRow) => r.outputMse, 'lower', formatNumber],
    ] as const;
    for (const [name, value, better, format] of measures) {
      const rings = elements(chart(name).svg, 'path')
        .map((p) => p['aria-label'] ?? '')
        .filter((label) => label.startsWith('best at'));
      // by hand from the rows: the plotted rows (no dense, random as its mean) at each sparsity
      const expected = SPARSITIES.map((s) => {
        const candidates = rows.filter(
          (r) => r.sparsity === s && r.method !== 'dense' && r.seed === undefined,
        );
        const top = candidates.reduce((a, b) =>
          (better === 'higher' ? value(b) > value(a) : value(b) < value(a)) ? b : a,
        );
        return `best at ${Math.round(100 * s)}%: ${top.method} ${format(value(top))}`;
      });
      assert.deepEqual(rings, expected, name);
    }
  });

  it("keeps the random baseline from squashing the axis: its points outside the other methods' range sit on the edge, valued", () => {
    const rows = classificationRows();
    const svg = chart('accuracy').svg;
    const axis = yAxisLabel(svg).match(/values from ([\d.]+)% to ([\d.]+)%/)!;
    const others = rows
      .filter((r) => r.method !== 'random' && r.accuracy !== undefined)
      .map((r) => r.accuracy!);
    const randomMeans = rows.filter((r) => r.method === 'random' && r.seeds !== undefined);
    // the axis spans the other methods (and the dense network), not random's lowest mean
    assert.ok(Number(axis[1]) / 100 <= Math.min(...others), `axis from ${axis[1]}%`);
    assert.ok(Number(axis[2]) / 100 >= Math.max(...others), `axis to ${axis[2]}%`);
    const below = randomMeans.filter((r) => r.accuracy! < Number(axis[1]) / 100);
    assert.ok(below.length > 0, 'random falls below the axis somewhere');
    const labels = elements(svg, 'text').map((t) => t['aria-label'] ?? '');
    for (const r of below) {
      const text = `${(100 * r.accuracy!).toFixed(1)}%`;
      assert.ok(labels.includes(`value label: random ${text}`), `random at ${r.sparsity}: its value written`);
      const point = elements(svg, 'path').find((p) =>
        (p['aria-label'] ?? '').startsWith(
          `method: random; variant: global; sparsity: ${Math.round(100 * r.sparsity)}%;`,
        ),
      );
      assert.match(point?.['aria-label'] ?? '', new RegExp(`${text} \\(off the axis, below\\)$`));
    }
    assert.match(
      JSON.stringify(chart('accuracy').spec),
      /off the axis \(value written\)/,
      'the subtitle says so',
    );
  });

  it('keeps the whole range when random is the only method', async () => {
    const rows = classificationRows().filter((r) => r.method === 'dense' || r.method === 'random');
    const [accuracy] = await renderCharts(rows);
    assert.doesNotMatch(accuracy.svg, /off the axis/);
    assert.equal(
      elements(accuracy.svg, 'text').filter((t) => t['aria-label']?.startsWith('value label')).length,
      0,
    );
  });

  it('says in the titles whether accuracy and loss are held out', () => {
    const rows = classificationRows();
    const held = buildCharts(rows, { evaluatedOn: { name: 'x_test.npy', heldOut: true } });
    assert.equal(held[0].title, 'Accuracy on the held-out data vs sparsity (x_test.npy)');
    const calib = buildCharts(rows, { evaluatedOn: { name: 'calib.npy', heldOut: false } });
    assert.match(calib[0].title, /no held-out data: measured on the calibration samples/);
    assert.match(calib[1].title, /^Loss on the calibration data/);
  });

  it('builds nothing from no rows', () => {
    assert.deepEqual(buildCharts([]), []);
  });
});

describe('report.html', () => {
  it('is self-contained: no external URL, no script, images as data: URIs', async () => {
    const rows = classificationRows();
    const html = reportHtml({ rows, info: INFO, charts: await renderCharts(rows, INFO) });
    const urls = [...html.matchAll(/\b(?:https?:)?\/\/[^\s"'<>)]+/g)].map((m) => m[0]);
    assert.ok(urls.length > 0);
    for (const url of urls)
      assert.match(url, /^http:\/\/www\.w3\.org\/(2000\/svg|1999\/xlink)$/, `unexpected URL ${url}`);
    for (const m of html.matchAll(/\b(xmlns(?::\w+)?)="(https?:[^"]*)"/g))
      assert.ok(m[1].startsWith('xmlns'));
    assert.doesNotMatch(html, /<script|<link|<iframe|@import|url\((?!#)/i);
    for (const [, src] of html.matchAll(/\bsrc="([^"]*)"/g))
      assert.match(src, /^data:image\/png;base64,[A-Za-z0-9+/]+=*$/);
    assert.equal((html.match(/<svg\b/g) ?? []).length, 4);
    assert.equal((html.match(/<img\b/g) ?? []).length, 4, 'tiles and heat map for ec and magnitude');
  });

  it('describes the study, tables every row, and escapes text', async () => {
    const rows = classificationRows();
    const html = reportHtml({ rows, info: INFO, charts: [] });
    assert.match(html, /<title>Study &#60;of&#62; &#34;EC&#34; &#38; friends<\/title>/);
    assert.match(html, /<dt>Model<\/dt><dd>784-10-… relu \(test\)<\/dd>/);
    assert.match(html, /<dt>Calibration<\/dt><dd>calibration: 1,000 samples<\/dd>/);
    assert.ok(
      html.includes(
        '<pre><code>ecprune sweep --dataset mnist --methods ec,magnitude -o &#39;my report&#39;</code></pre>',
      ),
    );
    assert.equal((html.match(/<tr class="[^"]*">/g) ?? []).length, rows.length);
    assert.equal((html.match(/<tr class="seed">/g) ?? []).length, 9);
    assert.match(html, /First-layer masks at 90% sparsity/);
  });

  it('puts the charts first, then the best method per sparsity, then every row with the best cells starred', async () => {
    const rows = classificationRows();
    const html = reportHtml({ rows, info: INFO, charts: await renderCharts(rows, INFO) });
    const at = (text: string) => html.indexOf(text);
    assert.ok(at('<figure class="chart"') > 0, 'charts');
    assert.ok(at('<figure class="chart"') < at('Best method at each sparsity'), 'charts before the best');
    assert.ok(at('Best method at each sparsity') < at('<table>'), 'the best before the full table');
    // the rows' numbers make ec best in every measure at every sparsity: 3 cells per sparsity
    const starred = [
      ...html.matchAll(
        /<tr class="([^"]*)"><td class="left">([^<]*)<\/td><td class="left">global<\/td><td class="right">([^<]*)<\/td>(.*?)<\/tr>/g,
      ),
    ]
      .filter((m) => m[4].includes(' best"'))
      .map((m) => `${m[2]} ${m[3]} ${(m[4].match(/ best"/g) ?? []).length}`);
    assert.deepEqual(starred, ['ec 50.0% 3', 'ec 90.0% 3', 'ec 95.0% 3']);
    const best = html.slice(at('<table class="best-of">'), at('</table>'));
    assert.equal((best.match(/<tr><td class="right">/g) ?? []).length, SPARSITIES.length);
    assert.match(best, /<td class="right">90%<\/td><td><b>ec<\/b> 0\.3<\/td><td><b>ec<\/b> 95\.00%<\/td>/);
    assert.match(html, /measured on the held-out test data \(test set: 2,000 samples\)/);
  });

  it('warns at the top when the test data is the calibration data', () => {
    const html = reportHtml({ rows: classificationRows(), info: { ...INFO, heldOut: false }, charts: [] });
    assert.match(
      html,
      /<p class="warning">The test data is the calibration data: accuracy and loss are not held out/,
    );
    assert.ok(html.indexOf('class="warning"') < html.indexOf('<h2>'), 'before the first section');
  });

  it('has no mask section for inputs that are not images', () => {
    const html = reportHtml({ rows: classificationRows(), info: { ...INFO, features: 785 }, charts: [] });
    assert.doesNotMatch(html, /First-layer masks|<img/);
  });
});

describe('first-layer masks', () => {
  it('compares EC and magnitude at the highest sparsity up to 90 %, counting kept weights, empty neurons, unused pixels', () => {
    const comparison = maskComparison(classificationRows(), 784)!;
    assert.equal(comparison.sparsity, 0.9);
    assert.equal(comparison.side, 28);
    const facts = comparison.panels.map(({ method, neurons, kept, emptyNeurons, unusedPixels }) => ({
      method,
      neurons,
      kept,
      emptyNeurons,
      unusedPixels,
    }));
    assert.deepEqual(facts, [
      { method: 'ec', neurons: 10, kept: 10, emptyNeurons: 9, unusedPixels: 774 },
      { method: 'magnitude', neurons: 10, kept: 10, emptyNeurons: 0, unusedPixels: 783 },
    ]);
  });

  it('encodes valid greyscale PNGs (checked with zlib: CRCs and pixels)', () => {
    const grey = Uint8Array.from({ length: 5 * 3 }, (_, i) => i * 17);
    const png = Buffer.from(encodeGreyPng(5, 3, grey));
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const chunks: Record<string, Buffer> = {};
    for (let offset = 8; offset < png.length; ) {
      const length = png.readUInt32BE(offset);
      const type = png.toString('latin1', offset + 4, offset + 8);
      const data = png.subarray(offset + 8, offset + 8 + length);
      assert.equal(
        png.readUInt32BE(offset + 8 + length),
        crc32(png.subarray(offset + 4, offset + 8 + length)),
        `CRC of ${type}`,
      );
      chunks[type] = data;
      offset += 12 + length;
    }
    assert.deepEqual(Object.keys(chunks), ['IHDR', 'IDAT', 'IEND']);
    assert.deepEqual(
      [chunks.IHDR.readUInt32BE(0), chunks.IHDR.readUInt32BE(4), chunks.IHDR[8], chunks.IHDR[9]],
      [5, 3, 8, 0],
    );
    const raw = inflateSync(chunks.IDAT);
    for (let y = 0; y < 3; y++) {
      assert.equal(raw[y * 6], 0, 'filter type none');
      assert.deepEqual([...raw.subarray(y * 6 + 1, y * 6 + 6)], [...grey.subarray(y * 5, y * 5 + 5)]);
    }
  });
});

describe('results files', () => {
  it('writes results.csv with a fixed column order, one line per row', () => {
    const rows = classificationRows();
    const lines = resultsCsv(rows).trimEnd().split('\n');
    assert.equal(
      lines[0],
      'method,scope,sparsity,finetune_epochs,seed,seeds,test_loss,accuracy,test_mse,output_mse,nonzero,ms,layer0_sparsity,layer1_sparsity,layer2_sparsity',
    );
    assert.equal(lines.length, 1 + rows.length);
    const cells = lines.map((line) => line.split(','));
    assert.ok(cells.every((c) => c.length === 15));
    const mean = cells.find((c) => c[0] === 'random' && c[2] === '0.9' && c[5] === '3')!;
    assert.equal(mean[4], '', 'the mean over seeds has no seed');
    const ec = rows.find((r) => r.method === 'ec' && r.sparsity === 0.95)!;
    const ecLine = cells.find((c) => c[0] === 'ec' && c[2] === '0.95')!;
    assert.deepEqual(
      [ecLine[6], ecLine[7], ecLine[8], ecLine[9], ecLine[12]].map((v) => (v === '' ? undefined : Number(v))),
      [ec.testLoss, ec.accuracy, undefined, ec.outputMse, ec.layerSparsity[0]],
    );
  });

  it('writes results.json with the description and the rows, without the masks', () => {
    const rows = classificationRows();
    const json = JSON.parse(resultsJson(rows, INFO));
    assert.equal(json.title, INFO.title);
    assert.equal(json.command, INFO.command);
    assert.equal(json.rows.length, rows.length);
    assert.ok(json.rows.every((r: object) => !('keptFirstLayer' in r)));
    assert.deepEqual(json.rows[1].layerSparsity, rows[1].layerSparsity);
  });
});

describe('table', () => {
  it('formats numbers in 4 significant digits or exponent form', () => {
    assert.deepEqual([0, 0.30649, 12.2345, 0.00012345, 123456, -2.5, undefined].map(formatNumber), [
      '0',
      '0.3065',
      '12.23',
      '1.23e-4',
      '1.23e+5',
      '-2.5',
      '',
    ]);
  });

  it('prints a fixed-width terminal table: every line as wide as the header', () => {
    const lines = formatTable(classificationRows()).split('\n');
    assert.match(
      lines[0],
      /^method\s+scope\s+sparsity\s+ft\s+test loss\s+accuracy\s+output MSE\s+nonzero\s+pruned per layer %\s+ms$/,
    );
    assert.match(lines[1], /^-+( +-+)+$/);
    assert.ok(lines.every((line) => line.length === lines[0].length));
    const ec = lines.find((line) => line.startsWith('ec ') && line.includes('90.0%'))!;
    assert.match(ec, /^ec\s+global\s+90\.0%\s+0\s+0\.3\s+95\.00%\s+9e-5\s+26,620\s+93\/70\/45\s+13$/);
    assert.match(lines.find((line) => line.startsWith('random (mean of 3)'))!, /random \(mean of 3\)/);
    assert.match(lines.find((line) => line.startsWith('random (seed 2)'))!, /random \(seed 2\)/);
  });

  it('names the best method of each measure at each sparsity, ties and variants included', () => {
    const rows = classificationRows();
    // ec-nocomp ties ec's accuracy at 90 %; a layer-scope magnitude has the lowest test loss everywhere
    const tied = rows.map((r) =>
      r.method === 'ec-nocomp' && r.sparsity === 0.9 ? { ...r, accuracy: 0.95 } : r,
    );
    const layer = rows
      .filter((r) => r.method === 'magnitude')
      .map((r) => ({ ...r, scope: 'layer' as const, testLoss: 0.1 }));
    assert.deepEqual(formatBest([...tied, ...layer]).split('\n'), [
      'best at 50%: test loss magnitude (layer) 0.1; test accuracy ec (global) 95.00%; output MSE ec (global) 5e-5',
      'best at 90%: test loss magnitude (layer) 0.1; test accuracy ec (global), ec-nocomp (global) 95.00%; output MSE ec (global) 9e-5',
      'best at 95%: test loss magnitude (layer) 0.1; test accuracy ec (global) 95.00%; output MSE ec (global) 9.5e-5',
    ]);
    assert.equal(
      formatBest(regressionRows()).split('\n')[0],
      'best at 50%: test MSE ec 0.3; output MSE ec 5e-5',
    );
  });

  it('prints the header once before the first streamed row', () => {
    const out: string[] = [];
    const print = tablePrinter((line) => out.push(line));
    for (const row of classificationRows().slice(0, 3)) print(row);
    assert.equal(out.length, 4); // header + rule (one string), then 3 rows
    assert.match(out[0], /^method.*\n-+/);
    assert.match(out[1], /^dense /);
  });

  it('writes markdown with right-aligned numbers and the best in bold; for regression the test loss is one test MSE column', () => {
    const lines = markdownTable(regressionRows()).split('\n');
    assert.equal(
      lines[0],
      '| method | scope | sparsity | ft | test MSE | output MSE | nonzero | pruned per layer % | ms |',
    );
    assert.equal(lines[1], '| :--- | :--- | ---: | ---: | ---: | ---: | ---: | :--- | ---: |');
    assert.match(
      lines[3],
      /^\| ec \| global \| 50\.0% \| 0 \| \*\*0\.3\*\* \| \*\*5e-5\*\* \| 133,100 \| 53\/30\/25 \| 13 \|$/,
    );
    // the best of each measure at each sparsity in bold: ec's test MSE and output MSE at every sparsity
    assert.equal(lines.join('\n').match(/\*\*/g)?.length, 2 * 2 * SPARSITIES.length);
    assert.equal(lines.length, 2 + regressionRows().length);
    assert.ok(lines.every((line) => line.split(' | ').length === 9));
  });
});
