/**
 * Every op's vector-Jacobian product against central finite differences through the real graph, in
 * float64: the backward walk's cotangent at each fully-connected layer's output (all K one-hot rows
 * per sample) must equal d y / d z estimated by moving z itself (see buildGraph's probes).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import type { Graph } from '../../src/graph/graph.js';
import { backpropagate, forwardTrace } from '../../src/graph/run.js';
import type { Tensor } from '../../src/graph/tensor.js';
import {
  buildGraph,
  constant,
  DECOMPOSED_LAYER_NORM,
  type GraphSpec,
  randomInput,
  VIEW_CONSTANTS,
  VIEW_NODES,
} from './build.js';

const BATCH = 3;
const H = 1e-5;

async function outputs(graph: Graph, x: Tensor): Promise<Float64Array> {
  const { output } = await forwardTrace(graph, x, tsGemm);
  return output.data as unknown as Float64Array;
}

/** Max relative error of the walk's Jacobians against finite differences, over every layer. */
async function vjpError(spec: GraphSpec, seed = 7): Promise<number> {
  const graph = buildGraph(spec, true);
  const features = spec.input.reduce((p, n) => p * n, 1);
  const x = randomInput(BATCH, features, seed);
  const trace = await forwardTrace(graph, x, tsGemm);
  const K = trace.output.data.length / BATCH;
  const cotangent = new Float64Array(BATCH * K * K);
  for (let s = 0; s < BATCH; s++) for (let k = 0; k < K; k++) cotangent[(s * K + k) * K + k] = 1;
  const jacobians = new Map<number, Float64Array>();
  await backpropagate(
    graph,
    trace,
    { rows: BATCH * K, cols: K, data: cotangent as unknown as Float32Array },
    tsGemm,
    (l, g) => {
      jacobians.set(l, Float64Array.from(g.data));
    },
  );
  assert.equal(jacobians.size, spec.layers.length, 'every layer is visited');
  let worst = 0;
  for (const [l, jacobian] of jacobians) {
    const probe = graph.constants.get(`probe${l}`)!.data as Float64Array;
    const n = probe.length;
    for (let i = 0; i < n; i++) {
      probe[i] = H;
      const up = await outputs(graph, x);
      probe[i] = -H;
      const down = await outputs(graph, x);
      probe[i] = 0;
      for (let s = 0; s < BATCH; s++) {
        for (let k = 0; k < K; k++) {
          const numeric = (up[s * K + k] - down[s * K + k]) / (2 * H);
          const analytic = jacobian[(s * K + k) * n + i];
          worst = Math.max(worst, Math.abs(numeric - analytic) / Math.max(1e-3, Math.abs(numeric)));
        }
      }
    }
  }
  return worst;
}

/**
 * Dense(4→5) → the nodes from 'z0' to 'a0' → Dense(5→3): the ops between two layers, their
 * cotangents K = 3 rows per sample.
 */
function around(middle: GraphSpec['nodes'], constants: GraphSpec['constants'] = {}): GraphSpec {
  return {
    input: [4],
    layers: [
      [5, 4],
      [3, 5],
    ],
    nodes: [['Dense', ['x'], ['z0'], { layer: 0 }], ...middle, ['Dense', ['a0'], ['y'], { layer: 1 }]],
    constants,
    output: 'y',
  };
}

/** Dense → op → Dense: one op between two layers. */
function between(
  op: string,
  attrs: Record<string, unknown> = {},
  extra: string[] = [],
  constants = {},
): GraphSpec {
  return around([[op, ['z0', ...extra], ['a0'], attrs as never]], constants);
}

/** Dense → Softplus (positive values) → op → Dense: for ops defined on x > 0. */
function positive(op: string, extra: string[] = [], constants = {}): GraphSpec {
  return around(
    [
      ['Softplus', ['z0'], ['p']],
      [op, ['p', ...extra], ['a0']],
    ],
    constants,
  );
}

