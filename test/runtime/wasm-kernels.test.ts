import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { writeEcsr } from '../../src/io/ecsr.js';
import { ACTIVATION_KINDS, type Activation } from '../../src/model/activations.js';
import { matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import { activateInPlace } from '../../src/runtime/activations.js';
import { parseEcsr } from '../../src/runtime/format.js';
import { loadEcsr } from '../../src/runtime/index.js';
import {
  type KernelCsr,
  nonzeroIndices,
  spmv,
  spmvScatter,
  toCsc,
  toKernelCsr,
} from '../../src/runtime/kernels.js';
import {
  createWasmForward,
  type WasmLayerSource,
  wasmScatterThreshold,
} from '../../src/runtime/wasm-kernels.js';
import { WASM_BATCH_KERNELS_BASE64, WASM_KERNELS_BASE64 } from '../../src/runtime/wasm-kernels-binary.js';
import { assertClose, dense, inputWithZeros, rng, withAlpha } from './helpers.js';

/** Random MLP with a share `keep` of its weights non-zero (at random positions). */
function sparseMlp(sizes: number[], keep: number, act: Activation, seed: number): Mlp {
  const r = rng(seed);
  return {
    layers: sizes.slice(1).map((nOut, l) => {
      const nIn = sizes[l];
      const scale = Math.sqrt(6 / (keep * nIn + 1));
      const data = Float32Array.from({ length: nOut * nIn }, () => (r() < keep ? (2 * r() - 1) * scale : 0));
      return {
        weight: matrix(nOut, nIn, data),
        bias: Float32Array.from({ length: nOut }, () => r() - 0.5),
        activation: act,
      };
    }),
  };
}

/** Equal element by element, NaN equal to NaN (the kernels compute the same sums in the same order). */
function assertSame(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i]) && !(actual[i] === 0 && expected[i] === 0)) {
      assert.fail(`${what}: [${i}] = ${actual[i]}, the JavaScript kernels give ${expected[i]}`);
    }
  }
}

/**
 * Kernel layers of a file, with `scatterBelow` forced (Infinity always scatters, 0 always gathers)
 * or, by default, WebAssembly's cost model.
 */
function kernelLayers(bytes: Uint8Array, scatterBelow?: number): Required<WasmLayerSource>[] {
  return parseEcsr(bytes).layers.map((layer) => {
    const csr = toKernelCsr(layer);
    return { csr, activation: layer.activation, scatterBelow: scatterBelow ?? wasmScatterThreshold(csr) };
  });
}

/** The batch-1 pass on the JavaScript kernels, choosing per layer as `scatterBelow` says. */
function jsForward(layers: readonly Required<WasmLayerSource>[], input: Float32Array): Float32Array {
  let x = input;
  for (const { csr, activation, scatterBelow } of layers) {
    const y = new Float32Array(csr.nOut);
    const nonzero = new Int32Array(csr.nIn);
    const count = scatterBelow > 0 ? nonzeroIndices(x, csr.nIn, nonzero) : csr.nIn;
    if (count < scatterBelow) spmvScatter(toCsc(csr), x, nonzero, count, y, new Float64Array(csr.nOut));
    else spmv(csr, x, y);
    activateInPlace(activation, y, csr.nOut);
    x = y;
  }
  return x;
}

function wasmForward(layers: readonly WasmLayerSource[], input: Float32Array): Float32Array {
  const forwardPass = createWasmForward(layers);
  assert.ok(forwardPass, 'WebAssembly kernels available in Node');
  const y = new Float32Array(layers[layers.length - 1].csr.nOut);
  forwardPass.run(input, y);
  return y;
}

/** Runs `fn` with globalThis.WebAssembly removed. */
function withoutWebAssembly<T>(fn: () => T): T {
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'WebAssembly');
  assert.ok(saved);
  Reflect.deleteProperty(globalThis, 'WebAssembly');
  try {
    return fn();
  } finally {
    Object.defineProperty(globalThis, 'WebAssembly', saved);
  }
}

