/**
 * The demo page in a real browser: built into a temporary folder, served on loopback, driven in
 * Debian's headless Chromium by playwright-core (no browser download). Load the demo model, prune
 * with ec at 0.8, see the chart, download the model and check it with the CLI's `inspect`; then the
 * same for the demo network uploaded as TF.js files (model.json + shard), which comes back zipped.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { unzipSync } from 'fflate';
import type { Page } from 'playwright-core';
import { buildWeb, serveStatic } from '../../scripts/build-web.js';
import { readOnnx } from '../../src/io/onnx.js';
import { TFJS_SHARD_NAME, writeTfjs } from '../../src/io/tfjs.js';
import { cli } from '../cli/run.js';
import { launchChromium, skipWithoutChromium } from '../helpers/chromium.js';

const DEMO_MODEL = new URL('../../web/demo/model.onnx', import.meta.url);
const skip = skipWithoutChromium;

/** Chooses the method and sparsity, presses Prune, checks the chart's marks, downloads the model; returns its file. */
async function pruneAndDownload(page: Page, method: string, sparsity: number, dir: string): Promise<string> {
  await page.selectOption('#method', method);
  await page.fill('#sparsity', String(sparsity));
  await page.getByRole('button', { name: 'Prune' }).click();
  await page.locator('#chart svg').waitFor({ state: 'visible', timeout: 30_000 });
  // (no named helper functions in here: tsx would wrap them in a __name() the page lacks)
  const marks = await page.evaluate(() =>
    [
      ...document.querySelectorAll(
        '#chart svg [aria-roledescription="line mark"], #chart svg [aria-roledescription="point"]',
      ),
    ].map((mark) => {
      const box = mark.getBoundingClientRect();
      return { label: mark.getAttribute('aria-label') ?? '', visible: box.width > 0 || box.height > 0 };
    }),
  );
  // vega writes each mark's series into its aria-label (`…; method: ec`): a line and 10 points (0.5 … 0.95) each
  for (const series of [method, 'magnitude']) {
    const own = marks.filter((mark) => new RegExp(`method: ${series}(;|$)`).test(mark.label));
    assert.ok(own.length >= 10, `${series} has its points (${own.length} marks)`);
  }
  assert.ok(
    marks.every((mark) => mark.visible),
    'every mark has a visible box',
  );
  assert.match(
    (await page.locator('#summary').textContent()) ?? '',
    new RegExp(`${method} at sparsity ${sparsity}`),
  );
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download pruned model' }).click(),
  ]);
  const file = path.join(dir, download.suggestedFilename());
  await download.saveAs(file);
  return file;
}

/** `ecprune inspect --json` counts floor(s·n + 0.5) zero weights. */
async function assertSparsity(file: string, sparsity: number): Promise<void> {
  const { code, stdout, stderr } = await cli('inspect', file, '--json');
  assert.equal(code, 0, stderr);
  const summary = JSON.parse(stdout);
  assert.deepEqual(
    summary.layers.map((layer: { shape: number[] }) => layer.shape),
    [
      [64, 196],
      [10, 64],
    ],
  );
  assert.equal(summary.weights - summary.nonzero, Math.floor(sparsity * summary.weights + 0.5));
}

describe('the browser demo in headless Chromium', { skip, timeout: 60_000 }, () => {
  let dir: string;
  let server: Server;
  let url: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ecprune-web-'));
    await buildWeb(path.join(dir, 'site'));
    ({ server, url } = await serveStatic(path.join(dir, 'site')));
  });
  after(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prunes the demo model (ec, 0.8) and a TF.js upload (magnitude-comp, 0.9), draws the charts, downloads both', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ acceptDownloads: true });
      const problems: string[] = [];
      const elsewhere: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
      page.on('response', (response) => {
        if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
      });
      page.on('request', (request) => {
        if (!/^(blob|data):/.test(request.url()) && !request.url().startsWith(url))
          elsewhere.push(request.url());
      });
      await page.goto(url, { waitUntil: 'load' });

      await page.getByRole('button', { name: 'Load demo model' }).click();
      await page.locator('#model-info', { hasText: '196-64-10' }).waitFor();
      await page.locator('#calib-info', { hasText: '512 samples' }).waitFor();
      const onnx = await pruneAndDownload(page, 'ec', 0.8, dir);
      assert.equal(path.basename(onnx), 'model-pruned.onnx');
      await assertSparsity(onnx, 0.8);
      assert.match(
        (await page.locator('#backend').textContent()) ?? '',
        /onnxruntime-web/,
        'the wasm GEMM started',
      );

      // the demo network as a TF.js model.json + shard, picked together; it comes back as a zip of both
      const { modelJson, shards } = writeTfjs(readOnnx(readFileSync(DEMO_MODEL)).graph);
      await page.setInputFiles('#model-files', [
        { name: 'model.json', mimeType: 'application/json', buffer: Buffer.from(modelJson) },
        {
          name: TFJS_SHARD_NAME,
          mimeType: 'application/octet-stream',
          buffer: Buffer.from(shards.get(TFJS_SHARD_NAME)!),
        },
      ]);
      await page.locator('#model-info', { hasText: 'model.json: TF.js, 196-64-10' }).waitFor();
      const zip = await pruneAndDownload(page, 'magnitude-comp', 0.9, dir);
      assert.equal(path.basename(zip), 'model-pruned-tfjs.zip');
      const unzipped = path.join(dir, 'tfjs');
      mkdirSync(unzipped);
      for (const [name, bytes] of Object.entries(unzipSync(readFileSync(zip))))
        writeFileSync(path.join(unzipped, name), bytes);
      await assertSparsity(path.join(unzipped, 'model.json'), 0.9);

      assert.deepEqual(problems, []);
      assert.deepEqual(elsewhere, [], 'no request leaves the demo server');
    } finally {
      await browser.close();
    }
  });
});
