/**
 * Autodiff to ONNX: the whole per-batch calibration pass of src/score/statistics.ts — forward, the
 * K one-hot cotangents' backward pass, the moment sums and the loss gradient — emitted as ONE
 * ONNX graph from any graph, by each op's own `emit` (src/graph/ops, beside its forward and VJP)
 * and the same reverse walk as the JS pass (run.ts `reverseWalk`). Run by onnxruntime, every
 * elementwise step runs in C++ on all cores, intermediates come from its arena and the weights are
 * prepacked once: ×2–4 over GEMM calls with JS loops between (bench/ANALYSIS.md).
 *
 * Per batch (B samples, K output values, for each Dense layer l with input A_l and output z_l,
 * C_l = [A_l − c | (A_l − c)²]):
 *   forward        every node, as ONNX runs it
 *   sensitivities  cotangents [B, K, ...] seeded with the identity [1, K, K] (they stay [1, K, ...]
 *                  while they do not depend on the sample: the output layer's is its weight),
 *                  s_l = Σ_k g_l² (B x n_out), [Σ s (A − c) | Σ s (A − c)²] = s_lᵀ C_l (one Gemm),
 *                  m0_l = Σ_n s_l, and the mean of A_l (the runner takes c from a first short run)
 *   loss gradient  r = dL/dy at the logits (softmax − onehot, or 2 (y − t) / K) as cotangents
 *                  [B, 1, K], G_l = γ_lᵀ A_l summed over the batch
 * Browser-safe (onnx-proto only).
 */
import type { Gemm } from '../../gemm/gemm.js';
import { batchedTensors, type Graph, type GraphNode, inputSize } from '../graph.js';
import type { LossKind } from '../loss.js';
import { logitsGraph } from '../mlp-graph.js';
import type { EmitContext, Op } from '../ops/op.js';
import { forwardTrace, opFor, planOf, reverseWalk } from '../run.js';
import { sizeOf, type Tensor } from '../tensor.js';
import { intAttr, OnnxNodes } from './onnx-nodes.js';

/** Tensor names shared by the emission and the runner (src/score/statistics-graph.ts). */
export const GRAPH_INPUT = 'x';
export const GRAPH_TARGETS = 'targets';
export const graphShift = (l: number) => `shift${l}`;
/** n_out x 2 n_in: [Σ_n s (a-c) | Σ_n s (a-c)²] */
export const graphMoments = (l: number) => `moments${l}`;
/** Σ_n s (n_out) */
export const graphM0 = (l: number) => `m0_${l}`;
/** the mean of layer l's input over the run's samples (n_in): the shift c, from a first short run */
export const graphMean = (l: number) => `mean${l}`;
/** Σ_n dL/dW (n_out x n_in) */
export const graphGradient = (l: number) => `gradient${l}`;

export interface CalibrationGraphOptions {
  /** emit the moment sums of every layer (the sensitivity statistics) */
  readonly moments: boolean;
  /** emit Σ_n dL/dW for this loss; the graph then takes the targets as B x K floats */
  readonly lossGradient?: LossKind;
}

export interface CalibrationGraph {
  readonly model: Uint8Array;
  /** the outputs summed over the batch (moments, m0, gradients) */
  readonly sums: readonly string[];
  /** the layers whose moments are emitted (those the output depends on): their inputs `graphShift`, `graphMean` */
  readonly momentLayers: readonly number[];
  /** K, the output values per sample */
  readonly outputs: number;
  /** the logits' values per sample (the targets' width) */
  readonly classes: number;
  /** the largest per-sample size of a cotangent: a run holds B x K x this many floats */
  readonly cotangentWidth: number;
}

/** A cotangent [B or 1, R, ...] as emitted, times a factor [B, 1, ...] not yet multiplied in. */
interface Cotangent {
  readonly g: string;
  readonly factor?: string;
  readonly maskFactor?: boolean;
}

