/**
 * Validation before work and resource limits at the library level: every Dataset refuses a batch
 * size below 1 (instead of looping forever), non-finite data is refused with its count and first
 * index (streamed files batch by batch, with the global sample index), and the memory estimate of
 * pruning refuses models that cannot fit.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { checkPruneMemory, formatBytes, memoryLimit } from '../../src/cli/data.js';
import { type Dataset, firstSamples, inMemoryDataset } from '../../src/data/dataset.js';
import { EcpruneError } from '../../src/errors.js';
import { writeNpy } from '../../src/io/npy.js';
import { writeNpz } from '../../src/io/npz.js';
import { matrix } from '../../src/model/matrix.js';
import { estimatePruneMemory, inputSize, type Mlp, outputSize } from '../../src/model/mlp.js';
import { openDataFile } from '../../src/node/datasets.js';
import { FIXTURES, tempDir } from '../cli/run.js';
import { randomMlp } from '../helpers/random.js';

const root = tempDir('ecprune-limits-');
after(() => rmSync(root, { recursive: true, force: true }));
const fixture = (name: string) => path.join(FIXTURES, 'data', name);

function failsWith(code: string, pattern: RegExp, file?: string) {
  return (error: unknown) => {
    assert.ok(error instanceof EcpruneError, `expected an EcpruneError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (file !== undefined) assert.equal(error.file, file);
    assert.match(error.message, pattern);
    return true;
  };
}

async function collectRows(data: Dataset, batchSize: number): Promise<number[]> {
  const sizes: number[] = [];
  for await (const batch of data.batches(batchSize)) sizes.push(batch.x.rows);
  return sizes;
}

/** What checkPruneMemory reads of a model: its layers and input/output sizes. */
function shapeOf(mlp: Mlp) {
  return { layers: mlp.layers, inputs: inputSize(mlp), outputs: outputSize(mlp) };
}

describe('every Dataset refuses a batch size below 1', () => {
  const idx = path.join(root, 'images-idx3-ubyte');
  const idxGz = path.join(root, 'images-idx3-ubyte.gz');
  copyFileSync(fixture('tiny-images-idx3-ubyte'), idx);
  writeFileSync(idxGz, gzipSync(readFileSync(idx)));
  const csv = fixture('xy_header.csv');
  const cases: [string, () => Promise<Dataset>][] = [
    ['in memory', async () => inMemoryDataset(matrix(3, 2, new Float32Array(6)))],
    ['first samples', async () => firstSamples(inMemoryDataset(matrix(3, 2, new Float32Array(6))), 2)],
    ['streamed .npy', () => openDataFile(fixture('x_5x3.npy'))],
    ['Fortran-order .npy (read whole)', () => openDataFile(fixture('f4_fortran_3x4.npy'))],
    ['.npz', () => openDataFile(fixture('xy_stored.npz'))],
    ['.csv', () => openDataFile(csv)],
    ['streamed IDX', () => openDataFile(idx)],
    ['gzipped IDX', () => openDataFile(idxGz)],
  ];
  for (const [what, open] of cases) {
    it(what, async () => {
      const data = await open();
      for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        // thrown by the call itself, before any iteration
        assert.throws(
          () => data.batches(bad),
          failsWith('usage', /batch size must be a whole number >= 1/),
          `batch size ${bad}`,
        );
      }
      const sizes = await collectRows(data, 2);
      assert.equal(
        sizes.reduce((a, b) => a + b, 0),
        data.samples,
      );
    });
  }
});

describe('non-finite data is refused with its count and first index', () => {
  it('in memory: all of it at once', () => {
    const data = new Float32Array(12);
    data[7] = Number.NaN;
    data[10] = Number.NEGATIVE_INFINITY;
    assert.throws(
      () => inMemoryDataset(matrix(4, 3, data), undefined, 'calib'),
      failsWith('input', /^calib: sample 2, feature 1: NaN in the inputs: 2 non-finite values/, 'calib'),
    );
    assert.equal(
      inMemoryDataset(matrix(4, 3, data), undefined, 'calib', { allowNonFinite: true }).samples,
      4,
    );
    assert.throws(
      () =>
        inMemoryDataset(
          matrix(2, 1, new Float32Array(2)),
          { kind: 'values', values: matrix(2, 2, new Float32Array([0, 1, Number.NaN, 2])) },
          't',
        ),
      failsWith('input', /^t: sample 1, column 0: NaN in the targets/),
    );
  });

  it('streamed: each batch as it is read, with the global sample index, after the earlier batches', async () => {
    const file = path.join(root, 'late-nan.npy');
    const values = Float32Array.from({ length: 100 * 4 }, (_, i) => i);
    values[73 * 4 + 2] = Number.NaN;
    values[75 * 4] = Number.POSITIVE_INFINITY;
    values[95 * 4] = Number.NaN; // in a later batch: not counted, the error comes first
    writeFileSync(file, writeNpy({ shape: [100, 4], data: values }));
    const data = await openDataFile(file);
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const batch of data.batches(30)) seen.push(batch.x.rows);
      })(),
      failsWith(
        'input',
        /sample 73, feature 2: NaN in the inputs: 2 non-finite values \(NaN or ±Infinity\) in samples 60 to 89/,
        file,
      ),
    );
    assert.deepEqual(seen, [30, 30], 'the batches before the bad one were used');
    // integer files cannot hold NaN: nothing to check; allowNonFinite lets floats through
    assert.deepEqual(
      await collectRows(await openDataFile(file, { allowNonFinite: true }), 30),
      [30, 30, 30, 10],
    );
  });

  it('.npz and .csv inputs, and float targets in a file', async () => {
    const npz = path.join(root, 'nan.npz');
    writeFileSync(npz, writeNpz({ x: { shape: [2, 2], data: new Float64Array([1, 2, 3, Number.NaN]) } }));
    await assert.rejects(openDataFile(npz), failsWith('input', /sample 1, feature 1: NaN/, npz));
    const csv = path.join(root, 'huge.csv');
    writeFileSync(csv, 'a,b\n1,2\n3,1e999\n');
    await assert.rejects(openDataFile(csv), failsWith('input', /sample 1, feature 1: Infinity/, csv));
    const targets = path.join(root, 'targets.npy');
    writeFileSync(
      targets,
      writeNpy({
        shape: [5, 2],
        data: Float32Array.from({ length: 10 }, (_, i) => (i === 7 ? Number.NaN : i / 3)),
      }),
    );
    await assert.rejects(
      openDataFile(fixture('x_5x3.npy'), { targets }),
      failsWith('input', /sample 3, column 1: NaN in the targets/, targets),
    );
  });
});

