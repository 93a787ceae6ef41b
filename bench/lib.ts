/**
 * Shared pieces of the benchmark harness (bench/run.ts, bench/score-once.ts): the seeded random
 * networks and data written as .npy, FLOP counts, small statistics.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRandom } from '../src/data/random.js';
import { readNpy, writeNpy } from '../src/io/npy.js';
import { type Activation, formatActivation, parseActivation } from '../src/model/activations.js';
import type { Mlp } from '../src/model/mlp.js';

/** A random ReLU MLP with He-normal weights (N(0, 2/n_in)) and small biases (N(0, 0.01²)), seeded. */
export function heMlp(sizes: readonly number[], seed: number): Mlp {
  const random = createRandom(seed);
  return {
    layers: sizes.slice(1).map((nOut, l) => {
      const nIn = sizes[l];
      const std = Math.sqrt(2 / nIn);
      const weight = new Float32Array(nOut * nIn);
      for (let i = 0; i < weight.length; i++) weight[i] = std * random.normal();
      const bias = new Float32Array(nOut);
      for (let i = 0; i < nOut; i++) bias[i] = 0.01 * random.normal();
      const activation: Activation = l === sizes.length - 2 ? { kind: 'identity' } : { kind: 'relu' };
      return { weight: { rows: nOut, cols: nIn, data: weight }, bias, activation };
    }),
  };
}

/** Writes `dir/arch.json` + `W{l}.npy`, `b{l}.npy` (the files bench/reference/ec_torch.py reads). */
export async function writeModelDir(dir: string, mlp: Mlp): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [l, layer] of mlp.layers.entries()) {
    await writeAtomic(
      path.join(dir, `W${l}.npy`),
      writeNpy({ shape: [layer.weight.rows, layer.weight.cols], data: layer.weight.data }),
    );
    await writeAtomic(
      path.join(dir, `b${l}.npy`),
      writeNpy({ shape: [layer.bias.length], data: layer.bias }),
    );
  }
  const arch = { activations: mlp.layers.map((layer) => formatActivation(layer.activation)) };
  await writeAtomic(path.join(dir, 'arch.json'), JSON.stringify(arch));
}

export async function readModelDir(dir: string): Promise<Mlp> {
  const arch = JSON.parse(await readFile(path.join(dir, 'arch.json'), 'utf8')) as { activations: string[] };
  const layers = [];
  for (const [l, name] of arch.activations.entries()) {
    const w = readNpy(await readFile(path.join(dir, `W${l}.npy`)));
    const b = readNpy(await readFile(path.join(dir, `b${l}.npy`)));
    const activation = parseActivation(name);
    if (!activation || !(w.data instanceof Float32Array) || !(b.data instanceof Float32Array)) {
      throw new Error(`${dir}: layer ${l} is not a float32 ${name} layer`);
    }
    layers.push({ weight: { rows: w.shape[0], cols: w.shape[1], data: w.data }, bias: b.data, activation });
  }
  return { layers };
}

/** A C-order float32 .npy header (version 1.0) for `shape`, padded to 64 bytes like NumPy's. */
function npyHeader(shape: readonly number[]): Uint8Array {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const out = new Uint8Array(total);
  out.set([0x93, ...new TextEncoder().encode('NUMPY'), 1, 0]);
  new DataView(out.buffer).setUint16(8, total - 10, true);
  out.set(new TextEncoder().encode(dict.padEnd(total - 11, ' ') + '\n'), 10);
  return out;
}

/**
 * `rows` x `cols` uniform [0, 1) float32 samples (like pixel data), seeded, streamed to `file` in
 * chunks (100,000 x 784 is 314 MB). Reuses the file when it already has the expected size.
 */
export async function ensureData(file: string, rows: number, cols: number, seed: number): Promise<void> {
  const header = npyHeader([rows, cols]);
  const expected = header.length + rows * cols * 4;
  if (existsSync(file) && (await stat(file)).size === expected) return;
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  const handle = await open(temp, 'w');
  try {
    await handle.write(header);
    const random = createRandom(seed);
    const chunkRows = 10_000;
    for (let start = 0; start < rows; start += chunkRows) {
      const chunk = new Float32Array(Math.min(chunkRows, rows - start) * cols);
      for (let i = 0; i < chunk.length; i++) chunk[i] = random.next();
      await handle.write(new Uint8Array(chunk.buffer));
    }
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}

export async function writeAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, bytes);
  await rename(temp, file);
}

