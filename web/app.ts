/**
 * The demo page's glue: inputs and buttons to web/pipeline.ts, results to the page. Built by
 * scripts/build-web.ts into web/dist/ (with the onnxruntime-web wasm, served from the same folder).
 */
import { type Dataset, METHOD_NAMES, nonzeroWeightCount } from '../src/core.js';
import { createOrtWebGemm } from '../src/gemm/ort-web-gemm.js';
import { weightCount } from '../src/graph/graph.js';
import { headOf } from '../src/graph/mlp-graph.js';
import { escapeHtml } from '../src/report/html.js';
import {
  DEFAULT_RECIPE_NAME,
  type NamedBytes,
  prunedModelFile,
  readData,
  readModelFiles,
  runStudy,
  type Study,
  studyCharts,
  type WebModel,
} from './pipeline.js';

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const modelInput = element<HTMLInputElement>('model-files');
const calibInput = element<HTMLInputElement>('calib-file');
const labelsInput = element<HTMLInputElement>('labels-file');
const heldOutInput = element<HTMLInputElement>('heldout-file');
const heldOutLabelsInput = element<HTMLInputElement>('heldout-labels-file');
const methodSelect = element<HTMLSelectElement>('method');
const sparsityInput = element<HTMLInputElement>('sparsity');
const pruneButton = element<HTMLButtonElement>('prune');
const progress = element<HTMLProgressElement>('progress');
const errorBox = element<HTMLDivElement>('error');

let model: WebModel | undefined;
let calibration: Dataset | undefined;
let heldOut: Dataset | undefined;
let study: Study | undefined;

// the GEMM starts loading at once (the wasm is ~14 MB); Prune waits for it
const gemm = createOrtWebGemm({
  wasmPaths: new URL('./', import.meta.url).href,
  threads: globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency) : 1,
  onFallback: (error) => console.warn('onnxruntime-web did not start; using the TS loop', error),
}).then((backend) => {
  element('backend').textContent =
    `matrix products: ${backend.name === 'ts' ? 'TypeScript loop' : backend.name}`;
  return backend;
});

// prune's default recipe first (what the CLI does without method flags), then each criterion as the paper defines it
methodSelect.add(new Option(`${DEFAULT_RECIPE_NAME} (default)`, DEFAULT_RECIPE_NAME, true, true));
for (const name of METHOD_NAMES) methodSelect.add(new Option(name, name));

const nextFrame = () => new Promise((resolve) => setTimeout(resolve, 0));
const percent = (x: number) => `${(100 * x).toFixed(1)} %`;
const readFile = async (file: File): Promise<NamedBytes> => ({
  name: file.name,
  bytes: new Uint8Array(await file.arrayBuffer()),
});
const fetchFile = async (url: string): Promise<NamedBytes> => {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return { name: url.slice(url.lastIndexOf('/') + 1), bytes: new Uint8Array(await response.arrayBuffer()) };
};

/** Runs an action, showing its error (one line, as the CLI prints it) instead of throwing. */
async function guarded(action: () => Promise<void>): Promise<void> {
  errorBox.textContent = '';
  try {
    await action();
  } catch (error) {
    errorBox.textContent = error instanceof Error ? error.message : String(error);
  }
}

function setModel(files: NamedBytes[]): void {
  model = undefined;
  element('model-info').textContent = '';
  model = readModelFiles(files);
  const { graph } = model;
  const format = model.tfjs ? 'TF.js' : 'ONNX';
  const shapes = graph.layers.map((layer) => `${layer.weight.rows}x${layer.weight.cols}`).join(', ');
  const prefix = model.onnx?.prefixOps.length ? `; frozen prefix ${model.onnx.prefixOps.join(', ')}` : '';
  const head = headOf(graph);
  element('model-info').textContent =
    `${model.name}: ${format}, ${graph.layers.length} fully-connected layers (${shapes}), ` +
    `${weightCount(graph).toLocaleString('en')} weights, ${graph.nodes.length} ops${prefix}${head ? `; ${head} head` : ''}`;
}

const describeData = (data: Dataset) =>
  `${data.name}: ${data.samples} samples x ${data.features} features, ${data.targetKind ? `labels: ${data.targetKind}` : 'no labels'}`;

function setCalibration(inputs: NamedBytes, labels?: NamedBytes): void {
  calibration = undefined;
  element('calib-info').textContent = '';
  calibration = readData(inputs, labels);
  element('calib-info').textContent = describeData(calibration);
}

function setHeldOut(inputs: NamedBytes | undefined, labels?: NamedBytes): void {
  heldOut = undefined;
  element('heldout-info').textContent = 'none: accuracy and loss will be measured on the calibration samples';
  if (inputs === undefined) return;
  heldOut = readData(inputs, labels);
  element('heldout-info').textContent = heldOut.targetKind
    ? describeData(heldOut)
    : `${describeData(heldOut)}: add its labels to measure accuracy and loss on it`;
}

function updateState(): void {
  pruneButton.disabled = model === undefined || calibration === undefined;
  element('results').hidden = true;
  study = undefined;
}

modelInput.addEventListener('change', () =>
  guarded(async () => setModel(await Promise.all([...(modelInput.files ?? [])].map(readFile)))).finally(
    updateState,
  ),
);