/** A model whose weight arrays report their size without holding it (for the estimate only). */
function hugeMlp(sizes: number[]): Mlp {
  return {
    layers: sizes.slice(1).map((rows, l) => ({
      weight: { rows, cols: sizes[l], data: { length: rows * sizes[l] } as Float32Array },
      bias: { length: rows } as Float32Array,
      activation: { kind: 'relu' as const },
    })),
  };
}

describe('the memory estimate of pruning', () => {
  it('grows with the weights and with the batch', () => {
    const small = hugeMlp([784, 300, 100, 10]);
    const base = estimatePruneMemory(small, 0, 10);
    const weights = 784 * 300 + 300 * 100 + 100 * 10;
    assert.ok(base >= 60 * weights && base <= 100 * weights, `${base} bytes for ${weights} weights`);
    assert.ok(estimatePruneMemory(small, 1000, 10) > base);
    assert.ok(
      estimatePruneMemory(small, 2000, 10) - base > 1.9 * (estimatePruneMemory(small, 1000, 10) - base),
    );
    assert.ok(
      estimatePruneMemory(small, 1000, 10, { lossGradient: true }) > estimatePruneMemory(small, 1000, 10),
    );
  });

  it('counts 8 bytes per stored value of a float64 model (weights, pruned copy, output encoding)', () => {
    const float32 = randomMlp([20, 8, 3], { kind: 'relu' }, 0);
    const float64: Mlp = {
      ...float32,
      layers: float32.layers.map((layer) => ({
        ...layer,
        weight: { ...layer.weight, data: Float64Array.from(layer.weight.data) },
        bias: Float64Array.from(layer.bias),
      })),
    };
    const weights = 20 * 8 + 8 * 3;
    assert.equal(
      estimatePruneMemory(float64, 100, 3) - estimatePruneMemory(float32, 100, 3),
      4 * 4 * weights,
      'four float values per weight, 4 bytes more each',
    );
  });

  it('refuses a 100,000-wide layer before any work, stating the memory it needs', () => {
    const huge = hugeMlp([100_000, 100_000, 10]);
    const saved = process.env.ECPRUNE_MEMORY_LIMIT;
    try {
      process.env.ECPRUNE_MEMORY_LIMIT = '64GiB';
      assert.equal(memoryLimit().bytes, 64 * 2 ** 30);
      assert.throws(
        () => checkPruneMemory(shapeOf(huge), { batchSize: 1000, what: 'pruning', file: 'huge.onnx' }),
        failsWith(
          'limit',
          /^huge\.onnx: pruning 100000-100000-10 \(10,001,000,000 weights\) needs about [\d.]+ GiB of memory \(have 64\.0 GiB: ECPRUNE_MEMORY_LIMIT\)$/,
        ),
      );
      delete process.env.ECPRUNE_MEMORY_LIMIT;
      // without the variable: the machine's memory (or the container's limit)
      assert.ok(memoryLimit().bytes > 0);
      assert.throws(
        () => checkPruneMemory(shapeOf(huge), { batchSize: 1000, what: 'pruning' }),
        failsWith('limit', /needs about/),
      );
      checkPruneMemory(shapeOf(hugeMlp([784, 300, 100, 10])), {
        batchSize: 1000,
        samples: 60_000,
        what: 'pruning',
      });
    } finally {
      if (saved === undefined) delete process.env.ECPRUNE_MEMORY_LIMIT;
      else process.env.ECPRUNE_MEMORY_LIMIT = saved;
    }
  });

  it('formats sizes in binary units', () => {
    assert.equal(formatBytes(512), '512 bytes');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(3 * 2 ** 30), '3.0 GiB');
    assert.equal(formatBytes(2 ** 50), '1.0 PiB');
  });
});
