import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { EcpruneError } from '../../src/errors.js';
import { readEcsrAsMlp, writeEcsr } from '../../src/io/ecsr.js';
import { ACTIVATION_KINDS, type Activation, applyActivation } from '../../src/model/activations.js';
import { matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import { activateInPlace } from '../../src/runtime/activations.js';
import { float16ToNumber, loadEcsr } from '../../src/runtime/index.js';
import {
  nonzeroIndices,
  scatterThreshold,
  spmv,
  spmvScatter,
  toCsc,
  toKernelCsr,
} from '../../src/runtime/kernels.js';
import { assertClose, dense, inputWithZeros, rng, withAlpha } from './helpers.js';

// ---------------------------------------------------------------------------------------------
// helpers

/** Uniform weights with variance ~2/n_in, so pre-activations stay O(1) through the layers. */
function randomMlp(sizes: number[], act: Activation, seed: number): Mlp {
  const r = rng(seed);
  return {
    layers: sizes.slice(1).map((nOut, l) => {
      const nIn = sizes[l];
      const scale = Math.sqrt(6 / nIn);
      const weight = matrix(
        nOut,
        nIn,
        Float32Array.from({ length: nOut * nIn }, () => (2 * r() - 1) * scale),
      );
      return { weight, bias: Float32Array.from({ length: nOut }, () => r() - 0.5), activation: act };
    }),
  };
}

type Sparsity = 0 | 0.5 | 0.9 | 0.95 | 'rows';

/** Zeroes weights in place at random; 'rows' prunes every third row entirely and half of the rest. */
function prune(mlp: Mlp, sparsity: Sparsity, seed: number): Mlp {
  const r = rng(seed);
  for (const { weight } of mlp.layers) {
    for (let i = 0; i < weight.rows; i++) {
      for (let j = 0; j < weight.cols; j++) {
        const drop = sparsity === 'rows' ? i % 3 === 1 || r() < 0.5 : r() < sparsity;
        if (drop) weight.data[i * weight.cols + j] = 0;
      }
    }
  }
  return mlp;
}

function randomInput(batch: number, n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: batch * n }, () => 4 * r() - 2);
}

/** float16 rounding by a second method: nearest value of the enumerated float16 grid, ties to even bits. */
const HALF_GRID = Array.from({ length: 0x7c00 }, (_, h) => {
  const e = h >> 10;
  const m = h & 0x3ff;
  return e === 0 ? m / 2 ** 24 : (1 + m / 1024) * 2 ** (e - 15);
});
function roundToHalf(v: number): number {
  const a = Math.abs(v);
  let lo = 0;
  let hi = HALF_GRID.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (HALF_GRID[mid] <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - HALF_GRID[lo];
  const dHi = HALF_GRID[hi] - a;
  const h = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return Math.sign(v) * HALF_GRID[h];
}

function roundedToHalf(mlp: Mlp): Mlp {
  return {
    layers: mlp.layers.map((layer) => ({
      ...layer,
      weight: { ...layer.weight, data: layer.weight.data.map(roundToHalf) },
    })),
  };
}

/** Byte offsets of each layer record and its arrays, computed from the layout table in docs/FORMAT-ECSR.md. */
function layout(bytes: Uint8Array) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pad = (n: number) => Math.ceil(n / 4) * 4;
  const valueSize = bytes[12] === 1 ? 4 : 2;
  let at = 16 + (v.getUint16(6, true) & 1 ? pad(4 + v.getUint32(16, true)) : 0);
  return Array.from({ length: v.getUint32(8, true) }, () => {
    const nOut = v.getUint32(at, true);
    const nnz = v.getUint32(at + 8, true);
    const [act, colWidth, rowWidth] = [bytes[at + 12], bytes[at + 13], bytes[at + 14]];
    const rowPtr = at + (act === 2 || act === 7 ? 20 : 16);
    const colIdx = rowPtr + pad((nOut + 1) * rowWidth);
    const values = colIdx + pad(nnz * colWidth);
    const bias = values + pad(nnz * valueSize);
    const record = { start: at, nOut, nnz, colWidth, rowWidth, rowPtr, colIdx, values, bias };
    at = bias + 4 * nOut;
    return record;
  });
}

