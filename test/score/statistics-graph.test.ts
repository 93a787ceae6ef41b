/**
 * The one-graph-per-batch calibration pass (emitted by src/graph/emit/calibration.ts, run by
 * onnxruntime-node), for chains and for graphs that are not, against
 * the GEMM-by-GEMM path with the pure-TS GEMM: two independent implementations of the same sums.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { withoutGraphs } from '../../src/gemm/gemm.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { canEmit } from '../../src/graph/emit/calibration.js';
import { UNARY_RULES } from '../../src/graph/ops/unary.js';
import { ACTIVATION_KINDS, type Activation, type ActivationKind } from '../../src/model/activations.js';
import type { Mlp } from '../../src/model/mlp.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
import { type CalibrationStatistics, collectStatistics } from '../../src/score/statistics.js';
import {
  buildGraph,
  constant,
  DECOMPOSED_LAYER_NORM,
  type GraphSpec,
  residualSpec,
  VIEW_CONSTANTS,
  VIEW_NODES,
} from '../graph/build.js';
import { randomMatrix, randomMlp } from '../helpers/random.js';

const ort = await createOrtGemm();
after(() => ort.dispose?.());

function activation(kind: ActivationKind): Activation {
  if (kind === 'leaky_relu') return { kind, alpha: 0.1 };
  if (kind === 'elu') return { kind, alpha: 0.7 };
  return { kind } as Activation;
}

/** max |a - b| over an array, relative to max |b| (the layer's scale) */
function relativeGap(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const scale = maxAbs(b);
  let gap = 0;
  for (let i = 0; i < b.length; i++) gap = Math.max(gap, Math.abs(a[i] - b[i]));
  return scale === 0 ? gap : gap / scale;
}

function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]));
  return max;
}

/**
 * The raw sums Σ s a and Σ s a² from the shifted moments (m1 + c m0, m2 + 2c m1 + c² m0): free of
 * the shift c, which the two paths choose differently (the graph: the mean of the first 256
 * samples).
 */
function rawMoments(stats: CalibrationStatistics['layers'][number]) {
  const nIn = stats.shift.length;
  const first = new Float64Array(stats.m1.length);
  const second = new Float64Array(stats.m2.length);
  for (let k = 0; k < first.length; k++) {
    const [c, m0] = [stats.shift[k % nIn], stats.m0[Math.floor(k / nIn)]];
    first[k] = stats.m1[k] + c * m0;
    second[k] = stats.m2[k] + 2 * c * stats.m1[k] + c * c * m0;
  }
  return { first, second };
}

function assertSameStatistics(
  graph: CalibrationStatistics,
  reference: CalibrationStatistics,
  tolerance: number,
) {
  assert.equal(graph.samples, reference.samples);
  assert.equal(graph.layers.length, reference.layers.length);
  graph.layers.forEach((layer, l) => {
    const expected = reference.layers[l];
    const [raw, rawExpected] = [rawMoments(layer), rawMoments(expected)];
    const compared = {
      m0: [layer.m0, expected.m0],
      'Σ s a': [raw.first, rawExpected.first],
      'Σ s a²': [raw.second, rawExpected.second],
      lossGradient: [layer.lossGradient, expected.lossGradient],
    };
    for (const [key, [a, b]] of Object.entries(compared)) {
      assert.equal(a === undefined, b === undefined, `layer ${l} ${key} present in one only`);
      if (a === undefined || b === undefined) continue;
      const gap = relativeGap(a, b);
      assert.ok(gap <= tolerance, `layer ${l} ${key}: ${gap.toExponential(2)} > ${tolerance}`);
    }
  });
}

/** A network whose every layer (the output too) has `kind`, so the graph's output-layer branches run. */
function uniformMlp(sizes: number[], kind: ActivationKind, seed: number): Mlp {
  const mlp = randomMlp(sizes, activation(kind), seed);
  return { layers: mlp.layers.map((layer) => ({ ...layer, activation: activation(kind) })) };
}

