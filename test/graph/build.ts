/** Small graphs for the graph tests, written as lists of nodes. */
import { createRandom } from '../../src/data/random.js';
import type { Graph, GraphNode } from '../../src/graph/graph.js';
import type { Tensor } from '../../src/graph/tensor.js';
import { matrix } from '../../src/model/matrix.js';

export interface GraphSpec {
  /** per-sample input shape */
  readonly input: readonly number[];
  /** [n_out, n_in] of each Dense layer, used as `dense(l)` in nodes */
  readonly layers: readonly (readonly [number, number])[];
  /** [op, inputs, outputs, attrs]; a Dense node's attrs are { layer } */
  readonly nodes: readonly (readonly [string, string[], string[], GraphNode['attrs']?])[];
  readonly constants?: Record<string, Tensor>;
  readonly output: string;
  readonly seed?: number;
}

export const constant = (shape: number[], values: number[]): Tensor => ({
  shape,
  data: Float64Array.from(values),
});

/**
 * Builds the graph with seeded weights. With `probes`, every Dense output z gets an Add of a zero
 * constant `probe_l` (z_raw + probe_l = z): finite differences move those constants, which shifts
 * z exactly as a bias change would, in float64.
 */
export function buildGraph(spec: GraphSpec, probes = false): Graph {
  const random = createRandom(spec.seed ?? 1);
  const constants = new Map<string, Tensor>(Object.entries(spec.constants ?? {}));
  const nodes: GraphNode[] = [];
  spec.nodes.forEach(([op, inputs, outputs, attrs = {}], n) => {
    if (op === 'Dense' && probes) {
      const l = attrs.layer as number;
      constants.set(`probe${l}`, { shape: [spec.layers[l][0]], data: new Float64Array(spec.layers[l][0]) });
      nodes.push({ name: `n${n}`, op, inputs, outputs: [`${outputs[0]}_raw`], attrs });
      nodes.push({
        name: `probe${l}`,
        op: 'Add',
        inputs: [`${outputs[0]}_raw`, `probe${l}`],
        outputs,
        attrs: {},
      });
    } else {
      nodes.push({ name: `n${n}`, op, inputs, outputs, attrs });
    }
  });
  return {
    input: { name: 'x', shape: spec.input },
    output: spec.output,
    nodes,
    constants,
    layers: spec.layers.map(([nOut, nIn], l) => {
      const weight = matrix(nOut, nIn);
      for (let i = 0; i < weight.data.length; i++) weight.data[i] = random.normal() / Math.sqrt(nIn);
      const bias = Float32Array.from({ length: nOut }, () => 0.2 * random.normal());
      return { name: `layer${l}`, weight, bias, hasBias: true };
    }),
  };
}

export function randomInput(rows: number, features: number, seed: number, float64 = true): Tensor {
  const random = createRandom(seed);
  const data = float64 ? new Float64Array(rows * features) : new Float32Array(rows * features);
  for (let i = 0; i < data.length; i++) data[i] = random.normal();
  return { shape: [rows, features], data };
}

/** `x.view(x.size(0), -1)` as torch exports it: x → 'flat' (needs the constants of VIEW_CONSTANTS). */
export const VIEW_NODES: GraphSpec['nodes'] = [
  ['Shape', ['x'], ['shape']],
  ['Gather', ['shape', 'zero'], ['batch'], { axis: 0 }],
  ['Unsqueeze', ['batch'], ['batch1'], { axes: [0] }],
  ['Concat', ['batch1', 'minusOne'], ['target'], { axis: 0 }],
  ['Reshape', ['x', 'target'], ['flat']],
];

export const VIEW_CONSTANTS = { zero: constant([], [0]), minusOne: constant([1], [-1]) };

/**
 * Dense(no bias in the tests that say so) → BatchNorm → Relu → Dense → LayerNorm → + skip → Tanh →
 * Dense → Softmax, for `features` inputs.
 */
export function residualSpec(features: number): GraphSpec {
  const c = (values: number[]) => constant([6], values);
  return {
    input: [features],
    layers: [
      [6, features],
      [6, 6],
      [4, 6],
    ],
    nodes: [
      ['Dense', ['x'], ['z0'], { layer: 0 }],
      ['BatchNormalization', ['z0', 'gamma', 'beta', 'mean', 'var'], ['bn'], { epsilon: 1e-5 }],
      ['Relu', ['bn'], ['h']],
      ['Dense', ['h'], ['z1'], { layer: 1 }],
      ['LayerNormalization', ['z1', 'ln_scale', 'ln_bias'], ['n1'], { axis: -1, epsilon: 1e-5 }],
      ['Add', ['h', 'n1'], ['r']],
      ['Tanh', ['r'], ['t']],
      ['Dense', ['t'], ['logits'], { layer: 2 }],
      ['Softmax', ['logits'], ['y'], { axis: -1 }],
    ],
    constants: {
      gamma: c([1.2, 0.8, 1, 0.9, 1.1, 1]),
      beta: c([0.1, 0, -0.1, 0.2, 0, 0.05]),
      mean: c([0.2, -0.1, 0, 0.1, -0.2, 0]),
      var: c([0.9, 1.2, 1, 0.8, 1.1, 1]),
      ln_scale: c([1, 1.1, 0.9, 1, 1.2, 0.8]),
      ln_bias: c([0, 0.1, 0, -0.1, 0, 0.1]),
    },
    output: 'y',
  };
}

/** LayerNorm of 'z0' into 'a0' as torch decomposes it (constants `scale`, `shift`, `two`, `eps`). */
export const DECOMPOSED_LAYER_NORM: GraphSpec['nodes'] = [
  ['ReduceMean', ['z0'], ['mean'], { axes: [-1] }],
  ['Sub', ['z0', 'mean'], ['centred']],
  ['Pow', ['centred', 'two'], ['squared']],
  ['ReduceMean', ['squared'], ['variance'], { axes: [-1] }],
  ['Add', ['variance', 'eps'], ['shifted']],
  ['Sqrt', ['shifted'], ['std']],
  ['Div', ['centred', 'std'], ['normed']],
  ['Mul', ['normed', 'scale'], ['scaled']],
  ['Add', ['scaled', 'shift'], ['a0']],
];
