/**
 * A plain MLP is the smallest graph: Dense, activation, Dense, ... The chain view goes the other
 * way, for the few consumers that need a chain (the `.ecsr` runtime format, neuron removal, the
 * exact nonlinear reference): it succeeds exactly when the graph is such a chain.
 */
import type { Activation, ActivationKind } from '../model/activations.js';
import type { Layer, Mlp } from '../model/mlp.js';
import { batchedTensors, type Graph, type GraphNode, type Model, withOutput } from './graph.js';

const ACTIVATION_OPS: Record<Exclude<ActivationKind, 'identity'>, string> = {
  relu: 'Relu',
  leaky_relu: 'LeakyRelu',
  tanh: 'Tanh',
  sigmoid: 'Sigmoid',
  gelu: 'Gelu',
  softplus: 'Softplus',
  elu: 'Elu',
};

/** The MLP's graph; `names` are the layers' names in the file (a state_dict's module paths), else `layer0`, ... */
export function graphFromMlp(mlp: Mlp, names?: readonly string[]): Graph {
  const nodes: GraphNode[] = [];
  let current = 'input';
  mlp.layers.forEach((layer, l) => {
    const z = `z${l}`;
    nodes.push({ name: `dense${l}`, op: 'Dense', inputs: [current], outputs: [z], attrs: { layer: l } });
    current = z;
    const act = layer.activation;
    if (act.kind !== 'identity') {
      const a = `a${l}`;
      const attrs: Record<string, number> =
        act.kind === 'leaky_relu' || act.kind === 'elu' ? { alpha: act.alpha } : {};
      nodes.push({ name: `${act.kind}${l}`, op: ACTIVATION_OPS[act.kind], inputs: [z], outputs: [a], attrs });
      current = a;
    }
  });
  return {
    input: { name: 'input', shape: [mlp.layers[0].weight.cols] },
    output: current,
    nodes,
    constants: new Map(),
    layers: mlp.layers.map((layer, l) => ({
      name: names?.[l] ?? `layer${l}`,
      weight: layer.weight,
      bias: layer.bias,
      hasBias: true,
    })),
  };
}

function activationOf(node: GraphNode): Activation | undefined {
  const kind = (Object.keys(ACTIVATION_OPS) as (keyof typeof ACTIVATION_OPS)[]).find(
    (k) => ACTIVATION_OPS[k] === node.op,
  );
  if (kind === undefined) return undefined;
  if (kind === 'gelu' && node.attrs.approximate === 'tanh') return undefined;
  if (kind === 'leaky_relu' || kind === 'elu') {
    const alpha = typeof node.attrs.alpha === 'number' ? node.attrs.alpha : kind === 'elu' ? 1 : 0.01;
    return { kind, alpha };
  }
  return { kind } as Activation;
}

/** Ops that leave a chain's rows as they are (a leading flatten, inference no-ops). */
const TRANSPARENT = new Set(['Identity', 'Dropout', 'Flatten', 'Reshape', 'Cast']);

/**
 * The model as an MLP when it is one (an MLP is returned as it is): a single path of Dense layers,
 * each followed by at most one activation, with only transparent ops between; undefined otherwise.
 */
