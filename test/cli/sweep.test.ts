/**
 * The study end to end through `runCli`, in-process, on a small network written to a temp folder.
 *
 * The network reads 8 inputs of which 6 are nearly constant over the data (a fixed value plus
 * noise of 1e-3) and carry the largest weights. EC sees that removing such a weight is undone by
 * shifting the bias (its input's variance is ~0) and removes them first; magnitude removes the
 * smaller weights on the two inputs that actually vary. So at 60 % sparsity, where EC can take
 * (nearly) every weight on a constant input, its output error must be far below magnitude's.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRandom } from '../../src/data/random.js';
import { defaultGemm, setDefaultGemm } from '../../src/gemm/default.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { readNpy, writeNpy } from '../../src/io/npy.js';
import { type Mlp, nonzeroWeightCount } from '../../src/model/mlp.js';
import { openDataFile } from '../../src/node/datasets.js';
import { dataForModel, loadModel, saveModel } from '../../src/node/models.js';
import { lazyOrtGemm } from '../../src/node/ort-gemm.js';
import { prune } from '../../src/pipeline/prune.js';
import { evaluate } from '../../src/train/evaluate.js';
import { finetune } from '../../src/train/train.js';
import { FIXTURES, cli as runCaptured, tempDir } from './run.js';

const CONSTANTS = [0.8, -0.6, 0.5, -0.9, 0.3, 0.7];
const FEATURES = 2 + CONSTANTS.length;
const HIDDEN = 16;
const CLASSES = 3;

function constantInputNetwork(): Mlp {
  const random = createRandom(7);
  const weight = new Float32Array(HIDDEN * FEATURES);
  for (let i = 0; i < HIDDEN; i++) {
    for (let j = 0; j < FEATURES; j++) {
      // informative inputs 0, 1: |w| in [0.2, 0.6]; constant inputs: |w| in [1, 2]
      const size = j < 2 ? 0.2 + 0.4 * random.next() : 1 + random.next();
      weight[i * FEATURES + j] = random.next() < 0.5 ? -size : size;
    }
  }
  const bias = Float32Array.from({ length: HIDDEN }, () => random.normal());
  const out = Float32Array.from({ length: CLASSES * HIDDEN }, () => random.normal() * 0.7);
  return {
    layers: [
      { weight: { rows: HIDDEN, cols: FEATURES, data: weight }, bias, activation: { kind: 'tanh' } },
      {
        weight: { rows: CLASSES, cols: HIDDEN, data: out },
        bias: new Float32Array(CLASSES),
        activation: { kind: 'identity' },
      },
    ],
  };
}

function inputs(samples: number, seed: number): Float32Array {
  const random = createRandom(seed);
  const x = new Float32Array(samples * FEATURES);
  for (let n = 0; n < samples; n++) {
    x[n * FEATURES] = random.normal();
    x[n * FEATURES + 1] = random.normal();
    CONSTANTS.forEach((c, k) => {
      x[n * FEATURES + 2 + k] = c + 1e-3 * random.normal();
    });
  }
  return x;
}

/** Labels = the network's own arg-max, so the dense network is exact and pruning can only lose. */
async function labelsOf(mlp: Mlp, x: Float32Array): Promise<Int32Array> {
  const y = await forward(mlp, { rows: x.length / FEATURES, cols: FEATURES, data: x }, tsGemm);
  return Int32Array.from({ length: y.rows }, (_, n) => {
    const row = y.data.subarray(n * CLASSES, (n + 1) * CLASSES);
    return row.indexOf(Math.max(...row));
  });
}

/** Runs the CLI with console.log captured. */
/** The CLI in-process, its stdout as lines. */
async function cli(argv: string[]): Promise<{ code: number; out: string[]; stderr: string }> {
  const { code, stdout, stderr } = await runCaptured(...argv);
  return { code, out: stdout.split('\n').filter((line) => line !== ''), stderr };
}

