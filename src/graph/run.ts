/**
 * The graph walk: forward in topological order, keeping every tensor of the batch; backward in
 * reverse, calling each op's VJP and summing the cotangents that reach a tensor from several
 * consumers. It knows nothing about any op beyond src/graph/ops/op.ts.
 */
import { EcpruneError } from '../errors.js';
import type { Gemm } from '../gemm/gemm.js';
import { tsGemm } from '../gemm/ts-gemm.js';
import type { Matrix } from '../model/matrix.js';
import type { Layered } from '../model/mlp.js';
import { batchedTensors, type Graph, type GraphNode, inputSize, layerOf, type Model } from './graph.js';
import { asGraph } from './mlp-graph.js';
import { OPS } from './ops/index.js';
import type { Op, OpContext } from './ops/op.js';
import { type Tensor, zerosLike } from './tensor.js';

/** What the walk needs to know of a graph once: which tensors carry data, which carry cotangents. */
export interface Plan {
  /** tensors that depend on the input (their first dimension is the batch) */
  readonly batched: ReadonlySet<string>;
  /** tensors a cotangent must reach: downstream of a Dense output and upstream of the output */
  readonly differentiated: ReadonlySet<string>;
  readonly ops: readonly Op[];
}

const plans = new WeakMap<Graph, Plan>();

export function opFor(node: GraphNode): Op {
  const op = OPS[node.op];
  if (op === undefined) {
    throw new EcpruneError(
      'unsupported',
      `op '${node.op}' is not supported`,
      undefined,
      `node '${node.name}'`,
    );
  }
  return op;
}

export function planOf(graph: Graph): Plan {
  const cached = plans.get(graph);
  if (cached) return cached;
  const batched = batchedTensors(graph);
  const afterDense = new Set<string>();
  for (const node of graph.nodes) {
    if (node.op === 'Dense' || node.inputs.some((name) => afterDense.has(name))) {
      if (node.op !== 'Shape') for (const name of node.outputs) afterDense.add(name);
    }
  }
  const upstream = new Set([graph.output]);
  for (let n = graph.nodes.length - 1; n >= 0; n--) {
    const node = graph.nodes[n];
    if (node.outputs.some((name) => upstream.has(name))) for (const name of node.inputs) upstream.add(name);
  }
  const differentiated = new Set([...afterDense].filter((name) => upstream.has(name) && batched.has(name)));
  // a Dense layer's input needs no cotangent unless an earlier layer feeds it, so this is exact
  for (const node of graph.nodes) {
    if (node.op === 'Dense' && upstream.has(node.outputs[0])) differentiated.add(node.outputs[0]);
  }
  const plan = { batched, differentiated, ops: graph.nodes.map(opFor) };
  plans.set(graph, plan);
  return plan;
}

function contextOf(graph: Graph, node: GraphNode, plan: Plan, gemm: Gemm): OpContext {
  return {
    attrs: node.attrs,
    batched: node.inputs.map((name) => plan.batched.has(name)),
    layers: graph.layers,
    gemm,
  };
}

/** Every tensor of one batch by name: the forward pass's record, which the backward pass reads. */
export interface GraphTrace {
  readonly values: ReadonlyMap<string, Tensor>;
  /** the output as B x (values per sample) */
  readonly output: Matrix;
}

/** Runs the graph on a batch `x` (B x features, or a tensor of the input's full shape [B, ...]). */
export async function forwardTrace(model: Model, x: Matrix | Tensor, gemm: Gemm): Promise<GraphTrace> {
  const graph = asGraph(model);
  const plan = planOf(graph);
  const values = new Map<string, Tensor>(graph.constants);
  const rows = 'rows' in x ? x.rows : x.shape[0];
  values.set(graph.input.name, { shape: [rows, ...graph.input.shape], data: x.data });
  for (const [n, node] of graph.nodes.entries()) {
    const inputs = node.inputs.map((name) => (name === '' ? undefined : values.get(name)));
    inputs.forEach((t, i) => {
      if (t === undefined && node.inputs[i] !== '') {
        throw new EcpruneError(
          'input',
          `tensor '${node.inputs[i]}' is used before it is computed`,
          undefined,
          `node '${node.name}'`,
        );
      }
    });
    let outputs: Tensor[];
    try {
      outputs = await plan.ops[n].forward(inputs, contextOf(graph, node, plan, gemm));
    } catch (error) {
      throw atNode(error, node);
    }
    node.outputs.forEach((name, i) => {
      if (name !== '' && outputs[i] !== undefined) values.set(name, outputs[i]);
    });
  }
  const output = values.get(graph.output);
  if (output === undefined) throw new EcpruneError('input', `the output '${graph.output}' is never computed`);
  return { values, output: asMatrix(output) };
}

/** Errors from an op name the node they came from. */
function atNode(error: unknown, node: GraphNode): unknown {
  if (error instanceof EcpruneError && error.where === undefined) {
    return new EcpruneError(error.code, error.detail, error.file, `node '${node.name}' (${node.op})`);
  }
  if (error instanceof RangeError) {
    return new EcpruneError('input', error.message, undefined, `node '${node.name}' (${node.op})`);
  }
  return error;
}

