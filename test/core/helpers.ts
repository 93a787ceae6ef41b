import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Targets } from '../../src/data/dataset.js';
import { parseActivation } from '../../src/model/activations.js';
import { fromRows, type Matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';

/** One case of test/fixtures/ec-vectors.json (exact float64 values from an independent oracle). */
export interface FixtureCase {
  name: string;
  sizes: number[];
  act: string;
  task: 'cls' | 'reg';
  loss: 'ce' | 'mse';
  N: number;
  W: number[][][];
  b: number[][];
  X: number[][];
  Y: number[] | number[][];
  f: number[][];
  S: number[][][];
  M1: number[][][];
  M2: number[][][];
  m0: number[][];
  delta: number[][][];
  ec: number[][][];
  obd: number[][][];
  gradmag: number[][][];
  magnitude: number[][][];
  pruned: Record<string, { mask: number[][][]; W: number[][][]; b: number[][]; f: number[][] }>;
}

export function loadFixtureCases(): FixtureCase[] {
  const url = new URL('../fixtures/ec-vectors.json', import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')).cases;
}

export function fixtureMlp(c: { W: number[][][]; b: number[][]; act: string }): Mlp {
  const hidden = parseActivation(c.act)!;
  return {
    layers: c.W.map((w, l) => ({
      weight: fromRows(w),
      bias: Float32Array.from(c.b[l]),
      activation: l === c.W.length - 1 ? { kind: 'identity' } : hidden,
    })),
  };
}

export function fixtureData(c: FixtureCase): { x: Matrix; y: Targets } {
  const x = fromRows(c.X);
  const y: Targets =
    c.task === 'cls'
      ? { kind: 'classes', values: Int32Array.from(c.Y as number[]) }
      : { kind: 'values', values: fromRows(c.Y as number[][]) };
  return { x, y };
}

/**
 * Element-wise closeness: |actual - expected| <= rel · max(|expected|, floor · max|expected|).
 * The floor keeps entries that are tiny next to the rest of the array (cancellations) from
 * demanding more than float32 arithmetic can give; 1e-5 relative is the bar.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  label: string,
  rel = 1e-5,
  floor = 1e-3,
): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const tolerance = rel * Math.max(Math.abs(expected[i]), floor * scale);
    const error = Math.abs(actual[i] - expected[i]);
    assert.ok(
      error <= tolerance,
      `${label}[${i}]: ${actual[i]} vs ${expected[i]} (error ${error}, tolerance ${tolerance})`,
    );
  }
}

export const flat = (nested: number[][]): number[] => nested.flat();