// ---------------------------------------------------------------------------------------------

describe('.ecsr runtime agrees with the dense forward pass', () => {
  const sparsities: Sparsity[] = [0, 0.5, 0.9, 0.95, 'rows'];
  // 300 inputs → uint16 column indices in layer 0, uint8 in the others
  const sizes = [300, 40, 24, 7];
  ACTIVATION_KINDS.forEach((kind, k) => {
    it(`${kind}: float32, every sparsity, batch 1, 2, 3, 4, 9, 12, 67 and 256`, async () => {
      for (const sparsity of sparsities) {
        const mlp = prune(randomMlp(sizes, withAlpha(kind, 0.2), 100 + k), sparsity, 7);
        const model = loadEcsr(writeEcsr(mlp));
        assert.equal(model.inputSize, 300);
        assert.equal(model.outputSize, 7);
        for (const batch of [1, 2, 3, 4, 9, 12, 67, 256]) {
          const x = randomInput(batch, 300, batch);
          const before = x.slice();
          const y = model.run(x, batch);
          assert.deepEqual(x, before, 'run must not modify its input');
          assertClose(y, await dense(mlp, x, batch), 1e-5, `${kind} sparsity ${sparsity} batch ${batch}`);
        }
      }
    });
  });

  it('runs repeatedly with changing batch sizes (reused buffers hold no stale state)', async () => {
    const mlp = prune(randomMlp([50, 64, 10], { kind: 'relu' }, 3), 0.9, 3);
    const model = loadEcsr(writeEcsr(mlp));
    for (const batch of [256, 1, 5, 1, 64, 3, 256]) {
      const x = randomInput(batch, 50, 11 * batch);
      assertClose(model.run(x, batch), await dense(mlp, x, batch), 1e-5, `batch ${batch}`);
    }
  });

  it('handles a layer with no weights at all (nnz = 0): the output is act(bias)', async () => {
    const mlp = randomMlp([12, 6, 3], { kind: 'tanh' }, 5);
    mlp.layers[1].weight.data.fill(0);
    const model = loadEcsr(writeEcsr(mlp));
    assert.equal(model.layers[1].nnz, 0);
    const x = randomInput(4, 12, 1);
    assertClose(model.run(x, 4), await dense(mlp, x, 4), 1e-6, 'nnz 0');
  });

  it('batch 0 gives an empty output; a wrong input length throws', () => {
    const model = loadEcsr(writeEcsr(randomMlp([5, 3], { kind: 'relu' }, 1)));
    assert.equal(model.run(new Float32Array(0), 0).length, 0);
    assert.throws(() => model.run(new Float32Array(9), 2), /input has 9 values, expected batch 2 x 5/);
    assert.throws(() => model.run(new Float32Array(5), 1.5), /batch must be a non-negative integer/);
  });

  it('loads from an unaligned Uint8Array and from an ArrayBuffer', async () => {
    const mlp = prune(randomMlp([30, 20, 4], { kind: 'gelu' }, 9), 0.5, 9);
    const bytes = writeEcsr(mlp);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const x = randomInput(3, 30, 2);
    const expected = await dense(mlp, x, 3);
    assertClose(loadEcsr(shifted.subarray(1)).run(x, 3), expected, 1e-5, 'unaligned');
    assertClose(loadEcsr(bytes.slice().buffer).run(x, 3), expected, 1e-5, 'ArrayBuffer');
  });
});