/** Whether every op that touches data has an emission (otherwise the pass stays in JS). */
export function canEmit(graph: Graph): boolean {
  const batched = batchedTensors(graph);
  return graph.nodes.every((node) => !node.outputs.some((name) => batched.has(name)) || opFor(node).emit);
}

/**
 * The ONNX model of one batch's statistics for `graph` (weights and constants as initializers).
 * `gemm` runs a one-sample forward pass for the per-sample shapes and the constants' values.
 */
export async function calibrationGraph(
  graph: Graph,
  options: CalibrationGraphOptions,
  gemm: Gemm,
): Promise<CalibrationGraph> {
  const plan = planOf(graph);
  const trace = await forwardTrace(
    graph,
    { shape: [1, ...graph.input.shape], data: new Float32Array(inputSize(graph)) },
    gemm,
  );
  const shapeOf = (name: string) => {
    const { shape } = trace.values.get(name)!;
    return plan.batched.has(name) ? shape.slice(1) : shape;
  };
  const nodes = new OnnxNodes();
  nodes.input(GRAPH_INPUT, ['batch', inputSize(graph)]);
  const names = new Map<string, string>([
    [
      graph.input.name,
      graph.input.shape.length === 1
        ? GRAPH_INPUT
        : nodes.node('Reshape', [GRAPH_INPUT, nodes.ints([0, ...graph.input.shape])]),
    ],
  ]);
  const besides = new Map<string, string>();
  const emitted = (name: string): string => {
    let known = names.get(name);
    if (known === undefined) {
      const value: Tensor = trace.values.get(name)!;
      known = nodes.floats(value.shape, value.data);
      names.set(name, known);
    }
    return known;
  };
  const besideOf = (name: string): string => {
    if (!plan.batched.has(name)) return emitted(name);
    let beside = besides.get(name);
    if (beside === undefined) {
      beside = nodes.node('Unsqueeze', [emitted(name), nodes.ints([1])]);
      besides.set(name, beside);
    }
    return beside;
  };
  const contextOf = (node: GraphNode): EmitContext => ({
    nodes,
    attrs: node.attrs,
    batched: node.inputs.map((name) => plan.batched.has(name)),
    layers: graph.layers,
    inputShapes: node.inputs.map((name) => (name === '' ? undefined : shapeOf(name))),
    outputShapes: node.outputs.map((name) => (trace.values.has(name) ? shapeOf(name) : [])),
    inputValues: node.inputs.map((name) =>
      name === '' || plan.batched.has(name) ? undefined : trace.values.get(name),
    ),
    input: (i) => emitted(node.inputs[i]),
    beside: (i) => besideOf(node.inputs[i]),
    besideOutput: (i) => besideOf(node.outputs[i]),
  });

  for (const node of graph.nodes) {
    // constants and shape computations were folded by the trace: their values become initializers
    if (!node.outputs.some((name) => plan.batched.has(name))) continue;
    const emit = opFor(node).emit;
    if (emit === undefined) throw new RangeError(`op '${node.op}' has no ONNX emission`);
    emit.forward(contextOf(node)).forEach((emitted, i) => {
      names.set(node.outputs[i], emitted);
    });
  }

  const sums: string[] = [];
  const momentLayers: number[] = [];
  const output = (value: string, name: string, dims: (number | string)[]) => {
    nodes.output(value, name, dims);
    sums.push(name);
  };
  const materialized = (c: Cotangent) => (c.factor === undefined ? c.g : nodes.node('Mul', [c.g, c.factor]));
  const steps = {
    vjp(op: Op, node: GraphNode, grads: (Cotangent | undefined)[]): (Cotangent | undefined)[] {
      const emit = op.emit!;
      const [c] = grads;
      if (emit.factor !== undefined && c !== undefined) {
        const factor = emit.factor(contextOf(node));
        return [
          {
            g: c.g,
            factor: c.factor === undefined ? factor : nodes.node('Mul', [c.factor, factor]),
            maskFactor: (c.factor === undefined || c.maskFactor) && emit.maskFactor,
          },
        ];
      }
      const gradInputs = emit.vjp!(
        grads.map((grad) => grad && materialized(grad)),
        contextOf(node),
      );
      return gradInputs.map((g) => (g === undefined ? undefined : { g }));
    },
    add: (a: Cotangent, b: Cotangent) => ({ g: nodes.node('Add', [materialized(a), materialized(b)]) }),
  };
  const outputShape = shapeOf(graph.output);
  const K = sizeOf(outputShape);
  const keep = (k: number) => intAttr('keepdims', k);

  if (options.moments) {
    const identity = new Float32Array(K * K);
    for (let k = 0; k < K; k++) identity[k * K + k] = 1;
    const seed = { g: nodes.floats([1, K, ...outputShape], identity) };
    await reverseWalk<Cotangent>(graph, seed, {
      ...steps,
      dense(l, { g, factor, maskFactor }, node) {
        const { rows: nOut, cols: nIn } = graph.layers[l].weight;
        const a = emitted(node.inputs[0]);
        const z = emitted(node.outputs[0]);
        // Σ_k g² = (Σ_k h²) ⊙ factor², as [B, n_out] also where g does not depend on the sample
        const perRow = nodes.node('ReduceSumSquare', [g, nodes.ints([1])], [keep(0)]);
        const squared = factor && (maskFactor ? factor : nodes.node('Mul', [factor, factor]));
        const s =
          squared === undefined
            ? nodes.node('Expand', [perRow, nodes.node('Shape', [z])])
            : nodes.node('Mul', [perRow, nodes.node('Squeeze', [squared, nodes.ints([1])])]);
        nodes.input(graphShift(l), [nIn]);
        const mean = nodes.node('ReduceMean', [a, nodes.ints([0])], [keep(0)]);
        nodes.output(mean, graphMean(l), [nIn]);
        momentLayers.push(l);
        const centred = nodes.node('Sub', [a, graphShift(l)]);
        const both = nodes.node(
          'Concat',
          [centred, nodes.node('Mul', [centred, centred])],
          [intAttr('axis', 1)],
        );
        output(nodes.node('Gemm', [s, both], [intAttr('transA', 1)]), graphMoments(l), [nOut, 2 * nIn]);
        output(nodes.node('ReduceSum', [s, nodes.ints([0])], [keep(0)]), graphM0(l), [nOut]);
      },
    });
  }

  // the losses are defined on the logits: before a softmax head
  const lossGraph = logitsGraph(graph);
  const logitsShape = shapeOf(lossGraph.output);
  const classes = sizeOf(logitsShape);
  if (options.lossGradient !== undefined) {
    nodes.input(GRAPH_TARGETS, ['batch', classes]);
    const y = nodes.node('Reshape', [emitted(lossGraph.output), nodes.ints([0, classes])]);
    const residual =
      options.lossGradient === 'ce'
        ? nodes.node('Sub', [nodes.node('Softmax', [y], [intAttr('axis', 1)]), GRAPH_TARGETS])
        : nodes.node('Mul', [nodes.node('Sub', [y, GRAPH_TARGETS]), nodes.scalar(2 / classes)]);
    const seed = { g: nodes.node('Reshape', [residual, nodes.ints([0, 1, ...logitsShape])]) };
    await reverseWalk<Cotangent>(lossGraph, seed, {
      ...steps,
      dense(l, cotangent, node) {
        const { rows: nOut, cols: nIn } = graph.layers[l].weight;
        const rows = nodes.node('Reshape', [materialized(cotangent), nodes.ints([-1, nOut])]);
        const gradient = nodes.node('Gemm', [rows, emitted(node.inputs[0])], [intAttr('transA', 1)]);
        output(gradient, graphGradient(l), [nOut, nIn]);
      },
    });
  }

  const cotangentWidth = Math.max(1, ...[...plan.differentiated].map((name) => sizeOf(shapeOf(name))));
  return { model: nodes.encode('ec-statistics'), sums, momentLayers, outputs: K, classes, cotangentWidth };
}
