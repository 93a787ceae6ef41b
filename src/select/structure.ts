import { EcpruneError, option } from '../errors.js';
import {
  batchedTensors,
  type DenseLayer,
  denseNodeOf,
  type Graph,
  type GraphNode,
  layerOf,
  type Model,
} from '../graph/graph.js';
import { asGraph, chainOf } from '../graph/mlp-graph.js';
import { BINARY_RULES } from '../graph/ops/binary.js';
import { UNARY_RULES } from '../graph/ops/unary.js';
import type { Tensor } from '../graph/tensor.js';
import { zerosLike } from '../model/matrix.js';
import type { Mlp } from '../model/mlp.js';
import type { LayerScores } from '../score/criterion.js';
import { type KeepMask, pruneCount, type Scope } from './select.js';

/**
 * Structured pruning of whole hidden neurons (EC's idea applied to neurons), on any graph where it
 * applies.
 *
 * Removing output unit k of a fully-connected layer removes row k of its weight and bias and, since
 * unit k reaches its consumers only through ops that act on each unit alone (elementwise activations,
 * arithmetic with scalars or per-unit constants, BatchNorm with its per-unit parameters), column k
 * of every fully-connected layer that consumes it: together the unit's *flow* (`unitFlows`). Each
 * entry of such a column is a single weight of its row, so the EC analysis of one weight applies
 * per row exactly: the optimal compensation is
 *   b_c[i] += W_c[i,k] · E_{s_i}[a_k]          (= delta_c[i,k] of `optimalBiasShift`)
 * and the output error it leaves is I_c[i,k] = W_c[i,k]² Var_{s_i}(a_k) / N. The neuron score is the
 * sum over its outgoing weights in every consumer c, Σ_c Σ_i I_c[i,k] (cross-row interactions
 * ignored, as EC ignores them between weights). With another criterion, the column sums of its scores.
 * A layer is *hidden* when another fully-connected layer follows it. It can lose units when they
 * reach the consumers through such ops only; where a residual Add, LayerNorm, Softmax, Reshape,
 * Concat ... is in the way (it cannot drop a unit), the layer is left whole, with the op named
 * (`WholeLayer`), and the others are pruned: in a residual MLP x + f(x) the inner hidden layer of f
 * loses units while the layers that write the residual stream keep their widths. Sparsity for
 * neurons is the fraction of units removed among the units of the layers that can lose them (the
 * output layers and the layers left whole are never touched); every such layer keeps at least one
 * unit. Only a model where no hidden layer can lose a unit is refused. A plain MLP is the chain of
 * such flows.
 */

/** Ops that act on each unit alone (their other inputs, if any, are scalars or per-unit constants). */
const PER_UNIT_OPS = new Set([
  ...Object.keys(UNARY_RULES),
  ...Object.keys(BINARY_RULES),
  'Clip',
  'Dropout',
  'Cast',
]);
/** Ops whose constant inputs are per-unit parameters (sliced with the units), by input index. */
const PER_UNIT_PARAMETERS: Readonly<Record<string, readonly number[]>> = { BatchNormalization: [1, 2, 3, 4] };

/** How the units of one hidden layer reach the fully-connected layers that read them. */
export interface UnitFlow {
  readonly layer: number;
  /** the layers whose input columns are these units */
  readonly consumers: readonly number[];
  /** per-unit constants on the way, sliced with the units */
  readonly constants: readonly string[];
}

/** A hidden layer whose units cannot be removed, and why. */
export interface WholeLayer {
  readonly layer: number;
  /** its name in the file */
  readonly name: string;
  /** what its units reach that cannot drop one, e.g. "its units feed Add node '/Add'" */
  readonly reason: string;
}

/** The model's hidden layers: those that can lose units (their flows) and those left whole. */
export interface HiddenLayers {
  /** in layer order; the neuron scores and selections follow this order */
  readonly flows: UnitFlow[];
  /** in layer order */
  readonly leftWhole: WholeLayer[];
}

/**
 * The flows of the model's hidden layers that can lose units, in layer order, and the hidden layers
 * left whole with the op that keeps them so; an error when no hidden layer can lose a unit.
 */
export function unitFlows(model: Model): HiddenLayers {
  const graph = asGraph(model);
  const batched = batchedTensors(graph);
  const flows: UnitFlow[] = [];
  const leftWhole: WholeLayer[] = [];
  graph.layers.forEach((layer, l) => {
    const flow = unitFlow(graph, l, batched);
    if (flow === undefined) return;
    if (typeof flow === 'string') leftWhole.push({ layer: l, name: layer.name, reason: flow });
    else flows.push(flow);
  });
  if (flows.length > 0) return { flows, leftWhole };
  const why =
    leftWhole.length === 0
      ? 'no fully-connected layer of this model feeds another (there is no hidden layer)'
      : `no hidden layer can lose a unit: ${leftWhole.map(({ name, reason }) => `'${name}' (${reason})`).join(', ')}`;
  throw new EcpruneError(
    'unsupported',
    `neuron removal has nothing to remove: ${why}; prune its weights instead (${option('structureWeight')})`,
  );
}

