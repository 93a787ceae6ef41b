/**
 * The panel of models (issue #14): networks as users build them, trained with PyTorch and exported
 * with torch.onnx.export (bench/panel/train_panel.py), each pruned with calibration data only (1,000
 * training samples, no labels used except by gradmag and the loss-sensitivity variants) by every
 * baseline, EC variant and bias-only recipe at 50–95 %, and measured on held-out test data.
 * Writes docs/PANEL.md and docs/panel.json, and says which recipe the data makes the default.
 *
 *   npm run panel                          (everything; trained networks and results are cached)
 *   npx tsx bench/panel/run.ts --models mnist-base --methods ec,magnitude --sparsities 0.9
 *   npx tsx bench/panel/run.ts --render    (the report again from the cached results only)
 *
 * Cache: .cache/panel/{data,models,results}; one results file per model × method, so an
 * interrupted run resumes where it stopped. Delete a results file to measure it again.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Dataset } from '../../src/data/dataset.js';
import { EcpruneError } from '../../src/errors.js';
import { setDefaultGemm } from '../../src/gemm/default.js';
import { openDataFile } from '../../src/node/datasets.js';
import { dataForModel, loadModel } from '../../src/node/models.js';
import { lazyOrtGemm } from '../../src/node/ort-gemm.js';
import { DEFAULT_RECIPE, prune } from '../../src/pipeline/prune.js';
import { formatVariant, parseVariant } from '../../src/pipeline/variant-name.js';
import { evaluate } from '../../src/train/evaluate.js';
import { writePanelData } from './data.js';
import { type PanelResults, renderPanel } from './report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');

/** Baselines, the paper's EC and its ablations, the earlier variants, and the bias-only recipes. */
export const PANEL_METHODS = [
  'magnitude',
  'obd',
  'gradmag',
  'random',
  'obs',
  'ec',
  'ec-nocomp',
  'magnitude-comp',
  'ec+loss+steps5',
  'ec+alpha',
  'ec+magbudget',
  'ec-nocomp+magbudget',
  'ec+alpha+magbudget',
  'ec+loss+alpha',
  'ec+loss+steps5+alpha',
];
export const PANEL_SPARSITIES = [0.5, 0.7, 0.8, 0.9, 0.95];
/** OBS, the slowest reference by far, runs at the sparsities of the goal only (keeps the panel's time). */
const OBS_SPARSITIES = [0.8, 0.9];

const { values: flags } = parseArgs({
  options: {
    cache: { type: 'string', default: path.join(root, '.cache', 'panel') },
    models: { type: 'string' },
    methods: { type: 'string' },
    sparsities: { type: 'string' },
    out: { type: 'string', default: path.join(root, 'docs', 'PANEL.md') },
    json: { type: 'string', default: path.join(root, 'docs', 'panel.json') },
    render: { type: 'boolean', default: false },
    /** prune only the networks already trained (while train_panel.py runs on its own) */
    'no-train': { type: 'boolean', default: false },
  },
});

interface PanelModel {
  readonly name: string;
  readonly data: string;
  readonly task: 'classification' | 'regression';
  readonly file: string;
  readonly dir: string;
  readonly layers: number[];
  readonly act: string;
  readonly epochs: number;
  readonly opt: string;
  readonly wd: number;
  readonly dropout: number;
  readonly graph: string;
  readonly seed: number;
}

