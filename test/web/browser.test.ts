/**
 * The demo page in a real browser: built into a temporary folder, served on loopback, driven in
 * Debian's headless Chromium by playwright-core (no browser download). Load the demo model with its
 * held-out digits, prune with ec at 0.8, see the accuracy, loss and output-error charts with every
 * method's marks, download the model and check it with the CLI's `inspect`; the demo network
 * uploaded as TF.js files (model.json + shard) comes back zipped; and graph models of the producer
 * zoo (a residual MLP, BatchNorm, a softmax head, a CNN whose convolutions are a frozen prefix) are
 * pruned in the page and their downloads run in onnxruntime-node with the zeros in place.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { unzipSync } from 'fflate';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import type { Page } from 'playwright-core';
import { buildWeb, serveStatic } from '../../scripts/build-web.js';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { setDefaultGemm } from '../../src/gemm/default.js';
import { readNpy } from '../../src/io/npy.js';
import { readOnnx } from '../../src/io/onnx.js';
import { TFJS_SHARD_NAME, writeTfjsGraph } from '../../src/io/tfjs.js';
import { dataForModel, loadModel } from '../../src/node/models.js';
import { lazyOrtGemm } from '../../src/node/ort-gemm.js';
import { prune } from '../../src/pipeline/prune.js';
import { pruneCount } from '../../src/select/select.js';
import { cli } from '../cli/run.js';
import { launchChromium, skipWithoutChromium } from '../helpers/chromium.js';
import { manifest, ZOO } from '../helpers/zoo.js';

const DEMO_MODEL = new URL('../../web/demo/model.onnx', import.meta.url);
const skip = skipWithoutChromium;
// as the CLI in Node: onnxruntime runs the GEMMs and a frozen prefix
setDefaultGemm(lazyOrtGemm());
/** Where the screenshots go when SCREENSHOTS names a folder (not during `npm test`). */
const SCREENSHOTS = process.env.SCREENSHOTS;

interface Mark {
  readonly label: string;
  readonly visible: boolean;
  readonly inside: boolean;
}

/** Every point and line mark of one chart, with whether it has a box and lies inside the plot. */
function chartMarks(page: Page, name: string): Promise<Mark[]> {
  // (no named helper functions in here: tsx would wrap them in a __name() the page lacks)
  return page.evaluate((id) => {
    const svg = document.querySelector(`#chart-${id} svg`);
    if (svg === null) return [];
    // the plot area: the x axis' domain line spans its width, the y axis' its height
    const [xDomain, yDomain] = [...svg.querySelectorAll('.role-axis-domain')].map((d) =>
      d.getBoundingClientRect(),
    );
    return [
      ...svg.querySelectorAll('[aria-roledescription="line mark"], [aria-roledescription="point"]'),
    ].map((mark) => {
      const box = mark.getBoundingClientRect();
      const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
      return {
        label: mark.getAttribute('aria-label') ?? '',
        visible: box.width > 0 || box.height > 0,
        inside:
          cx >= xDomain.left - 1 &&
          cx <= xDomain.right + 1 &&
          cy >= yDomain.top - 1 &&
          cy <= yDomain.bottom + 1,
      };
    });
  }, name);
}

/**
 * Chooses the method and sparsity, presses Prune, checks that each chart in `charts` has a visible
 * line and 10 visible points inside the plot for the chosen method, ec and magnitude, and a ring at
 * the best of each sparsity; downloads the model and returns its file.
 */
