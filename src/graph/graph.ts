/**
 * The model: a small graph (DAG) of named tensors and ops, as ONNX and Keras describe a network.
 * The unit EC prunes is the *fully-connected layer* (`DenseLayer`: a weight n_out x n_in and its
 * adjacent bias); the graph points at it with a `Dense` node, so scores, masks and compensation stay
 * plain arrays per layer while every other op only has to say how it runs forward and how it
 * carries cotangents back (src/graph/ops). A plain MLP is the smallest such graph (mlp-graph.ts).
 */
import type { FloatArray, Matrix } from '../model/matrix.js';
import type { Layered, Mlp } from '../model/mlp.js';

export type { Layered };

import { sizeOf, type Tensor } from './tensor.js';

export type AttributeValue = number | string | readonly number[] | Tensor;

export interface GraphNode {
  /** the node's name in the file (for messages and for writing the model back) */
  readonly name: string;
  /** an ONNX op type, or `Dense` for a fully-connected layer */
  readonly op: string;
  /** tensor names; '' for an omitted optional input */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, AttributeValue>>;
}

/** One fully-connected layer: z = a Wᵀ + b for a batch a (B x n_in). */
export interface DenseLayer {
  /** its name in the file (a node, a Keras layer or a state_dict prefix) */
  readonly name: string;
  /** n_out x n_in (PyTorch's Linear.weight layout), in the file's precision (see FloatArray) */
  readonly weight: Matrix<FloatArray>;
  /** n_out entries; zeros when the file has no bias (see `hasBias`) */
  readonly bias: FloatArray;
  /** false when the file stores no bias for this layer (compensation then needs somewhere to go) */
  readonly hasBias: boolean;
}

export interface Graph {
  /** the input tensor and its per-sample shape (the batch dimension is implied) */
  readonly input: { readonly name: string; readonly shape: readonly number[] };
  /** the tensor EC measures: the model's output as the graph defines it */
  readonly output: string;
  /** in topological order */
  readonly nodes: readonly GraphNode[];
  /** named constant tensors (initializers other than the layers' weights and biases) */
  readonly constants: ReadonlyMap<string, Tensor>;
  /** the fully-connected layers, in the order their Dense nodes appear */
  readonly layers: readonly DenseLayer[];
}

/**
 * What the pipeline accepts: a graph, or a plain MLP (`Mlp`, the chain form the safetensors/npz
 * readers and `train` produce), which is turned into the smallest graph on entry.
 */
export type Model = Graph | Mlp;

/** The index of the Dense node's layer in `graph.layers`. */
export function layerOf(node: GraphNode): number {
  return node.attrs.layer as number;
}

/** The Dense node of layer `l` (every layer has exactly one). */
export function denseNodeOf(graph: Graph, l: number): GraphNode {
  return graph.nodes.find((node) => node.op === 'Dense' && node.attrs.layer === l)!;
}

export function inputSize(graph: Graph): number {
  return sizeOf(graph.input.shape);
}

export function weightCount(graph: Pick<Graph, 'layers'>): number {
  return graph.layers.reduce((sum, layer) => sum + layer.weight.data.length, 0);
}

/** The same graph with other layer values (same shapes): what pruning and training produce. */
export function withLayers(graph: Graph, layers: readonly DenseLayer[]): Graph {
  return { ...graph, layers };
}

/** The same graph measured at another tensor (e.g. the logits before a softmax head). */
export function withOutput(graph: Graph, output: string): Graph {
  return { ...graph, output };
}

const batchedCache = new WeakMap<Graph, ReadonlySet<string>>();

/** The tensors that depend on the input (first dimension = batch); the rest are constants and shapes. */
export function batchedTensors(graph: Graph): ReadonlySet<string> {
  let batched = batchedCache.get(graph);
  if (batched === undefined) {
    const names = new Set([graph.input.name]);
    for (const node of graph.nodes) {
      // Shape only reads the dimensions: its value is a shape, never a data tensor
      if (node.op !== 'Shape' && node.inputs.some((name) => names.has(name))) {
        for (const name of node.outputs) names.add(name);
      }
    }
    batched = names;
    batchedCache.set(graph, batched);
  }
  return batched;
}

/**
 * Where a bias shift of layer `l` goes when the file stores no bias: `batchnorm` when the layer's
 * output feeds only an inference BatchNormalization (a shift of b is a shift of its mean by the
 * opposite amount: no structural change), else `new-bias` (a bias is added to the file).
 * `bias` when the layer has one.
 */
export function compensationTarget(graph: Graph, l: number): 'bias' | 'batchnorm' | 'new-bias' {
  if (graph.layers[l].hasBias) return 'bias';
  const z = denseNodeOf(graph, l).outputs[0];
  const consumers = graph.nodes.filter((node) => node.inputs.includes(z));
  const onlyBatchNorm =
    consumers.length === 1 && consumers[0].op === 'BatchNormalization' && consumers[0].inputs[0] === z;
  return onlyBatchNorm && graph.output !== z ? 'batchnorm' : 'new-bias';
}
