/**
 * report.html in a real browser: Debian's headless Chromium, driven by playwright-core (no browser
 * download). The page must load from a file: URL with no errors and no network request, every
 * chart must show marks with a visible size, and the mask images must decode.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { writeReportFolder } from '../../src/node/report-files.js';
import { launchChromium, skipWithoutChromium } from '../helpers/chromium.js';
import { classificationRows, INFO, METHODS, SPARSITIES } from './rows.js';

const skip = skipWithoutChromium;

describe('report.html in headless Chromium', { skip }, () => {
  let dir: string;
  let report: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ecprune-browser-'));
    report = await writeReportFolder(path.join(dir, 'report'), classificationRows(), INFO);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('opens offline without errors, draws visible marks in every chart, and decodes the mask images', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      const requests: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      page.on('request', (request) => requests.push(request.url()));
      const url = pathToFileURL(report).href;
      await page.goto(url, { waitUntil: 'load' });

      const charts = await page.evaluate(() =>
        [...document.querySelectorAll('figure.chart')].map((figure) => {
          // (no named helper functions in here: tsx would wrap them in a __name() the page lacks)
          const [points, lines] = ['point', 'line mark'].map((role) =>
            [...figure.querySelectorAll(`svg [aria-roledescription="${role}"]`)].map((mark) =>
              mark.getBoundingClientRect(),
            ),
          );
          // a flat line has a box of height 0 (the stroke is not counted)
          return {
            id: figure.id,
            marks: points.length + lines.length,
            visible:
              points.filter((box) => box.width > 0 && box.height > 0).length +
              lines.filter((box) => box.width > 0 || box.height > 0).length,
            svg: figure.querySelector('svg')!.getBoundingClientRect().width,
          };
        }),
      );
      assert.deepEqual(
        charts.map((c) => c.id),
        ['chart-accuracy', 'chart-test-loss', 'chart-output-error', 'chart-layer-sparsity'],
      );
      for (const chart of charts) {
        assert.ok(chart.svg > 600, `${chart.id} spans the page (${chart.svg} px)`);
        assert.ok(chart.marks > 0, `${chart.id} has marks`);
        assert.equal(chart.visible, chart.marks, `${chart.id}: every point and line has a visible box`);
      }

      // every method's accuracy points, drawn inside the plot (random's off-axis ones on its edge),
      // and a ring on the best at each sparsity
      const accuracy = await page.evaluate(() => {
        const svg = document.querySelector('#chart-accuracy svg')!;
        // the plot area: the x axis' domain line spans its width, the y axis' its height
        const [xDomain, yDomain] = [...svg.querySelectorAll('.role-axis-domain')].map((d) =>
          d.getBoundingClientRect(),
        );
        const plot = { left: xDomain.left, right: xDomain.right, top: yDomain.top, bottom: yDomain.bottom };
        return [...svg.querySelectorAll('[aria-roledescription="point"]')].map((mark) => {
          const box = mark.getBoundingClientRect();
          const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
          return {
            label: mark.getAttribute('aria-label') ?? '',
            visible: box.width > 2 && box.height > 2,
            inside:
              cx >= plot.left - 1 && cx <= plot.right + 1 && cy >= plot.top - 1 && cy <= plot.bottom + 1,
          };
        });
      });
      for (const method of METHODS) {
        const own = accuracy.filter((m) => m.label.startsWith(`method: ${method};`));
        assert.equal(own.length, SPARSITIES.length, `accuracy points of ${method}`);
        assert.ok(
          own.every((m) => m.visible && m.inside),
          `${method}: every accuracy point visible inside the plot`,
        );
      }
      const rings = accuracy.filter((m) => m.label.startsWith('best at'));
      assert.equal(rings.length, SPARSITIES.length, 'a best ring per sparsity');
      assert.ok(
        rings.every((m) => m.visible && m.inside),
        'the rings are visible',
      );

      const images = await page.evaluate(() =>
        [...document.querySelectorAll('.masks img')].map((img) => ({
          loaded: (img as HTMLImageElement).complete,
          width: (img as HTMLImageElement).naturalWidth,
          height: (img as HTMLImageElement).naturalHeight,
        })),
      );
      // ec and magnitude: a tile grid of 10 neurons (10 x 29 + 1 by 29 + 1 pixels) and a 28 x 28 heat map each
      assert.deepEqual(images, [
        { loaded: true, width: 291, height: 30 },
        { loaded: true, width: 28, height: 28 },
        { loaded: true, width: 291, height: 30 },
        { loaded: true, width: 28, height: 28 },
      ]);
      assert.deepEqual(problems, []);
      assert.deepEqual(
        requests.filter((r) => r !== url && !r.startsWith('data:')),
        [],
        'no request leaves the page',
      );
    } finally {
      await browser.close();
    }
  });
});