async function pruneAndDownload(
  page: Page,
  method: string,
  sparsity: number,
  dir: string,
  charts: readonly string[],
): Promise<string> {
  await page.selectOption('#method', method);
  await page.fill('#sparsity', String(sparsity));
  await page.getByRole('button', { name: 'Prune' }).click();
  await page.locator('#results').waitFor({ state: 'visible', timeout: 60_000 });
  const shown = await page.evaluate(() =>
    [...document.querySelectorAll('#charts figure.chart')].map((f) => f.id),
  );
  assert.deepEqual(
    shown,
    charts.map((name) => `chart-${name}`),
  );
  for (const name of charts) {
    const marks = await chartMarks(page, name);
    // vega writes each mark's series into its aria-label (`method: ec; …`): a line and 10 points (0.5 … 0.95)
    for (const series of new Set([method, 'ec', 'magnitude'])) {
      const own = marks.filter((mark) => mark.label.startsWith(`method: ${series};`));
      const points = own.filter((mark) => !mark.label.endsWith('; line'));
      assert.equal(points.length, 10, `${name}: the points of ${series}`);
      assert.equal(own.length - points.length, 1, `${name}: the line of ${series}`);
      assert.ok(
        own.every((mark) => mark.visible && mark.inside),
        `${name}: every mark of ${series} is visible inside the plot`,
      );
    }
    const rings = marks.filter((mark) => mark.label.startsWith('best at'));
    assert.ok(
      rings.length >= 10 && rings.every((r) => r.visible && r.inside),
      `${name}: the best are ringed`,
    );
  }
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

/** onnxruntime-node's output of an ONNX file on a fixture's calibration inputs. */
async function ortOutput(
  file: string,
  inputShape: readonly number[],
  x: Float32Array,
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file);
  try {
    const rows = x.length / inputShape.reduce((a, b) => a * b, 1);
    const out = await session.run({
      [session.inputNames[0]]: new ort.Tensor('float32', x, [rows, ...inputShape]),
    });
    return Float32Array.from(out[session.outputNames[0]].data as Float32Array);
  } finally {
    await session.release();
  }
}