describe('calibration statistics as one graph per batch', () => {
  const x = randomMatrix(203, 7, 1, 0.3, 1.5);
  const classes = Int32Array.from({ length: 203 }, (_, n) => (n * 7) % 4);
  const data = inMemoryDataset(x, { kind: 'classes', values: classes });

  for (const kind of ACTIVATION_KINDS) {
    for (const [name, mlp] of [
      ['identity output', randomMlp([7, 9, 6, 5, 4], activation(kind), 3)],
      ['same activation at the output', uniformMlp([7, 9, 6, 5, 4], kind, 4)],
    ] as const) {
      test(`${kind}, ${name}: moments and loss gradient agree with the GEMM path`, async () => {
        for (const loss of ['ce', 'mse'] as const) {
          const options = { batchSize: 50, lossGradient: loss } as const;
          const reference = await collectStatistics(mlp, data, { ...options, gemm: tsGemm });
          const graph = await collectStatistics(mlp, data, { ...options, gemm: ort });
          assertSameStatistics(graph, reference, 2e-5);
        }
      });
    }
  }

  test('one or two layers, one output, and a batch larger than the data', async () => {
    for (const sizes of [
      [7, 4],
      [7, 1],
      [7, 5, 1],
      [7, 3, 2],
    ]) {
      const mlp = uniformMlp(sizes, 'tanh', 5);
      for (const batchSize of [1, 64, 1000]) {
        const reference = await collectStatistics(mlp, data, { batchSize, gemm: tsGemm });
        const graph = await collectStatistics(mlp, data, { batchSize, gemm: ort });
        assertSameStatistics(graph, reference, 2e-5);
      }
    }
  });

  test('batches are run in row slices when the cotangent tensor would be large', async () => {
    // 12 outputs x 600 hidden: slices of 728 rows, so a batch of 1000 runs as 728 + 272
    const mlp = randomMlp([5, 600, 12], { kind: 'relu' }, 6);
    const wide = inMemoryDataset(randomMatrix(1500, 5, 7));
    const reference = await collectStatistics(mlp, wide, { batchSize: 1000, gemm: tsGemm });
    const graph = await collectStatistics(mlp, wide, { batchSize: 1000, gemm: ort });
    assertSameStatistics(graph, reference, 2e-5);
  });

  test('only the wanted layers are accumulated; the loss gradient alone needs no sensitivities', async () => {
    const mlp = randomMlp([7, 9, 6, 4], { kind: 'relu' }, 8);
    const graph = await collectStatistics(mlp, data, { gemm: ort, layers: [1] });
    assert.ok(graph.layers[1].m1.some((v) => v !== 0));
    assert.ok(graph.layers[0].m1.every((v) => v === 0) && graph.layers[2].m0.every((v) => v === 0));
    const gradientOnly = { sensitivity: false, lossGradient: 'ce' } as const;
    const reference = await collectStatistics(mlp, data, { ...gradientOnly, gemm: tsGemm });
    assertSameStatistics(await collectStatistics(mlp, data, { ...gradientOnly, gemm: ort }), reference, 2e-5);
  });

  test('the GEMM-by-GEMM path on onnxruntime itself (withoutGraphs) gives the same', async () => {
    const mlp = randomMlp([7, 9, 6, 4], { kind: 'gelu' }, 9);
    const gemmByGemm = await collectStatistics(mlp, data, { gemm: withoutGraphs(ort) });
    assertSameStatistics(await collectStatistics(mlp, data, { gemm: ort }), gemmByGemm, 2e-5);
  });

  test('labels out of range are refused on the graph path as on the other', async () => {
    const mlp = randomMlp([7, 9, 3], { kind: 'relu' }, 10);
    const message = /label 3 is out of range for 3 outputs/;
    await assert.rejects(collectStatistics(mlp, data, { gemm: ort, lossGradient: 'ce' }), message);
    await assert.rejects(collectStatistics(mlp, data, { gemm: tsGemm, lossGradient: 'ce' }), message);
  });
});

/** Dense(7→5) → ops → Dense(5→4) → head: `middle` maps the tensor 'z0' to 'a0'. */
function around(
  middle: GraphSpec['nodes'],
  constants: GraphSpec['constants'] = {},
  head = 'LogSoftmax',
): GraphSpec {
  return {
    input: [7],
    layers: [
      [5, 7],
      [4, 5],
    ],
    nodes: [
      ['Dense', ['x'], ['z0'], { layer: 0 }],
      ...middle,
      ['Dense', ['a0'], ['logits'], { layer: 1 }],
      [head, ['logits'], ['y'], { axis: -1 }],
    ],
    constants,
    output: 'y',
  };
}

/** The same with the second layer taking 10 features. */
function widened(...args: Parameters<typeof around>): GraphSpec {
  return {
    ...around(...args),
    layers: [
      [5, 7],
      [4, 10],
    ],
  };
}

const five = (values: number[]) => constant([5], values);
const scale5 = five([1.1, 0.9, 1.3, 0.7, 1]);
const shift5 = five([0.1, -0.2, 0, 0.3, 0.05]);

