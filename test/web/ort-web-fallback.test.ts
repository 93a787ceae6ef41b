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
  // onnxruntime-web's own console.error lines ("Aborted(CompileError ...)"), kept out of the test
  // output where they would read like a crash, and checked to name the cause
  const printed: string[] = [];
  const { error } = console;
  console.error = (...args: unknown[]) => printed.push(args.join(' '));
  let gemm: Awaited<ReturnType<typeof createOrtWebGemm>>;
  try {
    gemm = await createOrtWebGemm({
      wasmBinary: new TextEncoder().encode('not WebAssembly'),
      onFallback: (reason) => reasons.push(reason),
    });
  } finally {
    console.error = error;
  }
  assert.equal(gemm, tsGemm);
  assert.equal(reasons.length, 1);
  assert.match(printed.join('\n'), /CompileError/);
});