export function chainOf(model: Model): Mlp | undefined {
  if (!('nodes' in model)) return model;
  const graph = model;
  const layers: Layer[] = [];
  let current = graph.input.name;
  let pending: Pick<Layer, 'weight' | 'bias'> | undefined;
  let activation: Activation | undefined;
  const flush = () => {
    if (pending) layers.push({ ...pending, activation: activation ?? { kind: 'identity' } });
    pending = undefined;
    activation = undefined;
  };
  const batched = batchedTensors(graph);
  for (let n = 0; n < graph.nodes.length; n++) {
    const node = graph.nodes[n];
    // shape computations (the `x.view(x.size(0), -1)` idiom) carry no data
    if (!node.outputs.some((name) => batched.has(name))) continue;
    const gelu = geluErfAt(graph, n, current);
    if (gelu !== undefined) {
      if (pending === undefined || activation !== undefined) return undefined;
      activation = { kind: 'gelu' };
      current = gelu.output;
      n = gelu.last;
      continue;
    }
    const dataInputs = node.inputs.filter((name) => batched.has(name));
    if (dataInputs.length !== 1 || dataInputs[0] !== current || node.outputs.length !== 1) return undefined;
    if (node.op === 'Dense') {
      if (pending === undefined && layers.length === 0 && activation !== undefined) return undefined;
      flush();
      const layer = graph.layers[node.attrs.layer as number];
      pending = { weight: layer.weight, bias: layer.bias };
    } else if (TRANSPARENT.has(node.op)) {
      if (pending !== undefined && (node.op === 'Flatten' || node.op === 'Reshape')) return undefined;
    } else {
      const act = activationOf(node);
      if (act === undefined || pending === undefined || activation !== undefined) return undefined;
      activation = act;
    }
    current = node.outputs[0];
  }
  flush();
  return current === graph.output && layers.length > 0 ? { layers } : undefined;
}

/**
 * GELU as exporters wrote it before ONNX had a Gelu op (torch's nn.GELU up to opset 19):
 * Div(x, √2) → Erf → Add 1 → Mul x → Mul 0.5, in that order. The graph runs these nodes as they
 * are; only the chain view names them `gelu`, so that chain-only formats (the `.ecsr` runtime,
 * safetensors with --arch) can hold such a model.
 */
export function geluErfAt(graph: Graph, n: number, x: string): { output: string; last: number } | undefined {
  const nodes = graph.nodes.slice(n, n + 5);
  if (nodes.map((node) => node.op).join() !== 'Div,Erf,Add,Mul,Mul') return undefined;
  const [div, erfNode, add, mulX, half] = nodes;
  const constant = (name: string | undefined) => {
    const t = name === undefined ? undefined : graph.constants.get(name);
    return t && t.data.length === 1 ? t.data[0] : undefined;
  };
  const other = (node: GraphNode, name: string) => node.inputs.find((input) => input !== name);
  const close = (value: number | undefined, expected: number) =>
    value !== undefined && Math.abs(value - expected) <= 1e-6 * expected;
  const matches =
    div.inputs[0] === x &&
    close(constant(div.inputs[1]), Math.SQRT2) &&
    erfNode.inputs[0] === div.outputs[0] &&
    add.inputs.includes(erfNode.outputs[0]) &&
    close(constant(other(add, erfNode.outputs[0])), 1) &&
    mulX.inputs.includes(x) &&
    mulX.inputs.includes(add.outputs[0]) &&
    half.inputs.includes(mulX.outputs[0]) &&
    close(constant(other(half, mulX.outputs[0])), 0.5);
  return matches ? { output: half.outputs[0], last: n + 4 } : undefined;
}

const graphs = new WeakMap<Mlp, Graph>();

/** The model as a graph (an MLP's graph is made once and kept, so its run plan is reused). */
export function asGraph(model: Model): Graph {
  if ('nodes' in model) return model;
  let graph = graphs.get(model);
  if (graph === undefined) {
    graph = graphFromMlp(model);
    graphs.set(model, graph);
  }
  return graph;
}

/** The op of the node that computes the graph's output when it is a softmax head. */
export function headOf(graph: Graph): 'Softmax' | 'LogSoftmax' | undefined {
  const node = graph.nodes.find((n) => n.outputs.includes(graph.output));
  return node?.op === 'Softmax' || node?.op === 'LogSoftmax' ? node.op : undefined;
}

/** The graph measured before a Softmax/LogSoftmax head (the logits), or the graph itself. */
export function logitsGraph(graph: Graph): Graph {
  const node = graph.nodes.find((n) => n.outputs.includes(graph.output));
  return headOf(graph) ? withOutput(graph, node!.inputs[0]) : graph;
}