/** `ecprune sweep` of `model` with the calibration inputs `x` also as the test set, labelled `y`; the report's rows. */
async function sweepRows(
  model: string,
  x: string,
  y: string,
  methods: string,
  sparsities: string,
): Promise<{ method: string; nonzero: number; outputMse: number; accuracy: number }[]> {
  const report = path.join(tempDir(), 'report');
  const run = await cli([
    'sweep',
    model,
    ...['--calib', x, '--data', x, '--labels', y],
    ...['--methods', methods, '--sparsities', sparsities, '--quiet', '-o', report],
  ]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(readFileSync(path.join(report, 'results.json'), 'utf8')).rows;
}

interface Row {
  method: string;
  sparsity: number;
  seed?: number;
  seeds?: number;
  outputMse: number;
  nonzero: number;
  finetuneEpochs: number;
}

describe('ecprune sweep', () => {
  let dir: string;
  const file = (name: string) => path.join(dir, name);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ecprune-sweep-'));
    const mlp = constantInputNetwork();
    await saveModel(file('model.onnx'), mlp);
    for (const [name, samples, seed] of [
      ['calib', 400, 1],
      ['test', 300, 2],
    ] as const) {
      const x = inputs(samples, seed);
      writeFileSync(file(`${name}_x.npy`), writeNpy({ shape: [samples, FEATURES], data: x }));
      writeFileSync(file(`${name}_y.npy`), writeNpy({ shape: [samples], data: await labelsOf(mlp, x) }));
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the table row by row and writes the report folder; EC beats magnitude on near-constant inputs', async () => {
    const report = file('report');
    const { code, out } = await cli([
      'sweep',
      file('model.onnx'),
      '--calib',
      file('calib_x.npy'),
      '--calib-labels',
      file('calib_y.npy'),
      '--data',
      file('test_x.npy'),
      '--labels',
      file('test_y.npy'),
      '--methods',
      'ec,magnitude,gradmag,random,nonlinear',
      '--sparsities',
      '0.6,0.8',
      '--seeds',
      '2',
      '-o',
      report,
      '--quiet',
    ]);
    assert.equal(code, 0);
    // header, rule, dense, then per sparsity: ec, magnitude, gradmag, 2 random seeds + mean, nonlinear
    const tableLines = out.filter((line) => /^(dense|ec|magnitude|gradmag|random|nonlinear)\s/.test(line));
    assert.equal(tableLines.length, 1 + 2 * 7);
    assert.match(out[0], /^method\s+scope\s+sparsity/);
    assert.ok(out.at(-1)!.endsWith(path.join(report, 'report.html')));
    // after the table, the best method of each measure per sparsity
    assert.deepEqual(
      out
        .filter((line) => line.startsWith('best at'))
        .map((line) => line.replace(/: test loss .*; test accuracy .*; output MSE .*/, '')),
      ['best at 60%', 'best at 80%'],
    );

    assert.deepEqual(readdirSync(report).sort(), [
      'charts',
      'report.html',
      'results.csv',
      'results.json',
      'results.md',
    ]);
    const charts = readdirSync(path.join(report, 'charts')).sort();
    for (const name of ['test-loss', 'accuracy', 'output-error', 'layer-sparsity']) {
      assert.ok(
        charts.includes(`${name}.svg`) && charts.includes(`${name}.png`),
        `charts/${name}.svg and .png`,
      );
    }
    const html = readFileSync(path.join(report, 'report.html'), 'utf8');
    assert.match(
      html,
      /Accuracy and loss are measured on the held-out test data \([^)]*test_x\.npy: 300 samples\)/,
    );
    assert.doesNotMatch(html, /class="warning"/);
    const png = readFileSync(path.join(report, 'charts', 'test-loss.png'));
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // 'PNG'

    const { rows, command } = JSON.parse(readFileSync(path.join(report, 'results.json'), 'utf8')) as {
      rows: Row[];
      command: string;
    };
    assert.match(
      command,
      /^ecprune sweep .*--methods ec,magnitude,gradmag,random,nonlinear --sparsities 0\.6,0\.8/,
    );
    const at = (method: string, sparsity: number) =>
      rows.find((r) => r.method === method && r.sparsity === sparsity && r.seed === undefined)!;
    assert.equal(rows[0].method, 'dense');
    assert.equal(rows[0].outputMse, 0);
    const ec = at('ec', 0.6).outputMse;
    const magnitude = at('magnitude', 0.6).outputMse;
    assert.ok(ec < 0.01 * magnitude, `EC output error ${ec} vs magnitude ${magnitude} at 60 %`);
    assert.ok(at('ec', 0.8).outputMse <= at('magnitude', 0.8).outputMse);
    // the exact non-linear compensation is at least as good as its linearisation here
    assert.ok(at('nonlinear', 0.6).outputMse <= 2 * ec + 1e-9);
    // random: one row per seed, then their mean
    const random = rows.filter((r) => r.method === 'random' && r.sparsity === 0.8);
    assert.deepEqual(
      random.map((r) => r.seed ?? `mean of ${r.seeds}`),
      [0, 1, 'mean of 2'],
    );
    assert.ok(Math.abs(random[2].outputMse - (random[0].outputMse + random[1].outputMse) / 2) < 1e-12);
    const weights = HIDDEN * FEATURES + CLASSES * HIDDEN;
    assert.equal(at('ec', 0.8).nonzero, weights - Math.floor(0.8 * weights + 0.5));
  });

  it('says at the top of the report when the test data is the calibration data', async () => {
    const report = file('not-held-out');
    const same = [
      '--calib',
      file('calib_x.npy'),
      '--data',
      file('calib_x.npy'),
      '--labels',
      file('calib_y.npy'),
    ];
    const { code } = await cli([
      'sweep',
      file('model.onnx'),
      ...same,
      '--methods',
      'ec,magnitude',
      '--sparsities',
      '0.5',
      '-o',
      report,
      '--quiet',
    ]);
    assert.equal(code, 0);
    const html = readFileSync(path.join(report, 'report.html'), 'utf8');
    assert.match(
      html,
      /<p class="warning">The test data is the calibration data: accuracy and loss are not held out/,
    );
    assert.equal(JSON.parse(readFileSync(path.join(report, 'results.json'), 'utf8')).heldOut, false);
  });

  it('refuses a non-empty report folder without --force', async () => {
    const report = file('busy');
    await cli([
      'sweep',
      file('model.onnx'),
      '--calib',
      file('calib_x.npy'),
      '--data',
      file('test_x.npy'),
      '--labels',
      file('test_y.npy'),
      '--methods',
      'magnitude',
      '--sparsities',
      '0.5',
      '-o',
      report,
      '--quiet',
    ]);
    const again = [
      'sweep',
      file('model.onnx'),
      '--calib',
      file('calib_x.npy'),
      '--data',
      file('test_x.npy'),
      '--labels',
      file('test_y.npy'),
      '--methods',
      'ec',
      '--sparsities',
      '0.5',
      '-o',
      report,
      '--quiet',
    ];
    assert.equal((await cli(again)).code, 2);
    assert.equal((await cli([...again, '--force'])).code, 0);
    const { rows } = JSON.parse(readFileSync(path.join(report, 'results.json'), 'utf8')) as { rows: Row[] };
    assert.deepEqual(
      rows.map((r) => r.method),
      ['dense', 'ec'],
    );
  });

  it('refuses nonlinear on a network too large for it, before any work', async () => {
    // 6 x 8000 + 8000 x 1 = 56,000 weights x 200 samples: over the limit of 10,000 x 512
    const argv = [
      'sweep',
      '--dataset',
      'diffusion-sorption',
      '--layers',
      '6,8000,1',
      '--calib-samples',
      '200',
      '--methods',
      'nonlinear',
    ];
    const { code } = await cli([...argv, '-o', file('never'), '--cache-dir', file('never-cache')]);
    assert.equal(code, 2);
    assert.equal(existsSync(file('never-cache')), false, 'nothing was trained');
    assert.equal(existsSync(file('never')), false);
  });

  it('trains on --dataset once (regression), reuses the cached model, fine-tunes and trains dense-small', async () => {
    const argv = (out: string) => [
      'sweep',
      '--dataset',
      'diffusion-sorption',
      '--layers',
      '6,12,1',
      '--activation',
      'tanh',
      '--epochs',
      '1',
      '--methods',
      'ec,dense-small',
      '--sparsities',
      '0.5',
      '--finetune-epochs',
      '0,1',
      '--calib-samples',
      '200',
      '--cache-dir',
      file('cache'),
      '-o',
      file(out),
      '--quiet',
    ];
    const first = await cli(argv('first'));
    assert.equal(first.code, 0);
    assert.ok(first.out.some((line) => line.startsWith('training ')));
    assert.equal(readdirSync(file('cache')).filter((f) => f.endsWith('.onnx')).length, 1);
    const second = await cli(argv('second'));
    assert.equal(second.code, 0);
    assert.ok(second.out.some((line) => line.startsWith('using the cached model ')));

    const { rows } = JSON.parse(readFileSync(file('second/results.json'), 'utf8')) as { rows: Row[] };
    const firstRows = JSON.parse(readFileSync(file('first/results.json'), 'utf8')).rows as Row[];
    assert.deepEqual(
      rows.map((r) => r.outputMse),
      firstRows.map((r) => r.outputMse),
    ); // same network
    assert.deepEqual(
      rows.map((r) => `${r.method}/${r.finetuneEpochs}`),
      ['dense/0', 'ec/0', 'dense-small/0', 'ec/1'],
    );
    const denseWeights = 6 * 12 + 12 * 1;
    const small = rows.find((r) => r.method === 'dense-small')!;
    assert.ok(
      Math.abs(small.nonzero - denseWeights / 2) <= 0.15 * denseWeights,
      `dense-small has ${small.nonzero} weights`,
    );
    // fine-tuning keeps the pruned weights at zero
    assert.ok(rows[3].nonzero <= rows[1].nonzero);
  });
});

