/**
 * When onnxruntime-web cannot start, createOrtWebGemm says why and returns the TS loop. A file of
 * its own: onnxruntime-web remembers a failed start for the rest of the process.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createOrtWebGemm } from '../../src/gemm/ort-web-gemm.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';

it('falls back to the TS loop when the wasm does not load', async () => {
  const reasons: unknown[] = [];
  const gemm = await createOrtWebGemm({
    wasmBinary: new TextEncoder().encode('not WebAssembly'),
    onFallback: (error) => reasons.push(error),
  });
  assert.equal(gemm, tsGemm);
  assert.equal(reasons.length, 1);
});