/** What the command-line checks need to know of a model before any work. */
export interface ModelShape extends Layered {
  /** features per sample of the graph's input */
  readonly inputs: number;
  /** values per sample of the output */
  readonly outputs: number;
}

/** The model's input and output sizes (the output's from a forward pass of one zero sample). */
export async function modelShape(model: Model): Promise<ModelShape> {
  const graph = asGraph(model);
  const inputs = inputSize(graph);
  const { output } = await forwardTrace(
    graph,
    { rows: 1, cols: inputs, data: new Float32Array(inputs) },
    tsGemm,
  );
  return { inputs, outputs: output.cols, layers: graph.layers };
}

/** The graph's output for a batch of rows (B x features), as B x outputs. */
export async function forward(model: Model, x: Matrix, gemm: Gemm): Promise<Matrix> {
  return (await forwardTrace(model, x, gemm)).output;
}

export function asMatrix(t: Tensor): Matrix {
  const rows = t.shape[0];
  const cols = rows === 0 ? 0 : t.data.length / rows;
  return { rows, cols, data: t.data as Float32Array };
}

/**
 * Backpropagates cotangents of the output to every fully-connected layer.
 *
 * `outputCotangent` holds R rows per sample, sample-major (row n·R + k is the k-th cotangent of
 * sample n), each a vector v in output space. `visit(layer, g, input)` receives, per layer, g =
 * vᵀ ∂y/∂z (B·R x n_out) and the layer's input a (B x n_in) as soon as they are known. With R = 1
 * and v = dL/dy this is the ordinary gradient; with R = K one-hot rows, the full Jacobian.
 */
export async function backpropagate(
  model: Model,
  trace: GraphTrace,
  outputCotangent: Matrix,
  gemm: Gemm,
  visit: (layer: number, cotangent: Matrix, input: Matrix) => Promise<void> | void,
): Promise<void> {
  const graph = asGraph(model);
  const plan = planOf(graph);
  const batch = trace.output.rows;
  const repeat = batch === 0 ? 1 : outputCotangent.rows / batch;
  const seed = {
    shape: [outputCotangent.rows, ...trace.values.get(graph.output)!.shape.slice(1)],
    data: outputCotangent.data,
  };
  await reverseWalk<Tensor>(graph, seed, {
    dense: (layer, g, node) => visit(layer, asMatrix(g), asMatrix(trace.values.get(node.inputs[0])!)),
    async vjp(op, node, gradOutputs) {
      const inputs = node.inputs.map((name) => (name === '' ? undefined : trace.values.get(name)));
      const outputs = node.outputs.map((name) => trace.values.get(name)!);
      try {
        return await op.vjp!({ inputs, outputs, gradOutputs, repeat }, contextOf(graph, node, plan, gemm));
      } catch (error) {
        throw atNode(error, node);
      }
    },
    add: sum,
  });
}

/** What the reverse walk does with cotangents of type T (tensors in JS, tensor names when emitting ONNX). */
export interface ReverseSteps<T> {
  /** a Dense node's output cotangent, as soon as it is complete */
  dense(layer: number, cotangent: T, node: GraphNode): Promise<void> | void;
  /** the cotangents of a node's inputs from those of its outputs (`op.vjp` is defined) */
  vjp(
    op: Op,
    node: GraphNode,
    gradOutputs: (T | undefined)[],
  ): Promise<(T | undefined)[]> | (T | undefined)[];
  /** the sum of two cotangents of the same tensor (from two consumers) */
  add(a: T, b: T): T;
}

/**
 * The one place that knows the backward order: from `seed` (the cotangent of the output) through
 * the nodes in reverse, each tensor's cotangent summed over its consumers before it is used.
 */
export async function reverseWalk<T>(graph: Graph, seed: T, steps: ReverseSteps<T>): Promise<void> {
  const plan = planOf(graph);
  const grads = new Map<string, T>([[graph.output, seed]]);
  for (let n = graph.nodes.length - 1; n >= 0; n--) {
    const node = graph.nodes[n];
    const gradOutputs = node.outputs.map((name) => grads.get(name));
    if (gradOutputs.every((g) => g === undefined)) continue;
    for (const name of node.outputs) grads.delete(name);
    if (node.op === 'Dense') await steps.dense(layerOf(node), gradOutputs[0]!, node);
    if (!node.inputs.some((name) => plan.differentiated.has(name))) continue;
    const op = plan.ops[n];
    if (op.vjp === undefined) continue;
    const gradInputs = await steps.vjp(op, node, gradOutputs);
    node.inputs.forEach((name, i) => {
      const g = gradInputs[i];
      if (g === undefined || !plan.differentiated.has(name)) return;
      const previous = grads.get(name);
      grads.set(name, previous === undefined ? g : steps.add(previous, g));
    });
  }
}

function sum(a: Tensor, b: Tensor): Tensor {
  const out = zerosLike(a.data, a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i] + b.data[i];
  return { shape: a.shape, data: out };
}