describe('batch 1: column scatter and row gather', () => {
  const zeroFractions = [0, 0.5, 0.9, 1];

  it('both kernels agree with the dense forward pass of one layer, for every index width', async () => {
    // n_in, n_out, sparsity, and the column index and row pointer widths the file stores (bytes);
    // the last layer has more than 65536 outputs: 32-bit row indices in the CSC copy
    const shapes: [number, number, Sparsity, number, number][] = [
      [100, 2, 0.5, 1, 1],
      [300, 40, 0.5, 2, 2],
      [70000, 3, 0.5, 4, 4],
      [5, 70000, 0.9, 1, 2],
    ];
    for (const [nIn, nOut, sparsity, colWidth, rowWidth] of shapes) {
      const mlp = prune(randomMlp([nIn, nOut], { kind: 'identity' }, nIn), sparsity, nOut);
      const [layer] = loadEcsr(writeEcsr(mlp)).layers;
      assert.deepEqual(
        [layer.colIdx.BYTES_PER_ELEMENT, layer.rowPtr.BYTES_PER_ELEMENT],
        [colWidth, rowWidth],
        `${nOut}x${nIn}: stored index widths`,
      );
      const csr = toKernelCsr(layer);
      const csc = toCsc(csr);
      const y = new Float32Array(nOut);
      for (const zeros of zeroFractions) {
        const x = inputWithZeros(nIn, zeros, nOut);
        const expected = await dense(mlp, x, 1);
        const what = `${nOut}x${nIn}, ${zeros} zeros`;
        spmv(csr, x, y);
        assertClose(y, expected, 1e-5, `gather ${what}`);
        y.fill(Number.NaN);
        const nonzero = new Int32Array(nIn);
        const count = nonzeroIndices(x, nIn, nonzero);
        spmvScatter(csc, x, nonzero, count, y, new Float64Array(nOut).fill(Number.NaN));
        assertClose(y, expected, 1e-5, `scatter ${what}`);
      }
    }
  });

  it('lists the non-zero inputs: ±0 are zero; NaN, infinities and subnormals are not', () => {
    const values = [0, -0, 1, -1, Number.NaN, Infinity, -Infinity, 1e-45, -1e-45, 3.5, 0, -0];
    const backing = new Float32Array(values.length + 3);
    // a view at an offset: the bits must be read from the view's own position
    const x = backing.subarray(3);
    x.set(values);
    backing.fill(7, 0, 3);
    const nonzero = new Int32Array(values.length);
    const count = nonzeroIndices(x, values.length, nonzero);
    const expected = values.flatMap((v, j) => (v === 0 ? [] : [j]));
    assert.deepEqual(Array.from(nonzero.subarray(0, count)), expected);
    // only the first n entries are looked at
    assert.equal(nonzeroIndices(x, 3, nonzero), 1);
  });

  it('the CSC copy holds the same weights as the CSR, column by column with rows ascending', () => {
    const mlp = prune(randomMlp([30, 20], { kind: 'relu' }, 4), 'rows', 4);
    const csc = toCsc(toKernelCsr(loadEcsr(writeEcsr(mlp)).layers[0]));
    const { data } = mlp.layers[0].weight;
    for (let j = 0; j < 30; j++) {
      const rows: number[] = [];
      for (let i = 0; i < 20; i++) if (data[i * 30 + j] !== 0) rows.push(i);
      const start = csc.colPtr[j];
      assert.deepEqual(Array.from(csc.rowIdx.subarray(start, csc.colPtr[j + 1])), rows, `column ${j}`);
      for (const [k, i] of rows.entries())
        assert.equal(csc.values[start + k], data[i * 30 + j], `[${i}, ${j}]`);
    }
  });

  ACTIVATION_KINDS.forEach((kind, k) => {
    for (const valueType of ['float32', 'float16'] as const) {
      it(`${kind}, ${valueType}: inputs with no, half, 90% and only zeros take both paths and match the dense forward`, async () => {
        const mlp = prune(randomMlp([300, 40, 24, 7], withAlpha(kind, 0.2), 200 + k), 0.5, 3);
        const bytes = writeEcsr(mlp, { valueType });
        const model = loadEcsr(bytes);
        // float16 rounds the weights: the truth is the dense forward of the rounded model
        const reference = valueType === 'float32' ? mlp : roundedToHalf(mlp);
        const threshold = scatterThreshold(toKernelCsr(model.layers[0]));
        for (const zeros of zeroFractions) {
          const x = inputWithZeros(300, zeros, 10 * k + zeros * 10);
          // the first layer scatters for the sparse inputs and gathers for the dense ones
          assert.equal(
            nonzeroIndices(x, 300, new Int32Array(300)) < threshold,
            zeros >= 0.5,
            `threshold ${threshold}, ${zeros} zeros`,
          );
          assertClose(
            model.run(x, 1),
            await dense(reference, x, 1),
            1e-5,
            `${kind} ${valueType} ${zeros} zeros`,
          );
        }
      });
    }
  });

  it('alternates sparse and dense inputs and batch sizes on one model (no state leaks between paths)', async () => {
    const mlp = prune(randomMlp([300, 64, 32, 5], { kind: 'relu' }, 12), 0.5, 12);
    const model = loadEcsr(writeEcsr(mlp));
    const calls: [number, number][] = [
      [1, 0.9],
      [1, 0],
      [3, 0.9],
      [1, 1],
      [1, 0.9],
      [1, 0.5],
      [8, 0],
      [1, 0.9],
    ];
    for (const [c, [batch, zeros]] of calls.entries()) {
      const x = inputWithZeros(batch * 300, zeros, c);
      assertClose(
        model.run(x, batch),
        await dense(mlp, x, batch),
        1e-5,
        `call ${c}: batch ${batch}, ${zeros} zeros`,
      );
    }
  });

  it('more than 65536 inputs and outputs, sparse and dense inputs', async () => {
    // 32-bit column indices in layers 0 and 2, 32-bit row indices in layer 1's CSC copy
    const mlp = prune(randomMlp([65537, 6, 65537, 3], { kind: 'relu' }, 5), 0.5, 5);
    // three hidden units always 0, so that layer 1 always scatters
    mlp.layers[0].bias.fill(-100, 0, 3);
    const model = loadEcsr(writeEcsr(mlp));
    const thresholds = model.layers.map((layer) => scatterThreshold(toKernelCsr(layer)));
    assert.ok(thresholds[1] > 3, `layer 1 scatters below ${thresholds[1]} non-zero inputs`);
    for (const zeros of [0, 0.9]) {
      const x = inputWithZeros(65537, zeros, 1);
      assertClose(model.run(x, 1), await dense(mlp, x, 1), 1e-5, `${zeros} zeros`);
    }
  });
});

