import { createRandom } from '../../src/data/random.js';
import type { Activation } from '../../src/model/activations.js';
import { type Matrix, matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';

/** A seeded MLP with 1/sqrt(fan-in) normal weights, small biases and an identity output layer. */
export function randomMlp(sizes: number[], activation: Activation, seed: number): Mlp {
  const random = createRandom(seed);
  return {
    layers: sizes.slice(1).map((nOut, l) => {
      const nIn = sizes[l];
      const weight = matrix(nOut, nIn);
      for (let i = 0; i < weight.data.length; i++) weight.data[i] = random.normal() / Math.sqrt(nIn);
      const bias = Float32Array.from({ length: nOut }, () => 0.1 * random.normal());
      return { weight, bias, activation: l === sizes.length - 2 ? { kind: 'identity' } : activation };
    }),
  };
}

/** A seeded matrix of normal values with the given mean and spread. */
export function randomMatrix(rows: number, cols: number, seed: number, mean = 0, spread = 1): Matrix {
  const random = createRandom(seed);
  const m = matrix(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = mean + spread * random.normal();
  return m;
}
