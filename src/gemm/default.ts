import type { Gemm } from './gemm.js';
import { tsGemm } from './ts-gemm.js';

/**
 * The backend used when a call does not pass one. The portable TS loop by default; the Node entry
 * point (`ecprune` in Node) installs onnxruntime-node here, a browser app may install onnxruntime-web.
 */
let current: Gemm = tsGemm;

export function defaultGemm(): Gemm {
  return current;
}

export function setDefaultGemm(gemm: Gemm): void {
  current = gemm;
}