describe('the browser demo in headless Chromium', { skip, timeout: 180_000 }, () => {
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

  it('prunes the demo model (ec, 0.8) with its held-out digits, a TF.js upload, and graph models; charts and downloads', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1200, height: 900 } });
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
      await page.locator('#model-info', { hasText: '64x196, 10x64' }).waitFor();
      await page.locator('#calib-info', { hasText: '512 samples' }).waitFor();
      await page.locator('#heldout-info', { hasText: 'test.npy: 500 samples' }).waitFor();
      const onnx = await pruneAndDownload(page, 'ec', 0.8, dir, ['accuracy', 'test-loss', 'output-error']);
      assert.match(
        (await page.locator('#summary').textContent()) ?? '',
        /on the held-out data \(test\.npy, 500 samples\): accuracy/,
      );
      assert.match(
        (await page.locator('#chart-accuracy figcaption').textContent()) ?? '',
        /^Accuracy on the held-out data vs sparsity \(test\.npy\)$/,
      );
      if (SCREENSHOTS)
        await page.screenshot({ path: path.join(SCREENSHOTS, 'demo-mnist.png'), fullPage: true });
      assert.equal(path.basename(onnx), 'model-pruned.onnx');
      await assertSparsity(onnx, 0.8);
      assert.match(
        (await page.locator('#backend').textContent()) ?? '',
        /onnxruntime-web/,
        'the wasm GEMM started',
      );

      // the demo network as a TF.js model.json + shard, picked together; it comes back as a zip of both
      const { modelJson, shards } = await writeTfjsGraph(readOnnx(readFileSync(DEMO_MODEL)).graph);
      await page.setInputFiles('#model-files', [
        { name: 'model.json', mimeType: 'application/json', buffer: Buffer.from(modelJson) },
        {
          name: TFJS_SHARD_NAME,
          mimeType: 'application/octet-stream',
          buffer: Buffer.from(shards.get(TFJS_SHARD_NAME)!),
        },
      ]);
      await page.locator('#model-info', { hasText: 'model.json: TF.js, 2 fully-connected layers' }).waitFor();
      const zip = await pruneAndDownload(page, 'magnitude-comp', 0.9, dir, [
        'accuracy',
        'test-loss',
        'output-error',
      ]);
      assert.equal(path.basename(zip), 'model-pruned-tfjs.zip');
      const unzipped = path.join(dir, 'tfjs');
      mkdirSync(unzipped);
      for (const [name, bytes] of Object.entries(unzipSync(readFileSync(zip))))
        writeFileSync(path.join(unzipped, name), bytes);
      await assertSparsity(path.join(unzipped, 'model.json'), 0.9);

      // graph models, with their calibration inputs only (no labels: the output error is all there is)
      await page.setInputFiles('#heldout-file', []);
      await page.locator('#heldout-info', { hasText: 'none' }).waitFor();
      await page.setInputFiles('#labels-file', []);
      for (const name of ['residual', 'batchnorm', 'softmax_head', 'cnn_head']) {
        const fixture = manifest.fixtures.find((f) => f.name === name)!;
        const modelFile = path.join(ZOO, name, 'model.onnx');
        await page.setInputFiles('#model-files', modelFile);
        await page.locator('#model-info', { hasText: 'model.onnx: ONNX' }).waitFor();
        await page.setInputFiles('#calib-file', path.join(ZOO, name, 'calib.npy'));
        await page.locator('#calib-info', { hasText: 'calib.npy: ' }).waitFor();
        if (name === 'cnn_head')
          assert.match((await page.locator('#model-info').textContent()) ?? '', /frozen prefix Conv/);
        const file = await pruneAndDownload(page, 'ec', 0.5, path.join(dir, name), ['output-error']);
        if (SCREENSHOTS && name === 'cnn_head')
          await page.screenshot({ path: path.join(SCREENSHOTS, 'demo-cnn-head.png'), fullPage: true });

        // the same pruning by the library in Node: the page's download holds its zeros, and onnxruntime runs it
        const calib = readNpy(readFileSync(path.join(ZOO, name, 'calib.npy')));
        const x = Float32Array.from(calib.data as ArrayLike<number>);
        const model = await loadModel(modelFile);
        const rows = calib.shape[0];
        const data = dataForModel(
          model,
          inMemoryDataset({ rows, cols: x.length / rows, data: x }, undefined, 'calib.npy'),
        );
        const expected = await prune(model.graph, data, { method: 'ec', sparsity: 0.5 });
        const written = readOnnx(readFileSync(file)).graph;
        let zeros = 0;
        written.layers.forEach((layer, l) => {
          const keep = expected.keepMasks[l];
          for (let k = 0; k < keep.length; k++) {
            if (!keep[k]) assert.equal(layer.weight.data[k], 0, `${name}: layer ${l} weight ${k} is pruned`);
            if (layer.weight.data[k] === 0) zeros++;
          }
        });
        const weights = written.layers.reduce((n, layer) => n + layer.weight.data.length, 0);
        assert.equal(zeros, pruneCount(0.5, weights), `${name}: half the weights are zero`);
        // everything but the fully-connected layers (and a BatchNorm's mean) is byte-identical: the prefix too
        const { onnx } = onnxProto;
        const [before, now] = [modelFile, file].map((f) => onnx.ModelProto.decode(readFileSync(f)).graph!);
        const layerTensors = new Set(
          fixture.fcLayers.flatMap((l) => ('weight' in l ? [l.weight, l.bias ?? ''] : [])),
        );
        const bnMeans = new Set(
          before.node!.filter((n) => n.opType === 'BatchNormalization').map((n) => n.input![3]),
        );
        const encoded = (t: onnxProto.onnx.ITensorProto) => Buffer.from(onnx.TensorProto.encode(t).finish());
        const nowInits = new Map(now.initializer!.map((t) => [t.name!, encoded(t)]));
        for (const init of before.initializer!) {
          if (layerTensors.has(init.name!) || bnMeans.has(init.name!)) continue;
          assert.ok(
            nowInits.get(init.name!)?.equals(encoded(init)),
            `${name}: initializer '${init.name}' unchanged`,
          );
        }
        const [dense, pruned] = await Promise.all([
          ortOutput(modelFile, fixture.inputShape, x),
          ortOutput(file, fixture.inputShape, x),
        ]);
        assert.equal(pruned.length, rows * fixture.outputShape.reduce((a, b) => a * b, 1));
        assert.ok(pruned.every(Number.isFinite), `${name}: onnxruntime runs the download`);
        assert.ok(
          pruned.some((v, i) => v !== dense[i]),
          `${name}: the download is not the dense model`,
        );
      }

      assert.deepEqual(problems, []);
      assert.deepEqual(elsewhere, [], 'no request leaves the demo server');
    } finally {
      await browser.close();
    }
  });
});