export interface PanelRow {
  readonly sparsity: number;
  readonly loss?: number;
  readonly accuracy?: number;
  readonly ms?: number;
  /** per layer, the scale of the bias shifts (compensating recipes) */
  readonly shiftScales?: number[];
  /** why the method does not apply to this model */
  readonly skipped?: string;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.tmp-${process.pid}`;
  await writeFile(temporary, `${JSON.stringify(value, null, 1)}\n`);
  await rename(temporary, file);
}

// as the CLI does: onnxruntime runs the GEMMs and each calibration batch as one graph
setDefaultGemm(lazyOrtGemm());
const started = Date.now();
const cache = path.resolve(flags.cache);
const dataDir = path.join(cache, 'data');
const modelDir = path.join(cache, 'models');
const methods = flags.methods?.split(',') ?? PANEL_METHODS;
for (const method of methods) parseVariant(method);
const sparsities = flags.sparsities?.split(',').map(Number) ?? PANEL_SPARSITIES;

if (!flags.render && !flags['no-train']) {
  await writePanelData(dataDir);
  const trained = spawnSync('/usr/bin/python3', [path.join(here, 'train_panel.py'), dataDir, modelDir], {
    stdio: 'inherit',
  });
  if (trained.status !== 0) throw new Error(`train_panel.py failed (status ${trained.status})`);
}
const manifest = JSON.parse(await readFile(path.join(modelDir, 'manifest.json'), 'utf8')) as PanelModel[];
const models = (
  flags.models ? flags.models.split(',').flatMap((name) => manifest.filter((m) => m.name === name)) : manifest
).filter((m) => existsSync(m.file));

const results: PanelResults = { models: [], methods, sparsities, seconds: 0, command: '' };
for (const spec of models) {
  const cacheOf = (method: string) => path.join(cache, 'results', spec.name, `${method}.json`);
  const open = async () => {
    const model = await loadModel(spec.file);
    const labelled = (x: string, y: string): Promise<Dataset> =>
      openDataFile(path.join(spec.dir, x), { targets: path.join(spec.dir, y) });
    return {
      model,
      calibration: dataForModel(model, await labelled('calib.npy', 'calib_labels.npy')),
      test: dataForModel(model, await labelled('x_test.npy', 'y_test.npy')),
    };
  };
  let loaded: Awaited<ReturnType<typeof open>> | undefined;
  const perMethod: Record<string, PanelRow[]> = {};
  for (const method of ['dense', ...methods]) {
    const file = cacheOf(method);
    const rows: PanelRow[] = existsSync(file) ? JSON.parse(await readFile(file, 'utf8')) : [];
    const wanted =
      method === 'dense'
        ? [0]
        : method === 'obs'
          ? sparsities.filter((s) => OBS_SPARSITIES.includes(s))
          : sparsities;
    const missing = wanted.filter((s) => !rows.some((r) => r.sparsity === s));
    perMethod[method] = rows;
    if (missing.length === 0 || flags.render) continue;
    loaded ??= await open();
    const { model, calibration, test } = loaded;
    for (const sparsity of missing) {
      const t0 = performance.now();
      try {
        const pruned =
          method === 'dense'
            ? { model: model.graph, shiftScales: undefined }
            : await prune(model.graph, calibration, { ...parseVariant(method), sparsity });
        const ms = performance.now() - t0;
        const measured = await evaluate(pruned.model, test);
        rows.push({
          sparsity,
          loss: measured.meanLoss,
          accuracy: measured.accuracy,
          ms: Math.round(ms),
          ...(pruned.shiftScales && { shiftScales: pruned.shiftScales }),
        });
      } catch (error) {
        if (!(error instanceof EcpruneError) || error.code !== 'unsupported') throw error;
        rows.push({ sparsity, skipped: error.detail });
      }
      rows.sort((a, b) => a.sparsity - b.sparsity);
      await writeJson(file, rows); // after every row: an interrupted run resumes here
    }
    const row90 = rows.find((r) => r.sparsity === 0.9) ?? rows[0];
    console.log(
      `${spec.name} ${method}: ${row90.skipped ?? `loss ${row90.loss?.toFixed(4)}${row90.accuracy === undefined ? '' : ` acc ${(100 * row90.accuracy).toFixed(2)} %`} at ${row90.sparsity}`}`,
    );
  }
  if (Object.values(perMethod).every((rows) => rows.length === 0)) continue; // not measured yet
  results.models.push({
    name: spec.name,
    task: spec.task,
    data: spec.data,
    recipe: `${spec.layers.join('-')} ${spec.act}, ${spec.opt}${spec.wd ? ` wd ${spec.wd}` : ''}${spec.dropout ? `, dropout ${spec.dropout}` : ''}, ${spec.epochs} epochs${spec.graph === 'chain' ? '' : `, ${spec.graph}`}${spec.seed ? `, seed ${spec.seed}` : ''}`,
    results: perMethod,
  });
}
results.seconds = Math.round((Date.now() - started) / 1000);
results.command = `npm run panel${flags.render ? ' -- --render' : ''}`;
const { markdown, chosen } = renderPanel(results, formatVariant(DEFAULT_RECIPE));
if (!flags.models && !flags.methods && !flags.sparsities) {
  await writeJson(flags.json, results);
  await mkdir(path.dirname(flags.out), { recursive: true });
  await writeFile(`${flags.out}.tmp-${process.pid}`, markdown);
  await rename(`${flags.out}.tmp-${process.pid}`, flags.out);
  console.log(`wrote ${flags.out} and ${flags.json} (${results.seconds} s)`);
} else {
  console.log(markdown);
}
console.log(
  `the panel's choice of default: ${chosen}; the library's default: ${formatVariant(DEFAULT_RECIPE)}`,
);
