import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readEcsrAsMlp, writeEcsr } from '../../src/io/ecsr.js';
import { matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import { dequantizeMlp, quantizeCodebook, quantizeInt8 } from '../../src/quantize/quantize.js';
import { parseEcsr } from '../../src/runtime/format.js';
import { loadEcsr, type QuantizedValues } from '../../src/runtime/index.js';
import { assertClose, dense, inputWithZeros, rng } from './helpers.js';

/** A random MLP keeping a share `keep` of its weights; `rowsDense` rows keep every weight (LEB128 lengths ≥ 128). */
function sparseMlp(sizes: number[], keep: number, seed: number, rowsDense = 0): Mlp {
  const r = rng(seed);
  return {
    layers: sizes.slice(1).map((nOut, l) => {
      const nIn = sizes[l];
      const data = Float32Array.from({ length: nOut * nIn }, (_, p) =>
        Math.floor(p / nIn) < rowsDense || r() < keep ? (2 * r() - 1) / Math.sqrt(keep * nIn + 1) : 0,
      );
      return {
        weight: matrix(nOut, nIn, data),
        bias: Float32Array.from({ length: nOut }, () => r() - 0.5),
        activation:
          l === sizes.length - 2 ? { kind: 'leaky_relu' as const, alpha: 0.1 } : { kind: 'relu' as const },
      };
    }),
  };
}

const masksOf = (mlp: Mlp) => mlp.layers.map((l) => Uint8Array.from(l.weight.data, (w) => +(w !== 0)));

function quantizations(mlp: Mlp): [string, QuantizedValues[]][] {
  const masks = masksOf(mlp);
  return [
    ['int8', mlp.layers.map((l, i) => quantizeInt8(l.weight, masks[i]))],
    ...[2, 4, 5, 8].map((bits): [string, QuantizedValues[]] => [
      `codebook ${bits} bits`,
      mlp.layers.map((l, i) => quantizeCodebook(l.weight, masks[i], { bits, seed: i })),
    ]),
  ];
}

describe('.ecsr version 2 (quantised, entropy-coded)', () => {
  // u8 and u16 column indices in version 1 terms; gaps ≥ 255 (escape runs) and rows ≥ 128 weights
  const shapes: [string, number[], number, number][] = [
    ['small', [40, 30, 5], 0.3, 0],
    ['long gaps and long rows', [1500, 200, 10], 0.01, 3],
  ];
  for (const [what, sizes, keep, rowsDense] of shapes) {
    it(`${what}: the runtime's outputs equal the dequantised model's to 1e-5, batch 1 and batches`, async () => {
      const mlp = sparseMlp(sizes, keep, sizes[0], rowsDense);
      for (const [how, quantized] of quantizations(mlp)) {
        const bytes = writeEcsr(mlp, { quantized, metadata: { source: 'test' } });
        const parsed = parseEcsr(bytes);
        assert.equal(parsed.valueType, how === 'int8' ? 'int8' : 'codebook');
        assert.deepEqual(parsed.metadata, { source: 'test' });
        const reference = dequantizeMlp(mlp, masksOf(mlp), quantized);
        // the decoded weights are the dequantised ones exactly, at the same positions
        const back = readEcsrAsMlp(bytes);
        back.layers.forEach((layer, l) => {
          assert.deepEqual(layer.weight.data, reference.layers[l].weight.data, `${how}: layer ${l} weights`);
          assert.deepEqual(layer.activation, mlp.layers[l].activation);
        });
        const model = loadEcsr(bytes);
        for (const batch of [1, 7]) {
          const x = inputWithZeros(batch * sizes[0], 0.5, batch);
          assertClose(
            model.run(x, batch),
            await dense(reference, x, batch),
            1e-5,
            `${what}, ${how}, batch ${batch}`,
          );
        }
      }
    });
  }

  it('codebook files are far smaller than version 1 float16 at 90 % sparsity', () => {
    const mlp = sparseMlp([784, 300, 100, 10], 0.1, 3);
    const masks = masksOf(mlp);
    const v1 = writeEcsr(mlp, { valueType: 'float16' }).length;
    const v2 = writeEcsr(mlp, {
      quantized: mlp.layers.map((l, i) => quantizeCodebook(l.weight, masks[i], { bits: 4 })),
    }).length;
    // 4-bit values and ~4-bit gaps against 16-bit values and 16-bit indices
    assert.ok(v2 < v1 / 2.5, `v2 ${v2} bytes, v1 float16 ${v1} bytes`);
  });

  it('refuses inconsistent quantised values when writing', () => {
    const mlp = sparseMlp([10, 4, 2], 0.5, 1);
    const masks = masksOf(mlp);
    const int8 = mlp.layers.map((l, i) => quantizeInt8(l.weight, masks[i]));
    const codebook = mlp.layers.map((l, i) => quantizeCodebook(l.weight, masks[i], { bits: 2 }));
    assert.throws(() => writeEcsr(mlp, { quantized: [int8[0], codebook[1]] }), /same value type/);
    assert.throws(() => writeEcsr(mlp, { quantized: int8.slice(0, 1) }), /quantised layers/);
    const short = { ...int8[0], codes: int8[0].codes.subarray(1) };
    assert.throws(() => writeEcsr(mlp, { quantized: [short, int8[1]] }), /int8 codes for/);
  });

  it('refuses forged and corrupt version-2 files with a message', () => {
    const mlp = sparseMlp([40, 30, 5], 0.3, 2);
    const masks = masksOf(mlp);
    const bytes = writeEcsr(mlp, {
      quantized: mlp.layers.map((l, i) => quantizeCodebook(l.weight, masks[i], { bits: 3 })),
    });
    const withByte = (at: number, value: number) => {
      const copy = bytes.slice();
      copy[at] = value;
      return copy;
    };
    assert.throws(() => loadEcsr(withByte(12, 1)), /value type 1 for version 2/);
    assert.throws(() => loadEcsr(withByte(16 + 13, 9)), /invalid bits 9/);
    assert.throws(() => loadEcsr(withByte(4, 3)), /unsupported .ecsr version 3/);
    // a layer announcing 4 billion weights: refused from the stream sizes, before any allocation
    const forged = bytes.slice();
    new DataView(forged.buffer).setUint32(16 + 8, 0xffffffff, true);
    assert.throws(() => loadEcsr(forged), /exceeds|value symbols/);
    for (const cut of [20, 40, bytes.length - 8]) assert.throws(() => loadEcsr(bytes.subarray(0, cut)));
  });
});