/**
 * How the units of layer `l` reach the fully-connected layers that read them; the reason they
 * cannot be removed when something on the way cannot drop a unit; undefined when `l` is not hidden.
 */
function unitFlow(graph: Graph, l: number, batched: ReadonlySet<string>): UnitFlow | string | undefined {
  const z = denseNodeOf(graph, l).outputs[0];
  if (!feedsADenseLayer(graph, z)) return undefined;
  const units = graph.layers[l].weight.rows;
  const inFlow = new Set([z]);
  const consumers: number[] = [];
  const constants: string[] = [];
  for (const node of graph.nodes) {
    if (!node.inputs.some((name) => inFlow.has(name))) continue;
    if (node.op === 'Dense') {
      consumers.push(layerOf(node));
      continue;
    }
    const sliced = perUnitInputs(graph, node, inFlow, batched, units);
    if (sliced === undefined) return `its units feed ${node.op} node '${node.name}'`;
    constants.push(...sliced);
    for (const name of node.outputs) inFlow.add(name);
  }
  if (inFlow.has(graph.output)) return "its units are the model's output";
  return { layer: l, consumers, constants };
}

/** Whether a Dense node is downstream of tensor `z`, by any path. */
function feedsADenseLayer(graph: Graph, z: string): boolean {
  const reached = new Set([z]);
  for (const node of graph.nodes) {
    if (!node.inputs.some((name) => reached.has(name))) continue;
    if (node.op === 'Dense') return true;
    for (const name of node.outputs) reached.add(name);
  }
  return false;
}

/**
 * The constants of `node` to slice with the units when the node acts on each unit alone, or
 * undefined when it cannot drop a unit: every input is in the flow, omitted, a scalar constant, or
 * a constant of one value per unit ([units] or [1, units]) used by this node only.
 */
function perUnitInputs(
  graph: Graph,
  node: GraphNode,
  inFlow: ReadonlySet<string>,
  batched: ReadonlySet<string>,
  units: number,
): string[] | undefined {
  const parameters = PER_UNIT_PARAMETERS[node.op];
  if (!PER_UNIT_OPS.has(node.op) && parameters === undefined) return undefined;
  const sliced: string[] = [];
  for (const [i, name] of node.inputs.entries()) {
    if (name === '' || inFlow.has(name)) continue;
    const constant = graph.constants.get(name);
    if (constant === undefined || batched.has(name)) return undefined;
    if (constant.data.length === 1 && parameters === undefined) continue;
    const perUnit = constant.data.length === units && constant.shape[constant.shape.length - 1] === units;
    const shared = graph.nodes.some((other) => other !== node && other.inputs.includes(name));
    if (!perUnit || shared || (parameters !== undefined && !parameters.includes(i))) return undefined;
    sliced.push(name);
  }
  return sliced;
}

/**
 * Per hidden layer that can lose units (the flows' order), one score per neuron: the column sums
 * of its consumers' weight scores.
 */
export function neuronScores(model: Model, weightScores: LayerScores): Float64Array[] {
  const graph = asGraph(model);
  return unitFlows(graph).flows.map(({ layer, consumers }) => {
    const scores = new Float64Array(graph.layers[layer].weight.rows);
    for (const c of consumers) {
      const { rows, cols } = graph.layers[c].weight;
      const next = weightScores[c];
      for (let i = 0; i < rows; i++) for (let k = 0; k < cols; k++) scores[k] += next[i * cols + k];
    }
    return scores;
  });
}

/**
 * Per hidden layer that can lose units (`neuronScores`' order), 1 = the neuron is kept. Removes
 * pruneCount(fraction, neurons) of the lowest scores, over all these layers together (`global`) or
 * the same fraction of each (`layer`), never the last neuron of a layer. Ties go to the earlier
 * layer, then the lower index.
 */
export function selectNeurons(scores: readonly Float64Array[], fraction: number, scope: Scope): Uint8Array[] {
  const keep = scores.map((s) => new Uint8Array(s.length).fill(1));
  const removeLowest = (candidates: { l: number; k: number }[], count: number) => {
    candidates.sort((a, b) => scores[a.l][a.k] - scores[b.l][b.k] || a.l - b.l || a.k - b.k);
    const left = scores.map((s) => s.length);
    let removed = 0;
    for (const { l, k } of candidates) {
      if (removed === count) break;
      if (left[l] === 1) continue;
      keep[l][k] = 0;
      left[l]--;
      removed++;
    }
  };
  const all = (l: number) => Array.from(scores[l], (_, k) => ({ l, k }));
  if (scope === 'global') {
    const total = scores.reduce((sum, s) => sum + s.length, 0);
    removeLowest(
      scores.flatMap((_, l) => all(l)),
      pruneCount(fraction, total),
    );
  } else {
    scores.forEach((s, l) => {
      removeLowest(all(l), pruneCount(fraction, s.length));
    });
  }
  return keep;
}