/**
 * FLOPs (multiply + add = 2) of the EC statistics of an MLP with widths n_0..n_L, K = n_L outputs,
 * on N samples, counting the GEMMs only:
 *   forward      2 N Σ_{l=1..L} n_l n_{l-1}
 *   sensitivity  2 N K Σ_{l=1..L-1} n_l n_{l+1}      (the backward GEMMs, B·K cotangent rows)
 *   statistics   2 N Σ_{l=1..L} n_l · 2 n_{l-1}      (Sᵀ [A−c | (A−c)²])
 */
export function ecFlops(sizes: readonly number[], samples: number) {
  const L = sizes.length - 1;
  const K = sizes[L];
  let weights = 0;
  for (let l = 1; l <= L; l++) weights += sizes[l] * sizes[l - 1];
  let backward = 0;
  for (let l = 1; l <= L - 1; l++) backward += sizes[l] * sizes[l + 1];
  const forward = 2 * samples * weights;
  const sensitivity = 2 * samples * K * backward;
  const statistics = 2 * samples * 2 * weights;
  return { forward, sensitivity, statistics, total: forward + sensitivity + statistics };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Index of the run whose total is the median (for the phase breakdown of that run). */
export function medianIndex(values: readonly number[]): number {
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  return order[(order.length - 1) >> 1][1];
}

/**
 * Agreement of two score sets (per layer, same shapes): the largest relative error over entries
 * above `floor` x the reference's largest entry, how many of those are off by more than `floor`
 * (relatively), and the normwise relative error ‖a − b‖ / ‖b‖.
 */
export function agreement(
  ours: readonly ArrayLike<number>[],
  reference: readonly ArrayLike<number>[],
  floor = 1e-3,
): { maxRelative: number; normRelative: number; compared: number; over: number; total: number } {
  let maxRef = 0;
  for (const layer of reference)
    for (let i = 0; i < layer.length; i++) maxRef = Math.max(maxRef, Math.abs(layer[i]));
  let maxRelative = 0;
  let diff2 = 0;
  let ref2 = 0;
  let compared = 0;
  let over = 0;
  let total = 0;
  for (const [l, layer] of reference.entries()) {
    const mine = ours[l];
    if (mine.length !== layer.length) throw new Error(`layer ${l}: ${mine.length} vs ${layer.length} scores`);
    for (let i = 0; i < layer.length; i++) {
      const d = mine[i] - layer[i];
      diff2 += d * d;
      ref2 += layer[i] * layer[i];
      total++;
      if (Math.abs(layer[i]) > floor * maxRef) {
        compared++;
        const relative = Math.abs(d) / Math.abs(layer[i]);
        if (relative > floor) over++;
        maxRelative = Math.max(maxRelative, relative);
      }
    }
  }
  return { maxRelative, normRelative: Math.sqrt(diff2 / ref2), compared, over, total };
}

export async function readNpyLayers(
  dir: string,
  prefix: string,
  count: number,
): Promise<(Float32Array | Float64Array)[]> {
  const out: (Float32Array | Float64Array)[] = [];
  for (let l = 0; l < count; l++) {
    const array = readNpy(await readFile(path.join(dir, `${prefix}${l}.npy`)));
    if (!(array.data instanceof Float32Array || array.data instanceof Float64Array)) {
      throw new Error(`${dir}/${prefix}${l}.npy is not float32/float64`);
    }
    out.push(array.data);
  }
  return out;
}

/**
 * The cost of fresh memory on this machine: µs per minor page fault when a new 64 MB buffer is
 * first written (median of 5). Large per-batch allocations pay this once per 4 KiB page.
 */
export function pageFaultCost(): { microsPerFault: number; msPerMB: number } {
  const costs: number[] = [];
  const perMB: number[] = [];
  for (let r = 0; r < 5; r++) {
    const faults = process.resourceUsage().minorPageFault;
    const start = performance.now();
    const buffer = new Float32Array(16 * 1024 * 1024);
    buffer.fill(1);
    const ms = performance.now() - start;
    const count = process.resourceUsage().minorPageFault - faults;
    costs.push((ms * 1000) / Math.max(1, count));
    perMB.push(ms / 64);
  }
  return { microsPerFault: median(costs), msPerMB: median(perMB) };
}