describe('ecprune train and finetune', () => {
  let dir: string;
  const file = (name: string) => path.join(dir, name);
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ecprune-train-'));
    const mlp = constantInputNetwork();
    const x = inputs(300, 5);
    writeFileSync(file('x.npy'), writeNpy({ shape: [300, FEATURES], data: x }));
    writeFileSync(file('y.npy'), writeNpy({ shape: [300], data: await labelsOf(mlp, x) }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('trains a network, prunes it, fine-tunes it with the pruned weights held at zero', async () => {
    const train = await cli([
      'train',
      '--data',
      file('x.npy'),
      '--labels',
      file('y.npy'),
      '--layers',
      `${FEATURES},10,${CLASSES}`,
      '--epochs',
      '2',
      '--validation',
      '0.2',
      '-o',
      file('m.onnx'),
      '--quiet',
    ]);
    assert.equal(train.code, 0);
    assert.equal(train.out.filter((line) => /^train: epoch \d\/2 .*validation loss/.test(line)).length, 2);
    const trained = (await loadModel(file('m.onnx'))).mlp!;
    assert.deepEqual(
      trained.layers.map((l) => [l.weight.rows, l.weight.cols]),
      [
        [10, FEATURES],
        [CLASSES, 10],
      ],
    );

    assert.equal(
      (
        await cli([
          'prune',
          file('m.onnx'),
          '--calib',
          file('x.npy'),
          '--sparsity',
          '0.7',
          '-o',
          file('p.onnx'),
          '--quiet',
        ])
      ).code,
      0,
    );
    const finetuned = await cli([
      'finetune',
      file('p.onnx'),
      '--data',
      file('x.npy'),
      '--labels',
      file('y.npy'),
      '--epochs',
      '2',
      '-o',
      file('f.onnx'),
      '--quiet',
    ]);
    assert.equal(finetuned.code, 0);
    const pruned = (await loadModel(file('p.onnx'))).mlp!;
    const tuned = (await loadModel(file('f.onnx'))).mlp!;
    let changed = 0;
    pruned.layers.forEach((layer, l) => {
      layer.weight.data.forEach((w, k) => {
        const after = tuned.layers[l].weight.data[k];
        if (w === 0) assert.equal(after, 0, `layer ${l} weight ${k} must stay zero`);
        else if (after !== w) changed++;
      });
    });
    assert.ok(changed > 0, 'the kept weights train');

    // prune --finetune-epochs: the same in one command (fine-tuned on the calibration data)
    const argv = [
      'prune',
      file('m.onnx'),
      '--calib',
      file('x.npy'),
      '--labels',
      file('y.npy'),
      '--sparsity',
      '0.7',
      '--quiet',
    ];
    assert.equal((await cli([...argv, '--finetune-epochs', '1', '-o', file('pf.onnx')])).code, 0);
    const prunedTuned = (await loadModel(file('pf.onnx'))).mlp!;
    prunedTuned.layers.forEach((layer, l) => {
      layer.weight.data.forEach((w, k) => {
        if (pruned.layers[l].weight.data[k] === 0) assert.equal(w, 0);
      });
    });
    assert.notDeepEqual(prunedTuned.layers[0].weight.data, pruned.layers[0].weight.data);
  });
});

describe('sweep with beyond-the-paper variants', () => {
  it('accepts variant names in --methods and refuses unknown modifiers with one line', async () => {
    const dir = tempDir();
    const model = path.join(FIXTURES, 'onnx', 'mlp_relu_gemm.onnx');
    const x = path.join(FIXTURES, 'onnx', 'mlp_relu_gemm.input.npy');
    const y = path.join(dir, 'y.npy');
    writeFileSync(y, writeNpy({ shape: [5], data: Int32Array.from([0, 1, 2, 3, 4]) }));
    const methods = 'ec,ec+sequential+steps2+refit2,obs,ec+2:4';
    const rows = await sweepRows(model, x, y, methods, '0.8');
    assert.deepEqual(
      rows.map((r) => r.method),
      ['dense', ...methods.split(',')],
    );
    // 80 % of 2,720 weights, except 2:4 which keeps exactly half
    assert.deepEqual(
      rows.map((r) => r.nonzero),
      [2720, 544, 544, 544, 1360],
    );
    const bad = await cli([
      'sweep',
      model,
      '--calib',
      x,
      '--data',
      x,
      '--labels',
      y,
      '--methods',
      'ec+twice',
      '-o',
      path.join(dir, 'r2'),
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown method 'ec\+twice'/);
  });
});

describe('sweep on graph models (issue #11)', () => {
  const ZOO = path.join(FIXTURES, 'zoo');
  // as the CLI runs: onnxruntime runs the CNN head's frozen prefix
  const backend = defaultGemm();
  before(() => setDefaultGemm(lazyOrtGemm()));
  after(() => setDefaultGemm(backend));
  /** The zoo model's calibration inputs, labelled by the model's own arg-max (its outputs.npy). */
  function labelled(name: string): { x: string; y: string } {
    const outputs = readNpy(readFileSync(path.join(ZOO, name, 'outputs.npy')));
    const [rows, classes] = outputs.shape;
    const labels = Int32Array.from({ length: rows }, (_, n) => {
      let best = 0;
      for (let k = 1; k < classes; k++)
        if (outputs.data[n * classes + k] > outputs.data[n * classes + best]) best = k;
      return best;
    });
    const y = path.join(tempDir(), `${name}-labels.npy`);
    writeFileSync(y, writeNpy({ shape: [rows], data: labels }));
    return { x: path.join(ZOO, name, 'calib.npy'), y };
  }

  for (const name of ['residual', 'cnn_head']) {
    it(`${name}: every pruning method and variant runs; the EC row equals prune + evaluate`, async () => {
      const { x, y } = labelled(name);
      const methods = 'ec,magnitude,obs,ec+sequential+refit2,ec+2:4';
      const rows = await sweepRows(path.join(ZOO, name, 'model.onnx'), x, y, methods, '0.5');
      assert.deepEqual(
        rows.map((r) => r.method),
        ['dense', ...methods.split(',')],
      );
      assert.equal(rows[0].accuracy, 1, 'the labels are the dense model’s own predictions');
      const model = await loadModel(path.join(ZOO, name, 'model.onnx'));
      const weights = model.graph.layers.reduce((n, l) => n + l.weight.data.length, 0);
      assert.equal(rows[1].nonzero, weights - Math.round(weights / 2));
      // the second computation: the prune pipeline and evaluate, on the data through the model's prefix
      const calibration = dataForModel(model, await openDataFile(x));
      const pruned = await prune(model.graph, calibration, { method: 'ec', sparsity: 0.5 });
      const evaluated = await evaluate(pruned.model, calibration, { reference: model.graph });
      assert.ok(
        Math.abs(rows[1].outputMse - evaluated.outputMse!) <= 1e-6 * evaluated.outputMse!,
        `${name}: sweep ${rows[1].outputMse} vs prune + evaluate ${evaluated.outputMse}`,
      );
      assert.ok(rows[1].outputMse < rows[2].outputMse, `${name}: EC below magnitude`);
    });
  }

  for (const name of ['residual', 'cnn_head']) {
    it(`${name}: --finetune-epochs fine-tunes through the graph; its row equals prune + finetune + evaluate`, async () => {
      const { x, y } = labelled(name);
      const file = path.join(ZOO, name, 'model.onnx');
      const report = path.join(tempDir(), 'finetuned');
      const run = await cli([
        'sweep',
        file,
        ...['--calib', x, '--data', x, '--labels', y, '--train', x, '--train-labels', y],
        ...['--methods', 'ec', '--sparsities', '0.5', '--finetune-epochs', '0,2', '--batch-size', '16'],
        ...['--lr', '0.01', '--seed', '3', '--quiet', '-o', report],
      ]);
      assert.equal(run.code, 0, run.stderr);
      const rows: Row[] = JSON.parse(readFileSync(path.join(report, 'results.json'), 'utf8')).rows;
      assert.deepEqual(
        rows.map((r) => [r.method, r.finetuneEpochs]),
        [
          ['dense', 0],
          ['ec', 0],
          ['ec', 2],
        ],
      );
      // the second computation: prune, then the library's finetune with the same settings, then evaluate
      const model = await loadModel(file);
      const data = dataForModel(model, await openDataFile(x, { targets: y }));
      const pruned = await prune(model.graph, data, { method: 'ec', sparsity: 0.5 });
      const tuned = await finetune(pruned.model, data, {
        epochs: 2,
        learningRate: 0.01,
        batchSize: 16,
        seed: 3,
      });
      const evaluated = await evaluate(tuned.model, data, { reference: model.graph });
      assert.ok(
        Math.abs(rows[2].outputMse - evaluated.outputMse!) <= 1e-6 * evaluated.outputMse!,
        `${name}: sweep ${rows[2].outputMse} vs prune + finetune + evaluate ${evaluated.outputMse}`,
      );
      assert.notEqual(rows[2].outputMse, rows[1].outputMse, `${name}: fine-tuning changed the network`);
      // pruned weights stay exactly zero: as many nonzeros as before fine-tuning (or fewer)
      assert.ok(
        rows[2].nonzero <= rows[1].nonzero,
        `${name}: ${rows[2].nonzero} nonzero after, ${rows[1].nonzero} before`,
      );
      assert.equal(
        rows[2].nonzero,
        nonzeroWeightCount(tuned.model),
        `${name}: the fine-tuned row's nonzeros`,
      );
    });
  }

  it('what needs a chain (dense-small, nonlinear) is refused on a graph in one line, exit 2', async () => {
    const { x, y } = labelled('residual');
    for (const extra of [
      ['--methods', 'ec,dense-small'],
      ['--methods', 'nonlinear'],
      ['--methods', 'ec,dense-small', '--finetune-epochs', '0,1'],
    ]) {
      const run = await cli([
        'sweep',
        path.join(ZOO, 'residual', 'model.onnx'),
        '--calib',
        x,
        '--data',
        x,
        '--labels',
        y,
        '--train',
        x,
        '--train-labels',
        y,
        ...extra,
        '--quiet',
        '-o',
        path.join(tempDir(), 'refused'),
      ]);
      assert.equal(run.code, 2, extra.join(' '));
      assert.match(run.stderr.trim(), /^[^\n]*needs? a plain chain[^\n]*leave (it|them) out[^\n]*$/);
    }
  });
});