describe('runtime activations', () => {
  it('agree with src/model/activations.ts to 1e-6 on [-30, 30]', () => {
    const z = Float32Array.from({ length: 6001 }, (_, i) => -30 + i * 0.01);
    for (const kind of ACTIVATION_KINDS) {
      const act = withAlpha(kind, kind === 'elu' ? 1.3 : 0.05);
      const expected = applyActivation(act, z, new Float32Array(z.length));
      const actual = z.slice();
      activateInPlace(act, actual, actual.length);
      for (let i = 0; i < z.length; i++) {
        assert.ok(
          Math.abs(actual[i] - expected[i]) <= 1e-6,
          `${kind}(${z[i]}) = ${actual[i]}, expected ${expected[i]}`,
        );
      }
    }
  });
});

describe('float16 values', () => {
  it('decodes known bit patterns', () => {
    const cases: [number, number][] = [
      [0x0000, 0],
      [0x3c00, 1],
      [0xc000, -2],
      [0x7bff, 65504],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14],
      [0x3555, 0.333251953125],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    for (const [bits, value] of cases) assert.equal(float16ToNumber(bits), value, `0x${bits.toString(16)}`);
    assert.ok(Number.isNaN(float16ToNumber(0x7e00)));
  });

  it('stores the weights rounded to nearest-even float16 and runs them like the dense forward of the rounded model', async () => {
    for (const kind of ACTIVATION_KINDS) {
      const mlp = prune(randomMlp([300, 33, 8], withAlpha(kind, 0.1), 21), 0.9, 4);
      // exercise subnormals, ties and tiny weights that round to zero
      const w0 = mlp.layers[0].weight.data;
      w0.set([3e-8, -1e-7, 2 ** -25, 2 ** -24 * 1.5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65500, -0.1], 0);
      const bytes = writeEcsr(mlp, { valueType: 'float16' });
      const rounded = roundedToHalf(mlp);
      assert.deepEqual(readEcsrAsMlp(bytes).layers[0].weight.data, rounded.layers[0].weight.data, kind);
      const model = loadEcsr(bytes);
      assert.equal(model.valueType, 'float16');
      for (const batch of [1, 3, 256]) {
        const x = randomInput(batch, 300, batch);
        assertClose(model.run(x, batch), await dense(rounded, x, batch), 1e-5, `${kind} f16 batch ${batch}`);
      }
    }
  });

  it('rejects weights outside the float16 range instead of writing infinity', () => {
    const mlp = randomMlp([4, 2], { kind: 'relu' }, 1);
    mlp.layers[0].weight.data[5] = 70000;
    assert.throws(
      () => writeEcsr(mlp, { valueType: 'float16' }),
      (e: unknown) =>
        e instanceof EcpruneError &&
        /layer 0: weight \[1, 1\] = 70000 is outside the float16 range/.test(e.message),
    );
  });
});