const TOLERANCE = 1e-6;

async function assertVjp(spec: GraphSpec): Promise<void> {
  const error = await vjpError(spec);
  assert.ok(error < TOLERANCE, `max relative error ${error} against finite differences`);
}

describe('VJP of every op against finite differences (float64, through the graph)', () => {
  const unary: [string, Record<string, unknown>?][] = [
    ['Relu'],
    ['LeakyRelu', { alpha: 0.2 }],
    ['ThresholdedRelu', { alpha: 0.1 }],
    ['Elu', { alpha: 0.7 }],
    ['Selu'],
    ['Celu', { alpha: 0.5 }],
    ['Tanh'],
    ['Sigmoid'],
    ['HardSigmoid', { alpha: 0.3, beta: 0.4 }],
    ['HardSwish'],
    ['Softplus'],
    ['Softsign'],
    ['Gelu'],
    ['Gelu', { approximate: 'tanh' }],
    ['Mish'],
    ['Erf'],
    ['Exp'],
    ['Neg'],
    ['Abs'],
    ['Identity'],
    ['Dropout'],
  ];
  for (const [op, attrs] of unary) {
    it(`${op}${attrs ? ` ${JSON.stringify(attrs)}` : ''}`, async () => {
      await assertVjp(between(op, attrs));
    });
  }
  for (const op of ['Log', 'Sqrt', 'Reciprocal']) {
    it(`${op} (on positive values)`, async () => {
      await assertVjp(positive(op));
    });
  }
  it('Clip with min/max inputs (ReLU6-like) and with attributes (Hardtanh, opset < 11)', async () => {
    const inputs = between('Clip', {}, ['lo', 'hi'], { lo: constant([], [-0.3]), hi: constant([], [0.4]) });
    await assertVjp(inputs);
    await assertVjp(between('Clip', { min: -0.2, max: 0.3 }));
  });
  for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'PRelu']) {
    it(`${op} with a per-feature constant`, async () => {
      const c = constant([5], [0.5, 1.5, 2, 1.25, 3]);
      await assertVjp(op === 'Pow' ? positive(op, ['c'], { c }) : between(op, {}, ['c'], { c }));
    });
  }
  it('Div of a constant by data, Sub of data from a scalar (data as the second operand)', async () => {
    const spec = around(
      [
        ['Softplus', ['z0'], ['p']],
        ['Div', ['one', 'p'], ['q']],
        ['Sub', ['half', 'q'], ['a0']],
      ],
      { one: constant([1], [1]), half: constant([], [0.5]) },
    );
    await assertVjp(spec);
  });
  it('SiLU as torch exports it: Mul(z, Sigmoid(z)), a tensor used twice', async () => {
    const spec = around([
      ['Sigmoid', ['z0'], ['s']],
      ['Mul', ['z0', 's'], ['a0']],
    ]);
    await assertVjp(spec);
  });
  it('a residual block: y = Dense(z + Tanh(Dense(z)))', async () => {
    const spec: GraphSpec = {
      input: [4],
      layers: [
        [5, 4],
        [5, 5],
        [3, 5],
      ],
      nodes: [
        ['Dense', ['x'], ['z0'], { layer: 0 }],
        ['Relu', ['z0'], ['h']],
        ['Dense', ['h'], ['z1'], { layer: 1 }],
        ['Tanh', ['z1'], ['t']],
        ['Add', ['h', 't'], ['r']],
        ['Dense', ['r'], ['y'], { layer: 2 }],
      ],
      output: 'y',
    };
    await assertVjp(spec);
  });
  it('Softmax and LogSoftmax heads', async () => {
    for (const op of ['Softmax', 'LogSoftmax']) {
      const spec: GraphSpec = {
        ...between('Tanh'),
        nodes: [
          ['Dense', ['x'], ['z0'], { layer: 0 }],
          ['Tanh', ['z0'], ['a0']],
          ['Dense', ['a0'], ['logits'], { layer: 1 }],
          [op, ['logits'], ['y'], { axis: -1 }],
        ],
      };
      await assertVjp(spec);
    }
  });
  it('LayerNormalization, fused and as torch decomposes it (ReduceMean/Sub/Pow/Sqrt/Div), agree', async () => {
    const scale = constant([5], [1.1, 0.9, 1.3, 0.7, 1]);
    const shift = constant([5], [0.1, -0.2, 0, 0.3, 0.05]);
    const fused = between('LayerNormalization', { axis: -1, epsilon: 1e-5 }, ['scale', 'shift'], {
      scale,
      shift,
    });
    await assertVjp(fused);
    const decomposed = around(DECOMPOSED_LAYER_NORM, {
      scale,
      shift,
      two: constant([], [2]),
      eps: constant([], [1e-5]),
    });
    await assertVjp(decomposed);
    const x = randomInput(BATCH, 4, 3);
    const a = await forwardTrace(buildGraph(fused), x, tsGemm);
    const b = await forwardTrace(buildGraph(decomposed), x, tsGemm);
    for (let i = 0; i < a.output.data.length; i++) {
      assert.ok(Math.abs(a.output.data[i] - b.output.data[i]) < 1e-12, `output ${i} differs`);
    }
  });
  it('ReduceSum with keepdims=0 and axes as an input (opset 13 and later)', async () => {
    const spec: GraphSpec = {
      ...around(
        [
          ['Tanh', ['z0'], ['t']],
          ['Reshape', ['t', 'shape'], ['r']],
          ['ReduceSum', ['r', 'axes'], ['a0'], { keepdims: 0 }],
        ],
        { shape: constant([3], [0, 5, 2]), axes: constant([1], [-1]) },
      ),
      layers: [
        [10, 4],
        [3, 5],
      ],
    };
    await assertVjp(spec);
  });
  it('BatchNormalization (inference) after a layer', async () => {
    const c = (values: number[]) => constant([5], values);
    const spec = between('BatchNormalization', { epsilon: 1e-3 }, ['scale', 'B', 'mean', 'var'], {
      scale: c([1.2, 0.8, 1, 0.5, 2]),
      B: c([0.1, 0, -0.1, 0.2, 0]),
      mean: c([0.3, -0.1, 0, 0.2, 0.1]),
      var: c([0.5, 1.5, 1, 0.25, 2]),
    });
    await assertVjp(spec);
  });
  it('the view idiom: Shape/Gather/Unsqueeze/Concat/Reshape, with Flatten, Squeeze and Unsqueeze', async () => {
    const spec: GraphSpec = {
      input: [1, 2, 2],
      layers: [
        [5, 4],
        [3, 5],
      ],
      nodes: [
        ...VIEW_NODES,
        ['Dense', ['flat'], ['z0'], { layer: 0 }],
        ['Unsqueeze', ['z0'], ['u'], { axes: [2] }],
        ['Tanh', ['u'], ['t']],
        ['Squeeze', ['t'], ['s'], { axes: [2] }],
        ['Flatten', ['s'], ['a0'], { axis: 1 }],
        ['Dense', ['a0'], ['y'], { layer: 1 }],
      ],
      constants: VIEW_CONSTANTS,
      output: 'y',
    };
    await assertVjp(spec);
  });
  it('Concat of two feature branches', async () => {
    const spec: GraphSpec = {
      input: [4],
      layers: [
        [3, 4],
        [2, 4],
        [3, 5],
      ],
      nodes: [
        ['Dense', ['x'], ['z0'], { layer: 0 }],
        ['Dense', ['x'], ['z1'], { layer: 1 }],
        ['Tanh', ['z0'], ['t']],
        ['Sigmoid', ['z1'], ['s']],
        ['Concat', ['t', 's'], ['c'], { axis: 1 }],
        ['Dense', ['c'], ['y'], { layer: 2 }],
      ],
      output: 'y',
    };
    await assertVjp(spec);
  });
});