describe('WebAssembly batch-1 kernels', () => {
  it('the module is under the 4 KB that browsers compile synchronously on the main thread', () => {
    assert.ok(atob(WASM_KERNELS_BASE64).length <= 4096);
  });

  // index widths as stored: u8 columns (≤ 256 inputs), u16, u32 (> 65536 inputs); the kernels read
  // u16 unless an index needs 32 bits, and the CSC's row indices likewise by n_out
  const shapes: [string, number[], number][] = [
    ['u8 columns', [200, 70, 33, 5], 0.3],
    ['u16 columns', [700, 120, 300, 9], 0.1],
    ['u32 columns and > 65536 outputs (u32 CSC rows)', [70000, 3, 66000, 4], 0.002],
  ];
  for (const [what, sizes, keep] of shapes) {
    it(`${what}: gather, scatter and the cost model agree bit for bit with the JS kernels and with the dense forward`, async () => {
      const mlp = sparseMlp(sizes, keep, { kind: 'relu' }, sizes[1]);
      const bytes = writeEcsr(mlp);
      for (const zeros of [0, 0.5, 0.95, 1]) {
        const x = inputWithZeros(sizes[0], zeros, 3);
        const expected = await dense(mlp, x);
        for (const scatterBelow of [undefined, 0, Number.POSITIVE_INFINITY]) {
          const layers = kernelLayers(bytes, scatterBelow);
          const y = wasmForward(layers, x);
          const how = `${what}, ${100 * zeros}% zeros, scatterBelow ${scatterBelow ?? 'fitted'}`;
          assertSame(y, jsForward(layers, x), how);
          assertClose(y, expected, 1e-5, how);
        }
      }
    });
  }

  it('every activation, float32 and float16 values: loadEcsr matches its JavaScript fallback bit for bit', async () => {
    for (const [k, kind] of ACTIVATION_KINDS.entries()) {
      for (const valueType of ['float32', 'float16'] as const) {
        const mlp = sparseMlp([300, 64, 48, 6], 0.1, withAlpha(kind, 0.2), 40 + k);
        const bytes = writeEcsr(mlp, { valueType });
        const fast = loadEcsr(bytes);
        // the WebAssembly pass is made on the first run: the fallback must run without it
        const fallback = loadEcsr(bytes);
        for (const zeros of [0, 0.6, 1]) {
          const x = inputWithZeros(300, zeros, k);
          const expected = withoutWebAssembly(() => fallback.run(x, 1));
          assertSame(fast.run(x, 1), expected, `${kind} ${valueType} ${zeros}`);
          if (valueType === 'float32')
            assertClose(fast.run(x, 1), await dense(mlp, x), 1e-5, `${kind} ${zeros}`);
        }
      }
    }
  });

  it('NaN and infinite inputs reach the outputs as in the JavaScript kernels', () => {
    const bytes = writeEcsr(sparseMlp([64, 40, 5], 0.5, { kind: 'identity' }, 8));
    const x = inputWithZeros(64, 0.9, 2);
    x[3] = Number.NaN;
    x[7] = Number.POSITIVE_INFINITY;
    for (const scatterBelow of [0, Number.POSITIVE_INFINITY]) {
      const layers = kernelLayers(bytes, scatterBelow);
      assertSame(wasmForward(layers, x), jsForward(layers, x), `scatterBelow ${scatterBelow}`);
    }
  });

  it('layers with no weights and rows with no weights give act(bias)', () => {
    const mlp = sparseMlp([20, 9, 4], 0.5, { kind: 'tanh' }, 1);
    mlp.layers[0].weight.data.fill(0, 0, 3 * 20);
    mlp.layers[1].weight.data.fill(0);
    const bytes = writeEcsr(mlp);
    const x = inputWithZeros(20, 0.3, 1);
    for (const scatterBelow of [0, Number.POSITIVE_INFINITY]) {
      const layers = kernelLayers(bytes, scatterBelow);
      assertSame(wasmForward(layers, x), jsForward(layers, x), `scatterBelow ${scatterBelow}`);
    }
  });

  it('a model reuses its memory across calls: sparse and dense inputs in turn, batch 1 and batches', async () => {
    const mlp = sparseMlp([784, 256, 128, 10], 0.1, { kind: 'relu' }, 5);
    const model = loadEcsr(writeEcsr(mlp));
    for (const [i, zeros] of [0, 0.9, 1, 0.5, 0, 0.99].entries()) {
      const x = inputWithZeros(784, zeros, i);
      assertClose(model.run(x, 1), await dense(mlp, x), 1e-5, `${zeros} zeros`);
      if (i === 2) model.run(inputWithZeros(3 * 784, 0.5, 9), 3);
    }
  });

  it('builds a CSC copy only for a layer that scatters', () => {
    const layers = kernelLayers(writeEcsr(sparseMlp([100, 50, 10], 0.5, { kind: 'relu' }, 2)));
    const pass = createWasmForward(layers);
    assert.ok(pass);
    const y = new Float32Array(10);
    pass.run(inputWithZeros(100, 0, 1), y);
    assert.equal(pass.cscBuilt(0), false);
    pass.run(inputWithZeros(100, 0.95, 1), y);
    assert.equal(pass.cscBuilt(0), layers[0].scatterBelow > 5);
  });

  it('falls back to the JavaScript kernels when WebAssembly is missing or refuses the module', async () => {
    const layers = kernelLayers(writeEcsr(sparseMlp([30, 20, 4], 0.5, { kind: 'relu' }, 3)));
    assert.equal(createWasmForward(layers, new Uint8Array([0, 0x61, 0x73, 0x6d, 9, 0, 0, 0])), undefined);
    assert.equal(
      withoutWebAssembly(() => createWasmForward(layers)),
      undefined,
    );
    const mlp = sparseMlp([50, 30, 3], 0.3, { kind: 'sigmoid' }, 4);
    const model = loadEcsr(writeEcsr(mlp));
    for (const zeros of [0, 0.9]) {
      const x = inputWithZeros(50, zeros, 6);
      const y = withoutWebAssembly(() => model.run(x, 1));
      assertClose(y, await dense(mlp, x), 1e-5, `fallback, ${zeros} zeros`);
    }
  });
});

