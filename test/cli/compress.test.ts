import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { graphFromMlp } from '../../src/graph/mlp-graph.js';
import { forward } from '../../src/graph/run.js';
import { writeNpy } from '../../src/io/npy.js';
import { writeOnnx } from '../../src/io/onnx.js';
import type { Matrix } from '../../src/model/matrix.js';
import { loadEcsr } from '../../src/runtime/index.js';
import { trainModel } from '../../src/train/train.js';
import { randomMatrix, randomMlp } from '../helpers/random.js';
import { cli, FIXTURES, tempDir } from './run.js';

const SIZES = [16, 32, 32, 4];

function labelsOf(outputs: ArrayLike<number>, rows: number): Int32Array {
  return Int32Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let k = 1; k < 4; k++) if (outputs[4 * r + k] > outputs[4 * r + best]) best = k;
    return best;
  });
}

/** Percent with two decimals, as the table prints accuracies. */
const percent = (fraction: number) => `${(100 * fraction).toFixed(2)} %`;

describe('ecprune compress', () => {
  const dir = tempDir('ecprune-compress-');
  const file = (name: string) => path.join(dir, name);
  let test: { x: Matrix; labels: Int32Array };

  before(async () => {
    // a student trained on the labels of a seeded teacher, and data sets drawn from the same inputs
    const teacher = randomMlp(SIZES, { kind: 'relu' }, 1);
    const sets: Record<string, { x: Matrix; labels: Int32Array }> = {};
    for (const [name, rows, seed] of [
      ['train', 1000, 2],
      ['val', 500, 3],
      ['test', 500, 5],
    ] as const) {
      const x = randomMatrix(rows, SIZES[0], seed);
      const labels = labelsOf((await forward(teacher, x, tsGemm)).data, rows);
      writeFileSync(file(`${name}_x.npy`), writeNpy({ shape: [rows, SIZES[0]], data: x.data }));
      writeFileSync(file(`${name}_y.npy`), writeNpy({ shape: [rows], data: labels }));
      sets[name] = { x, labels };
    }
    test = sets.test;
    const train = inMemoryDataset(sets.train.x, { kind: 'classes', values: sets.train.labels });
    const { model } = await trainModel({ sizes: SIZES, activation: { kind: 'relu' }, seed: 4 }, train, {
      epochs: 30,
      seed: 0,
      gemm: tsGemm,
      learningRate: 3e-3,
    });
    writeFileSync(file('dense.onnx'), writeOnnx(graphFromMlp(model), undefined, {}));
  });

  const dataArgs = () => [
    '--data',
    file('train_x.npy'),
    '--labels',
    file('train_y.npy'),
    '--val-data',
    file('val_x.npy'),
    '--val-labels',
    file('val_y.npy'),
  ];

  it('writes the .ecsr, prints a line per probe and the stages table, and draws a progress bar on a terminal', async () => {
    const out = file('model.ecsr');
    const isTTY = process.stderr.isTTY;
    process.stderr.isTTY = true; // the bar is drawn only on a terminal
    const run = await cli(
      'compress',
      file('dense.onnx'),
      ...dataArgs(),
      '--test-data',
      file('test_x.npy'),
      '--test-labels',
      file('test_y.npy'),
      '--max-accuracy-drop',
      '1',
      '--finetune-epochs',
      '2',
      '--sparsity-probes',
      '2',
      '--calib-samples',
      '200',
      '-o',
      out,
    ).finally(() => {
      process.stderr.isTTY = isTTY;
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /compress\s+\|.*\| \d+% \d+\/\d+ probes/, 'the progress bar');
    const probeLines = run.stdout.split('\n').filter((line) => line.startsWith('compress: probe '));
    assert.ok(probeLines.length >= 4, `a line per probe:\n${run.stdout}`);
    assert.match(
      probeLines[0],
      /^compress: probe 1\/\d+: pruned gradually to 98\.0 % while fine-tuning: validation accuracy [\d.]+ % \((within|outside) the budget\)$/,
    );

    const lines = run.stdout.trimEnd().split('\n');
    const table = lines.slice(lines.findIndex((line) => line.startsWith('stage ')));
    assert.equal(table.length, 4, `header and three stages:\n${run.stdout}`);
    assert.match(
      table[0],
      /^stage\s+stored as\s+sparsity\s+bits\s+bytes\s+ratio\s+val accuracy\s+test accuracy$/,
    );
    const cells = table.slice(1).map((line) => line.split(/ {2,}/));
    assert.deepEqual(
      cells.map((c) => c[0]),
      ['dense', 'pruned + fine-tuned', 'weight sharing + coding'],
    );
    // the bytes and ratio of the last row are the written file's; its test accuracy the runtime's on the test data
    const bytes = statSync(out).size;
    const denseBytes = Number(cells[0][4].replaceAll(',', ''));
    assert.equal(cells[2][4], bytes.toLocaleString('en'));
    assert.equal(cells[2][5], `${(denseBytes / bytes).toFixed(1)}x`);
    const runtime = loadEcsr(readFileSync(out));
    const predicted = labelsOf(runtime.run(test.x.data, test.x.rows), test.x.rows);
    const accuracy = predicted.reduce((n, label, r) => n + +(label === test.labels[r]), 0) / test.x.rows;
    assert.equal(cells[2][7], percent(accuracy));
    assert.equal(cells[2][3], /, (\d+)-bit codebooks/.exec(run.stdout)?.[1], 'the bits of the summary line');
  });

  it('refuses bad input with one line and exit 2, before any work and without writing', async () => {
    const out = file('bad.ecsr');
    const cases: [string[], RegExp][] = [
      // a graph the runtime cannot run: refused before the (missing) data is read
      [
        [
          path.join(FIXTURES, 'zoo', 'residual', 'model.onnx'),
          '--data',
          file('missing.npy'),
          '--labels',
          file('missing.npy'),
        ],
        /compress \(the \.ecsr runtime\) needs a plain chain of fully-connected layers/,
      ],
      [
        [file('dense.onnx'), ...dataArgs(), '--max-accuracy-drop', '-1'],
        /--max-accuracy-drop.*expected accuracy points from 0 to 100/,
      ],
      [[file('dense.onnx'), ...dataArgs().slice(0, -2)], /give --val-data and --val-labels together/],
      [
        [file('dense.onnx'), ...dataArgs(), '--validation', '0.2'],
        /--val-data\/--val-labels or --validation <fraction>, not both/,
      ],
      [
        [file('dense.onnx'), ...dataArgs(), '--min-bits', '6', '--max-bits', '4'],
        /--min-bits 6 is above --max-bits 4/,
      ],
      [[file('dense.onnx'), ...dataArgs(), '--max-bits', '9'], /--max-bits.*expected 2 to 8 bits/],
      [[file('dense.onnx'), '--data', file('train_x.npy'), '--labels', file('train_x.npy')], /train_x\.npy/],
    ];
    for (const [args, message] of cases) {
      const run = await cli('compress', ...args, '-o', out);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.equal(run.stderr.trimEnd().split('\n').length, 1, `one line: ${run.stderr}`);
      assert.equal(existsSync(out), false, 'nothing written');
    }
    const overwrite = await cli('compress', file('dense.onnx'), ...dataArgs(), '-o', file('train_x.npy'));
    assert.equal(overwrite.code, 2);
    assert.match(overwrite.stderr, /is also an input/);
  });
});
