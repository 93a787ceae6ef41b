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