/** Per layer, which output units (rows) and input units (columns) survive a neuron selection. */
function survivors(
  graph: Graph,
  keepNeurons: readonly Uint8Array[],
): { rows: (Uint8Array | undefined)[]; cols: (Uint8Array | undefined)[] } {
  const rows: (Uint8Array | undefined)[] = graph.layers.map(() => undefined);
  const cols: (Uint8Array | undefined)[] = graph.layers.map(() => undefined);
  unitFlows(graph).flows.forEach(({ layer, consumers }, h) => {
    rows[layer] = keepNeurons[h];
    for (const c of consumers) cols[c] = keepNeurons[h];
  });
  return { rows, cols };
}

/**
 * The weight keep-masks of the original shapes that a neuron selection amounts to: the rows of a
 * hidden layer and the columns of its consumers of every removed neuron are 0.
 * `applyPruning(model, masks, delta)` then gives the zeroed-neuron, bias-folded network that
 * `removeNeurons` builds physically smaller.
 */
export function neuronKeepMasks(model: Model, keepNeurons: readonly Uint8Array[]): KeepMask[] {
  const graph = asGraph(model);
  const { rows: rowKept, cols: colKept } = survivors(graph, keepNeurons);
  return graph.layers.map((layer, l) => {
    const { rows, cols } = layer.weight;
    const mask = new Uint8Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) mask[i * cols + j] = (rowKept[l]?.[i] ?? 1) & (colKept[l]?.[j] ?? 1);
    }
    return mask;
  });
}

/** The indices whose mask entry is 1 (all of 0..size-1 without a mask). */
function kept(mask: Uint8Array | undefined, size: number): number[] {
  return Array.from({ length: size }, (_, k) => k).filter((k) => mask === undefined || mask[k] === 1);
}

/**
 * The physically smaller network: rows of a hidden layer's weight and bias, its per-unit constants
 * (BatchNorm parameters ...) and the columns of its consumers of every removed neuron are dropped,
 * and (when `deltaBias` is given) b_c[i] += Σ_{k removed} delta_c[i,k] in every consumer c, summed
 * in float64 and rounded once, like `applyPruning`. Returns a model of the kind it was given.
 */
export function removeNeurons<M extends Model>(
  model: M,
  keepNeurons: readonly Uint8Array[],
  deltaBias?: readonly Float64Array[],
): M {
  const graph = asGraph(model);
  const { flows } = unitFlows(graph);
  const { rows: rowKept, cols: colKept } = survivors(graph, keepNeurons);
  const layers = graph.layers.map((layer, l): DenseLayer => {
    const { rows, cols, data } = layer.weight;
    const keptRows = kept(rowKept[l], rows);
    const keptCols = kept(colKept[l], cols);
    // in the layer's precision: a float64 model's kept weights stay bit for bit
    const weight = zerosLike(data, keptRows.length * keptCols.length);
    const bias = zerosLike(layer.bias, keptRows.length);
    const delta = deltaBias?.[l];
    const removedCols = colKept[l];
    keptRows.forEach((i, r) => {
      keptCols.forEach((j, c) => {
        weight[r * keptCols.length + c] = data[i * cols + j];
      });
      let fold = 0;
      if (delta && removedCols)
        for (let j = 0; j < cols; j++) if (removedCols[j] === 0) fold += delta[i * cols + j];
      bias[r] = layer.bias[i] + fold;
    });
    return { ...layer, weight: { rows: keptRows.length, cols: keptCols.length, data: weight }, bias };
  });
  const constants = new Map(graph.constants);
  flows.forEach(({ constants: names }, h) => {
    for (const name of names) constants.set(name, keepUnits(graph.constants.get(name)!, keepNeurons[h]));
  });
  const shrunk: Graph = { ...graph, layers, constants };
  if ('nodes' in model) return shrunk as M;
  return chainOf(shrunk) as Mlp as M;
}

/** A per-unit constant ([units] or [1, units]) with only the kept units. */
function keepUnits(constant: Tensor, keep: Uint8Array): Tensor {
  const indices = kept(keep, keep.length);
  const data = zerosLike(constant.data, indices.length);
  indices.forEach((k, r) => {
    data[r] = constant.data[k];
  });
  return { shape: [...constant.shape.slice(0, -1), indices.length], data };
}