/** The model's outputs for `batch` samples on the WebAssembly kernels and on the JavaScript ones. */
function bothPaths(bytes: Uint8Array, x: Float32Array, batch: number): [Float32Array, Float32Array] {
  const fast = loadEcsr(bytes).run(x, batch);
  const model = loadEcsr(bytes);
  return [fast, withoutWebAssembly(() => model.run(x, batch))];
}

/** assertClose, with NaN only where the expected value is NaN. */
function assertCloseOrNaN(actual: Float32Array, expected: Float32Array, tol: number, what: string): void {
  for (let i = 0; i < expected.length; i++) {
    assert.equal(Number.isNaN(actual[i]), Number.isNaN(expected[i]), `${what}: NaN at [${i}]`);
  }
  const finite = (a: Float32Array) => a.map((v, i) => (Number.isNaN(expected[i]) ? 0 : v));
  assertClose(finite(actual), finite(expected), tol, what);
}

describe('WebAssembly batch kernel', () => {
  it('the module is under the 4 KB that browsers compile synchronously on the main thread', () => {
    assert.ok(atob(WASM_BATCH_KERNELS_BASE64).length <= 4096);
  });

  // u8, u16 and u32 stored column indices; batches below, at and across the 64-sample panels,
  // with and without the 4-sample padding
  const shapes: [string, number[], number, number[]][] = [
    ['u8 columns', [200, 70, 33, 5], 0.3, [2, 3, 16, 64, 67, 130]],
    ['u16 columns', [700, 120, 300, 9], 0.1, [5, 64, 129]],
    ['u32 columns', [70000, 3, 40, 4], 0.002, [2, 67]],
  ];
  for (const [what, sizes, keep, batches] of shapes) {
    it(`${what}: batches agree with the JavaScript panel kernel and the dense forward to float32 rounding`, async () => {
      const mlp = sparseMlp(sizes, keep, { kind: 'relu' }, sizes[1]);
      const bytes = writeEcsr(mlp);
      for (const batch of batches) {
        const x = inputWithZeros(batch * sizes[0], 0.3, batch);
        const [fast, fallback] = bothPaths(bytes, x, batch);
        assertClose(fast, fallback, 1e-5, `${what}, batch ${batch}, against the JavaScript kernel`);
        assertClose(fast, await dense(mlp, x, batch), 1e-5, `${what}, batch ${batch}, against tsGemm`);
      }
    });
  }

  it('every activation, float32 and float16 values', async () => {
    for (const [k, kind] of ACTIVATION_KINDS.entries()) {
      for (const valueType of ['float32', 'float16'] as const) {
        const mlp = sparseMlp([300, 64, 48, 6], 0.1, withAlpha(kind, 0.2), 40 + k);
        const x = inputWithZeros(37 * 300, 0.5, k);
        const [fast, fallback] = bothPaths(writeEcsr(mlp, { valueType }), x, 37);
        assertClose(fast, fallback, 1e-5, `${kind} ${valueType}`);
        if (valueType === 'float32') assertClose(fast, await dense(mlp, x, 37), 1e-5, kind);
      }
    }
  });

  it('NaN and infinite inputs stay in their samples and reach the outputs as in the JavaScript kernel', () => {
    for (const kind of ['identity', 'relu'] as const) {
      const bytes = writeEcsr(sparseMlp([64, 40, 5], 0.5, { kind }, 8));
      const x = inputWithZeros(9 * 64, 0.5, 2);
      x[64 + 3] = Number.NaN;
      x[5 * 64 + 7] = Number.POSITIVE_INFINITY;
      const [fast, fallback] = bothPaths(bytes, x, 9);
      assertCloseOrNaN(fast, fallback, 1e-5, kind);
    }
  });

  it('batches fall back to the JavaScript kernel when the batch module is refused', () => {
    const layers = kernelLayers(writeEcsr(sparseMlp([30, 20, 4], 0.5, { kind: 'relu' }, 3)));
    const refused = new Uint8Array([0, 0x61, 0x73, 0x6d, 9, 0, 0, 0]);
    const pass = createWasmForward(layers, undefined, refused);
    assert.ok(pass);
    assert.equal(pass.runsBatches, false);
    assert.equal(createWasmForward(layers)?.runsBatches, true);
    const x = inputWithZeros(30, 0.2, 1);
    const y = new Float32Array(4);
    pass.run(x, y);
    assertSame(y, jsForward(layers, x), 'batch 1 with the batch module refused');
  });
});

// keep the type import used when the file is type-checked alone
export type { KernelCsr };