/** Graphs that are not chains, each with its name. */
const GRAPHS: [string, GraphSpec][] = [
  ['BatchNorm, LayerNorm, a residual Add, a softmax head', residualSpec(7)],
  [
    'LayerNorm as torch decomposes it (ReduceMean/Sub/Pow/Sqrt/Div)',
    around(
      [...DECOMPOSED_LAYER_NORM],
      { scale: scale5, shift: shift5, two: constant([], [2]), eps: constant([], [1e-5]) },
      'Softmax',
    ),
  ],
  [
    'SiLU as Sigmoid and Mul of two tensors, ReduceSum with keepdims 0',
    widened(
      [
        ['Sigmoid', ['z0'], ['s']],
        ['Mul', ['z0', 's'], ['silu']],
        ['Reshape', ['silu', 'shape'], ['r']],
        ['ReduceSum', ['r', 'axes'], ['summed'], { keepdims: 0 }],
        ['Concat', ['summed', 'silu'], ['c'], { axis: 1 }],
        ['Identity', ['c'], ['wide']],
        ['Relu', ['wide'], ['a0']],
      ],
      { shape: constant([3], [0, 5, 1]), axes: constant([1], [-1]) },
    ),
  ],
  [
    'the view idiom, Unsqueeze/Squeeze/Flatten, and Concat of two branches',
    {
      input: [7, 1],
      layers: [
        [3, 7],
        [2, 7],
        [4, 5],
      ],
      nodes: [
        ...VIEW_NODES,
        ['Dense', ['flat'], ['z0'], { layer: 0 }],
        ['Dense', ['flat'], ['z1'], { layer: 1 }],
        ['Unsqueeze', ['z0'], ['u'], { axes: [2] }],
        ['Tanh', ['u'], ['t']],
        ['Squeeze', ['t'], ['q'], { axes: [2] }],
        ['Sigmoid', ['z1'], ['s']],
        ['Concat', ['q', 's'], ['c'], { axis: 1 }],
        ['Flatten', ['c'], ['a0'], { axis: 1 }],
        ['Dense', ['a0'], ['y'], { layer: 2 }],
      ],
      constants: VIEW_CONSTANTS,
      output: 'y',
    },
  ],
  // every unary op, on values above 1/2 (Log, Sqrt, Reciprocal) after a Softplus
  ...Object.keys(UNARY_RULES).map((op): [string, GraphSpec] => [
    op,
    around(
      [
        ['Softplus', ['z0'], ['s']],
        ['Add', ['s', 'half'], ['p']],
        [op, ['p'], ['a0'], op === 'LeakyRelu' ? { alpha: 0.2 } : {}],
      ],
      { half: constant([], [0.5]) },
      'Identity',
    ),
  ]),
  [
    'Gelu (tanh), Elu, Selu, HardSigmoid and HardSwish across their kinks',
    around(
      [
        ['Gelu', ['z0'], ['g'], { approximate: 'tanh' }],
        ['Elu', ['g'], ['e'], { alpha: 0.7 }],
        ['Selu', ['e'], ['f']],
        ['Mul', ['f', 'three'], ['wide']],
        ['HardSigmoid', ['wide'], ['h'], { alpha: 0.3, beta: 0.4 }],
        ['HardSwish', ['wide'], ['k']],
        ['Add', ['h', 'k'], ['a0']],
      ],
      { three: constant([], [3]) },
    ),
  ],
  [
    'Div, Sub and Pow of tensors, PRelu, Clip by inputs and by attributes',
    around(
      [
        ['Softplus', ['z0'], ['s']],
        ['Add', ['s', 'half'], ['p']],
        ['Div', ['z0', 'p'], ['d']],
        ['Sub', ['d', 'p'], ['e']],
        ['PRelu', ['e', 'slope'], ['f']],
        ['Clip', ['f', 'lo', 'hi'], ['g']],
        ['Clip', ['g'], ['h'], { min: -0.8 }],
        ['Pow', ['p', 'h'], ['a0']],
      ],
      {
        slope: five([0.1, 0.2, 0.3, 0.4, 0.5]),
        lo: constant([], [-1]),
        hi: constant([], [0.7]),
        half: constant([], [0.5]),
      },
    ),
  ],
];

describe('the calibration graph emitted from graphs that are not chains', () => {
  const x = randomMatrix(203, 7, 1, 0.3, 1.5);
  const classes = Int32Array.from({ length: 203 }, (_, n) => (n * 7) % 4);
  const data = inMemoryDataset(x, { kind: 'classes', values: classes });
  for (const [name, spec] of GRAPHS) {
    test(`${name}: m0, Σ s a, Σ s a² and dL/dW equal the JS walk's`, async () => {
      const graph = buildGraph(spec);
      assert.ok(canEmit(graph), 'every op of the graph emits');
      for (const loss of ['ce', 'mse'] as const) {
        const options = { batchSize: 80, lossGradient: loss } as const;
        const reference = await collectStatistics(graph, data, { ...options, gemm: tsGemm });
        const timings = {};
        const emitted = await collectStatistics(graph, data, { ...options, gemm: ort, timings });
        assert.ok('compile' in timings, 'the statistics ran as an emitted graph');
        assertSameStatistics(emitted, reference, 2e-5);
      }
    });
  }
});