describe('writeEcsr / readEcsrAsMlp', () => {
  it('round-trips float32 weights, biases, activations and metadata exactly', () => {
    ACTIVATION_KINDS.forEach((kind, k) => {
      const mlp = prune(randomMlp([70, 30, 5], withAlpha(kind, kind === 'elu' ? 1 : 0.01), k), 'rows', k);
      const metadata = { source: 'mnist.onnx', note: 'päärynä ✓', empty: '' };
      const bytes = writeEcsr(mlp, { metadata });
      const back = readEcsrAsMlp(bytes, 'm.ecsr');
      assert.equal(back.layers.length, 2);
      back.layers.forEach((layer, l) => {
        assert.deepEqual(layer.weight, mlp.layers[l].weight, `${kind} layer ${l} weight`);
        assert.deepEqual(layer.bias, mlp.layers[l].bias, `${kind} layer ${l} bias`);
        assert.deepEqual(layer.activation, mlp.layers[l].activation, `${kind} layer ${l} activation`);
      });
      assert.deepEqual(loadEcsr(bytes).metadata, metadata);
    });
  });

  it('refuses to densify a file whose declared shape is beyond the dense budget, before allocating it', () => {
    const mlp = prune(randomMlp([40, 20, 5], { kind: 'relu' }, 3), 0.9, 3);
    const bytes = writeEcsr(mlp);
    // a forged n_in of layer 0 (offset 20: header 16 bytes, then n_out, n_in): 2^20 inputs, still a valid sparse file
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(20, 2 ** 20, true);
    assert.equal(loadEcsr(bytes).layers[0].nIn, 2 ** 20, 'the runtime reads the sparse form');
    assert.throws(
      () => readEcsrAsMlp(bytes, 'forged.ecsr', { maxDenseWeights: 1_000_000 }),
      (e: unknown) =>
        e instanceof EcpruneError &&
        e.code === 'limit' &&
        /^forged\.ecsr: the layers \(20x1048576, 5x20\) hold 20971620 weights once dense, more than the reader's budget of 1000000/.test(
          e.message,
        ),
      'refused with the declared shapes',
    );
    const exact = readEcsrAsMlp(writeEcsr(mlp), 'm.ecsr', { maxDenseWeights: 40 * 20 + 20 * 5 });
    assert.deepEqual(exact.layers[0].weight, mlp.layers[0].weight, 'a file exactly at the budget reads');
  });

  it('stores alpha as float32 and reads back the shortest decimal with the same float32', () => {
    const mlp = randomMlp([3, 2], { kind: 'leaky_relu', alpha: 0.123456789 }, 1);
    const back = readEcsrAsMlp(writeEcsr(mlp)).layers[0].activation;
    assert.deepEqual(back, { kind: 'leaky_relu', alpha: 0.12345679 });
    assert.equal(Math.fround(0.12345679), Math.fround(0.123456789));
  });

  it('writes the example from docs/FORMAT-ECSR.md byte for byte, and runs it', () => {
    const example = Uint8Array.from(
      `45 43 53 52 01 00 00 00 01 00 00 00 01 00 00 00
       01 00 00 00 02 00 00 00 01 00 00 00 00 01 01 00
       00 01 00 00 01 00 00 00 00 00 c0 3f 00 00 80 3e`
        .trim()
        .split(/\s+/)
        .map((h) => Number.parseInt(h, 16)),
    );
    const mlp: Mlp = {
      layers: [
        {
          weight: matrix(1, 2, Float32Array.of(0, 1.5)),
          bias: Float32Array.of(0.25),
          activation: { kind: 'identity' },
        },
      ],
    };
    assert.deepEqual(writeEcsr(mlp), example);
    assert.deepEqual(loadEcsr(example).run(Float32Array.of(10, 2), 1), Float32Array.of(3.25));
  });

  it('picks the smallest index types (checked in the file header)', () => {
    const cases = [
      { nIn: 256, nOut: 1, col: 1, row: 1 }, // nnz 256 > 255 → row pointers uint16
      { nIn: 255, nOut: 1, col: 1, row: 1 },
      { nIn: 257, nOut: 1, col: 2, row: 2 },
      { nIn: 65536, nOut: 1, col: 2, row: 4 },
      { nIn: 65537, nOut: 1, col: 4, row: 4 },
      { nIn: 200, nOut: 2, col: 1, row: 2 },
    ];
    for (const c of cases) {
      const mlp = randomMlp([c.nIn, c.nOut], { kind: 'relu' }, 1);
      const nnz = c.nIn * c.nOut;
      const expectedRow = nnz <= 255 ? 1 : nnz <= 65535 ? 2 : 4;
      const [record] = layout(writeEcsr(mlp));
      assert.equal(record.nnz, nnz);
      assert.equal(record.colWidth, c.col, `n_in ${c.nIn}: column index width`);
      assert.equal(record.rowWidth, expectedRow, `nnz ${nnz}: row pointer width`);
    }
    // nnz decides the row pointer width: 255 stored weights fit uint8
    const small = randomMlp([256, 1], { kind: 'relu' }, 1);
    small.layers[0].weight.data[0] = 0;
    assert.equal(layout(writeEcsr(small))[0].rowWidth, 1);
  });

  it('is at least 4x smaller than dense float32 at 90% sparsity (784-300-100-10, magnitude pruned)', () => {
    const mlp = randomMlp([784, 300, 100, 10], { kind: 'relu' }, 2);
    for (const { weight } of mlp.layers) {
      const threshold = Float32Array.from(weight.data, Math.abs).sort()[Math.floor(0.9 * weight.data.length)];
      for (let i = 0; i < weight.data.length; i++)
        if (Math.abs(weight.data[i]) < threshold) weight.data[i] = 0;
    }
    const denseBytes =
      4 * mlp.layers.reduce((n, layer) => n + layer.weight.data.length + layer.bias.length, 0);
    const size = writeEcsr(mlp).length;
    assert.ok(4 * size <= denseBytes, `file ${size} bytes, dense ${denseBytes} bytes`);
    assert.ok(4 * writeEcsr(mlp, { valueType: 'float16' }).length <= denseBytes);
  });
});