const onDataChange = () =>
  guarded(async () => {
    const inputs = calibInput.files?.[0];
    if (inputs === undefined) return;
    const labels = labelsInput.files?.[0];
    setCalibration(await readFile(inputs), labels && (await readFile(labels)));
  }).finally(updateState);
calibInput.addEventListener('change', onDataChange);
labelsInput.addEventListener('change', onDataChange);

const onHeldOutChange = () =>
  guarded(async () => {
    const inputs = heldOutInput.files?.[0];
    const labels = heldOutLabelsInput.files?.[0];
    setHeldOut(inputs && (await readFile(inputs)), labels && (await readFile(labels)));
  }).finally(updateState);
heldOutInput.addEventListener('change', onHeldOutChange);
heldOutLabelsInput.addEventListener('change', onHeldOutChange);

element('load-demo').addEventListener('click', () =>
  guarded(async () => {
    for (const input of [modelInput, calibInput, labelsInput, heldOutInput, heldOutLabelsInput])
      input.value = '';
    const [onnx, inputs, labels, testInputs, testLabels] = await Promise.all(
      ['demo/model.onnx', 'demo/calib.npy', 'demo/labels.npy', 'demo/test.npy', 'demo/test-labels.npy'].map(
        fetchFile,
      ),
    );
    setModel([onnx]);
    setCalibration(inputs, labels);
    setHeldOut(testInputs, testLabels);
  }).finally(updateState),
);

pruneButton.addEventListener('click', () =>
  guarded(async () => {
    if (model === undefined || calibration === undefined) return;
    const box = element('progress-box');
    pruneButton.disabled = true;
    box.hidden = false;
    element('results').hidden = true;
    try {
      element('status').textContent = 'loading onnxruntime-web';
      const backend = await gemm;
      study = await runStudy(model, calibration, {
        method: methodSelect.value,
        sparsity: Number(sparsityInput.value),
        gemm: backend,
        heldOut: heldOut?.targetKind ? heldOut : undefined,
        onStep: async (done, total, label) => {
          progress.value = done / total;
          element('status').textContent = label;
          await nextFrame();
        },
      });
      element('charts').innerHTML = (await studyCharts(study))
        .map(
          (chart) =>
            `<figure class="chart" id="chart-${chart.name}">${chart.svg}<figcaption>${escapeHtml(chart.title)}</figcaption></figure>`,
        )
        .join('');
      showSummary(model, study);
      element('results').hidden = false;
    } finally {
      pruneButton.disabled = false;
      box.hidden = true;
    }
  }),
);

function showSummary(dense: WebModel, result: Study): void {
  const rows = result.keepMasks.map((mask, l) => {
    const { name, weight } = dense.graph.layers[l];
    const kept = mask.reduce((n, keep) => n + keep, 0);
    return `<tr><td>${escapeHtml(name)}</td><td>${weight.rows} x ${weight.cols}</td><td>${mask.length.toLocaleString('en')}</td><td>${kept.toLocaleString('en')}</td><td>${percent(kept / mask.length)}</td></tr>`;
  });
  const total = weightCount(dense.graph);
  const kept = nonzeroWeightCount(result.pruned);
  const on = result.evaluatedOn;
  const where = on.heldOut
    ? `on the held-out data (${escapeHtml(on.name)}, ${on.samples} samples)`
    : `on the ${on.samples} calibration samples (no held-out data given: these numbers favour the methods fitted to them)`;
  const quality = [
    result.chosen.accuracy === undefined
      ? ''
      : `accuracy ${percent(result.chosen.accuracy)} (dense ${percent(result.dense.accuracy!)})`,
    result.chosen.loss === undefined
      ? ''
      : `loss ${result.chosen.loss.toPrecision(4)} (dense ${result.dense.loss!.toPrecision(4)})`,
    `output MSE against the dense model ${result.chosen.outputMse.toExponential(3)}`,
    result.chosen.loss === undefined ? 'no labels, so no accuracy or loss' : '',
  ].filter((text) => text !== '');
  element('summary').innerHTML =
    `<p><b>${result.method}</b> at sparsity ${result.sparsity}, ${where}: ${quality.join('; ')}.</p>` +
    '<table><thead><tr><th>layer</th><th>shape (out x in)</th><th>weights</th><th>kept</th><th>kept %</th></tr></thead><tbody>' +
    rows.join('') +
    `<tr><th>total</th><td></td><th>${total.toLocaleString('en')}</th><th>${kept.toLocaleString('en')}</th><th>${percent(kept / total)}</th></tr>` +
    '</tbody></table>';
  element('download-info').textContent = dense.tfjs
    ? '(TF.js: a .zip of model.json and its .bin)'
    : '(.onnx)';
}

element('download').addEventListener('click', () =>
  guarded(async () => {
    if (model === undefined || calibration === undefined || study === undefined) return;
    const file = prunedModelFile(model, study, calibration.name);
    const url = URL.createObjectURL(new Blob([file.bytes as Uint8Array<ArrayBuffer>], { type: file.type }));
    const link = Object.assign(document.createElement('a'), { href: url, download: file.name });
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }),
);