describe('corrupt files are rejected', () => {
  const mlp = prune(randomMlp([20, 6, 3], { kind: 'elu', alpha: 1 }, 8), 0.5, 8);
  const good = writeEcsr(mlp, { metadata: { a: 'b' } });
  const [layer0] = layout(good);
  const corrupt = (edit: (b: Uint8Array, v: DataView) => void) => {
    const b = good.slice();
    edit(b, new DataView(b.buffer));
    return b;
  };
  const rejects = (bytes: Uint8Array, message: RegExp) => {
    assert.throws(() => loadEcsr(bytes), message);
    assert.throws(
      () => readEcsrAsMlp(bytes, 'bad.ecsr'),
      (e: unknown) => e instanceof EcpruneError && e.code === 'input' && e.message.startsWith('bad.ecsr: '),
    );
  };

  it('sanity: the uncorrupted file loads', () => {
    assert.equal(loadEcsr(good).layers.length, 2);
  });

  it('bad magic', () =>
    rejects(
      corrupt((b) => b.set([0x50, 0x4b], 0)),
      /not an .ecsr file: the magic is '50 4b 53 52'/,
    ));
  it('unsupported version', () =>
    rejects(
      corrupt((_, v) => v.setUint16(4, 3, true)),
      /unsupported .ecsr version 3/,
    ));
  it('a version-2 value type in a version-1 file, and a version-1 value type in a version-2 file', () => {
    rejects(
      corrupt((b) => (b[12] = 3)),
      /unknown value type 3 for version 1/,
    );
    rejects(
      corrupt((_, v) => v.setUint16(4, 2, true)),
      /unknown value type 1 for version 2/,
    );
  });
  it('unknown flags', () =>
    rejects(
      corrupt((_, v) => v.setUint16(6, 3, true)),
      /unknown .ecsr flags/,
    ));
  it('unknown value type', () =>
    rejects(
      corrupt((b) => (b[12] = 3)),
      /unknown value type 3/,
    ));

  it('truncated at every length', () => {
    for (let n = 0; n < good.length; n++)
      assert.throws(() => loadEcsr(good.subarray(0, n)), Error, `length ${n}`);
    rejects(
      good.subarray(0, good.length - 1),
      /truncated .ecsr file: layer 1: the 3x6 layer with \d+ weights needs/,
    );
  });

  it('trailing bytes', () => {
    const longer = new Uint8Array(good.length + 4);
    longer.set(good);
    rejects(longer, /4 unexpected bytes after the last layer/);
  });

  it('column index out of range', () => {
    rejects(
      corrupt((b) => b.set([20], layer0.colIdx + layer0.nnz - 1)),
      new RegExp(`layer 0: col_idx\\[${layer0.nnz - 1}\\] = 20 is out of range \\(n_in = 20\\)`),
    );
  });

  it('column indices not increasing within a row', () => {
    rejects(
      corrupt((b) => b.set([b[layer0.colIdx + 1], b[layer0.colIdx]], layer0.colIdx)),
      /layer 0: col_idx\[1\] = .* is not above the previous index/,
    );
  });

  it('row_ptr not monotone', () => {
    // row_ptr is uint8 here (nnz < 256): make row_ptr[2] smaller than row_ptr[1]
    assert.equal(layer0.rowWidth, 1);
    rejects(
      corrupt((b) => (b[layer0.rowPtr + 2] = b[layer0.rowPtr + 1] - 1)),
      /layer 0: row_ptr is not monotone: row_ptr\[2\] = \d+ < row_ptr\[1\]/,
    );
  });

  it('row_ptr not ending at nnz', () => {
    rejects(
      corrupt((b) => (b[layer0.rowPtr + 6] -= 1)),
      /layer 0: row_ptr\[6\] is \d+, expected nnz = \d+/,
    );
  });

  it('layer shapes that do not chain', () => {
    const [, layer1] = layout(good);
    rejects(
      corrupt((_, v) => v.setUint32(layer1.start + 4, 7, true)),
      /layer 1: takes 7 inputs but layer 0 has 6 outputs/,
    );
  });

  it('non-finite values, non-zero padding, bad metadata', () => {
    rejects(
      corrupt((_, v) => v.setFloat32(layer0.bias, Number.NaN, true)),
      /layer 0: bias\[0\] is NaN/,
    );
    rejects(
      corrupt((b) => (b[layer0.rowPtr + 7] = 1)),
      /layer 0: non-zero padding byte/,
    );
    rejects(
      corrupt((b) => (b[20] = 0x5b)),
      /metadata block is not valid UTF-8 JSON/,
    );
  });
});

it('src/runtime imports nothing from outside src/runtime', () => {
  const dir = new URL('../../src/runtime/', import.meta.url);
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const source = readFileSync(new URL(file, dir), 'utf8');
    for (const [, specifier] of source.matchAll(/(?:import|export)[^'"]*from\s*['"]([^'"]+)['"]/g)) {
      assert.ok(/^\.\/[\w-]+\.js$/.test(specifier), `${file} imports '${specifier}'`);
    }
    assert.ok(!/import\(/.test(source), `${file} has a dynamic import`);
  }
});
