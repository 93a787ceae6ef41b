/**
 * The whole per-batch calibration pass of statistics.ts — forward, sensitivities, moment sums and
 * the loss gradient — as ONE ONNX graph, for backends that run graphs (onnxruntime). Measured on
 * a 2-core VM (bench/ANALYSIS.md): ×2–4 over the same computation as separate GEMM calls with JS
 * loops in between, because every elementwise step then runs in C++ on all cores, intermediates
 * come from onnxruntime's arena instead of fresh pages, and the weights are prepacked once.
 * Browser-safe (onnx-proto only). The float64 sums across batches stay in JS (statistics-graph.ts).
 *
 * Per batch (B samples, layers 0..L-1, K outputs, d_l = act'(z_l), C_l = [A_{l-1}-c | (A_{l-1}-c)²]):
 *   forward      z_l = A_{l-1} W_lᵀ + b_l,  A_l = act(z_l),  d_l
 *   output layer s = d_{L-1}²; an identity output has s = 1 for every neuron, so its moments are
 *                one row Σ_n C (the same for every neuron, `sharedOutputRow`) and m0 = B
 *   layer L-2    the one-hot cotangents make g[n,k,:] = d_{L-1}[n,k] W_{L-1}[k,:] ⊙ d_{L-2}[n,:], a
 *                broadcast instead of a GEMM, and s = d_{L-2}² ⊙ (d_{L-1}² · (W_{L-1} ⊙ W_{L-1}))
 *   layers < L-2 g_l = (g_{l+1} W_{l+1}) ⊙ d_l (B x K x n_l),  s_l = Σ_k g_l²
 *   moments      [Σ s (a-c) | Σ s (a-c)²] = s_lᵀ C_l (one Gemm),  m0_l = Σ_n s_l, and the mean of
 *                every layer input (the runner takes c from a run on the first 256 samples)
 *   loss gradient r = dL/dy (softmax - onehot, or 2 (y - t) / K), γ_{L-1} = r ⊙ d_{L-1},
 *                γ_l = (γ_{l+1} W_{l+1}) ⊙ d_l,  G_l = γ_lᵀ A_{l-1} (summed over the batch)
 */
import type { onnx as OnnxTypes } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import { encodeModel, floatValueInfo, MODEL_OPSET } from '../gemm/gemm-model.js';
import type { LossKind } from '../graph/loss.js';
import { GraphWriter, rawTensor, writeActivation } from '../io/onnx.js';
import type { Activation } from '../model/activations.js';
import type { Mlp } from '../model/mlp.js';

const { onnx } = onnxProto;
const { INT, INTS, TENSOR } = onnx.AttributeProto.AttributeType;

/** Tensor names shared by the builder and the runner. */
export const GRAPH_INPUT = 'x';
export const GRAPH_TARGETS = 'targets';
export const graphShift = (l: number) => `shift${l}`;
/** n_out x 2 n_in: [Σ_n s (a-c) | Σ_n s (a-c)²]; 1 x 2 n_in for an identity output layer */
export const graphMoments = (l: number) => `moments${l}`;
/** Σ_n s (n_out); absent for an identity output layer (it is B) */
export const graphM0 = (l: number) => `m0_${l}`;
/** the mean of layer l's input over the run's samples (n_in): the shift c, from a first short run */
export const graphMean = (l: number) => `mean${l}`;
/** Σ_n dL/dW (n_out x n_in) */
export const graphGradient = (l: number) => `gradient${l}`;

export interface EcGraphOptions {
  /** emit the moment sums of every layer (the sensitivity statistics) */
  readonly moments: boolean;
  /** emit Σ_n dL/dW for this loss; the graph then takes the targets as B x K floats */
  readonly lossGradient?: LossKind;
}

export interface EcGraph {
  readonly model: Uint8Array;
  /** the outputs summed over the batch (moments, m0, gradients) */
  readonly sums: readonly string[];
  /** the layer-input means (`graphMean`), when the moments are emitted */
  readonly means: readonly string[];
  /** the output layer is the identity: its moments are one row shared by all neurons, m0 = B */
  readonly sharedOutputRow: boolean;
}

type Attribute = OnnxTypes.IAttributeProto;

/**
 * The graph as this builder writes it: nodes named after their op, constants as initializers, on
 * io/onnx.ts's GraphWriter (which keeps every name unique).
 */
interface Builder {
  node(opType: string, inputs: string[], attribute?: Attribute[]): string;
  floats(name: string, dims: number[], values: Float32Array): string;
  scalar(value: number): string;
  ints(values: number[]): string;
  /** `value` as the graph output `name` */
  output(value: string, name: string): void;
}

function builder(writer: GraphWriter): Builder {
  return {
    node: (opType, inputs, attribute = []) => writer.node(opType, opType, inputs, attribute),
    floats: (name, dims, values) => writer.floats(name, dims, values),
    scalar: (value) => writer.floats('c', [], Float32Array.of(value)),
    ints: (values) => writer.ints('axes', values),
    output(value, name) {
      writer.node('Identity', name, [value]);
      writer.finish(name);
    },
  };
}

const intAttribute = (name: string, i: number): Attribute => ({ name, i, type: INT });
const intsAttribute = (name: string, ints: number[]): Attribute => ({ name, ints, type: INTS });

/**
 * act'(z) as nodes, given z and act(z), with the conventions of model/activations.ts
 * (relu'(0) = 0, leaky_relu'(0) = alpha, elu'(0) = 1); undefined for the identity (≡ 1).
 */
function derivativeNodes(graph: Builder, act: Activation, z: string, output: string): string | undefined {
  const positive = () => graph.node('Greater', [z, graph.scalar(0)]);
  switch (act.kind) {
    case 'identity':
      return undefined;
    case 'relu':
      return graph.node('Cast', [positive()], [intAttribute('to', onnx.TensorProto.DataType.FLOAT)]);
    case 'leaky_relu':
      return graph.node('Where', [positive(), graph.scalar(1), graph.scalar(act.alpha)]);
    case 'tanh':
      return graph.node('Sub', [graph.scalar(1), graph.node('Mul', [output, output])]);
    case 'sigmoid':
      return graph.node('Mul', [output, graph.node('Sub', [graph.scalar(1), output])]);
    case 'gelu': {
      // gelu' = Φ(z) + z φ(z),  Φ(z) = (1 + erf(z/√2)) / 2,  φ(z) = e^{-z²/2} / √(2π)
      const erf = graph.node('Erf', [graph.node('Mul', [z, graph.scalar(Math.SQRT1_2)])]);
      const cdf = graph.node('Mul', [graph.node('Add', [erf, graph.scalar(1)]), graph.scalar(0.5)]);
      const density = graph.node('Mul', [
        graph.node('Exp', [graph.node('Mul', [graph.node('Mul', [z, z]), graph.scalar(-0.5)])]),
        graph.scalar(1 / Math.sqrt(2 * Math.PI)),
      ]);
      return graph.node('Add', [cdf, graph.node('Mul', [z, density])]);
    }
    case 'softplus':
      return graph.node('Sigmoid', [z]);
    case 'elu': {
      // elu' = alpha e^z = elu(z) + alpha for z < 0, else 1
      const negative = graph.node('Less', [z, graph.scalar(0)]);
      return graph.node('Where', [
        negative,
        graph.node('Add', [output, graph.scalar(act.alpha)]),
        graph.scalar(1),
      ]);
    }
  }
}

/** d ⊙ d, skipped for ReLU whose derivative is 0 or 1. */
function squared(graph: Builder, act: Activation, d: string): string {
  return act.kind === 'relu' ? d : graph.node('Mul', [d, d]);
}

/** A float tensor of ones with the shape held by the int64 tensor `shape`. */
function ones(graph: Builder, shape: string): string {
  const one: OnnxTypes.ITensorProto = rawTensor('one', [1], [1], 'float32');
  return graph.node('ConstantOfShape', [shape], [{ name: 'value', t: one, type: TENSOR }]);
}

/** The ONNX model of one batch's statistics for `mlp` (its weights as initializers). */
export function ecGraph(mlp: Mlp, options: EcGraphOptions): EcGraph {
  const L = mlp.layers.length;
  const sizes = [mlp.layers[0].weight.cols, ...mlp.layers.map((layer) => layer.weight.rows)];
  const K = sizes[L];
  const fixedNames = [GRAPH_INPUT, GRAPH_TARGETS].concat(
    ...mlp.layers.map((_, l) => [graphShift(l), graphMoments(l), graphM0(l), graphMean(l), graphGradient(l)]),
  );
  const writer = new GraphWriter(fixedNames, false);
  const graph = builder(writer);
  const inputs = [floatValueInfo(GRAPH_INPUT, ['batch', sizes[0]])];
  const outputs: OnnxTypes.IValueInfoProto[] = [];
  const means: string[] = [];
  const emit = (value: string, name: string, dims: (number | string)[]) => {
    graph.output(value, name);
    outputs.push(floatValueInfo(name, dims));
  };

  // forward: the input of every layer and the derivative of every activation
  const layerInputs: string[] = [];
  const weights: string[] = [];
  const derivatives: (string | undefined)[] = [];
  let a = GRAPH_INPUT;
  for (let l = 0; l < L; l++) {
    const { weight, bias, activation } = mlp.layers[l];
    layerInputs.push(a);
    const W = graph.floats(`W${l}`, [weight.rows, weight.cols], weight.data);
    weights.push(W);
    const z = graph.node(
      'Gemm',
      [a, W, graph.floats(`b${l}`, [weight.rows], bias)],
      [intAttribute('transB', 1)],
    );
    const output = writeActivation(writer, activation, [], `layer${l}`, z, MODEL_OPSET);
    const derivative = derivativeNodes(graph, activation, z, output);
    derivatives.push(derivative ?? (l < L - 1 ? ones(graph, graph.node('Shape', [z])) : undefined));
    a = output;
  }
  const sharedOutputRow = derivatives[L - 1] === undefined;

  if (options.moments) {
    const moments = (l: number, s: string) => {
      inputs.push(floatValueInfo(graphShift(l), [sizes[l]]));
      const mean = graph.node(
        'ReduceMean',
        [layerInputs[l]],
        [intsAttribute('axes', [0]), intAttribute('keepdims', 0)],
      );
      emit(mean, graphMean(l), [sizes[l]]);
      means.push(graphMean(l));
      const centred = graph.node('Sub', [layerInputs[l], graphShift(l)]);
      const both = graph.node(
        'Concat',
        [centred, graph.node('Mul', [centred, centred])],
        [intAttribute('axis', 1)],
      );
      if (s === '') {
        // 1ᵀ C as a Gemm, not a ReduceSum: onnxruntime's float32 ReduceSum over the rows measured
        // ~10x less accurate (EC scores of the output layer 1.5e-5 vs 1.2e-6 from float64)
        const rows = graph.node('Slice', [graph.node('Shape', [both]), graph.ints([0]), graph.ints([1])]);
        const onesColumn = ones(
          graph,
          graph.node('Concat', [rows, graph.ints([1])], [intAttribute('axis', 0)]),
        );
        emit(graph.node('Gemm', [onesColumn, both], [intAttribute('transA', 1)]), graphMoments(l), [
          1,
          2 * sizes[l],
        ]);
        return;
      }
      emit(graph.node('Gemm', [s, both], [intAttribute('transA', 1)]), graphMoments(l), [
        sizes[l + 1],
        2 * sizes[l],
      ]);
      emit(graph.node('ReduceSum', [s, graph.ints([0])], [intAttribute('keepdims', 0)]), graphM0(l), [
        sizes[l + 1],
      ]);
    };
    const acts = mlp.layers.map((layer) => layer.activation);
    const dOut = derivatives[L - 1];
    moments(L - 1, dOut === undefined ? '' : squared(graph, acts[L - 1], dOut));
    let g = '';
    for (let l = L - 2; l >= 0; l--) {
      const d = derivatives[l]!;
      const dUnsqueezed = () => graph.node('Unsqueeze', [d, graph.ints([1])]);
      let s: string;
      if (l === L - 2) {
        const W = mlp.layers[L - 1].weight;
        const Wrows = () => graph.floats('Wout3d', [1, K, W.cols], W.data);
        const Wsquared = W.data.map((w) => w * w);
        let h = Wrows; // (1, K, n): d_{L-1}[n,k] W[k,:], broadcast over the samples (made when used)
        let weightSensitivity: string; // d_{L-1}² · W², (B x n) or (n)
        if (dOut === undefined) {
          const q = new Float32Array(W.cols);
          for (let k = 0; k < K; k++) for (let j = 0; j < W.cols; j++) q[j] += Wsquared[k * W.cols + j];
          weightSensitivity = graph.floats('WoutSquaredSum', [W.cols], q);
        } else {
          h = () => graph.node('Mul', [graph.node('Unsqueeze', [dOut, graph.ints([2])]), Wrows()]);
          const WsquaredName = graph.floats('WoutSquared', [K, W.cols], Wsquared);
          weightSensitivity = graph.node('MatMul', [squared(graph, acts[L - 1], dOut), WsquaredName]);
        }
        s = graph.node('Mul', [squared(graph, acts[l], d), weightSensitivity]);
        if (l > 0) g = graph.node('Mul', [h(), dUnsqueezed()]);
      } else {
        const h = graph.node('MatMul', [g, weights[l + 1]]);
        const reduce = (t: string) =>
          graph.node('ReduceSumSquare', [t], [intsAttribute('axes', [1]), intAttribute('keepdims', 0)]);
        if (l > 0) {
          g = graph.node('Mul', [h, dUnsqueezed()]);
          s = reduce(g);
        } else {
          s = graph.node('Mul', [squared(graph, acts[l], d), reduce(h)]); // g_0 itself is not needed
        }
      }
      moments(l, s);
    }
  }

  if (options.lossGradient !== undefined) {
    inputs.push(floatValueInfo(GRAPH_TARGETS, ['batch', K]));
    const y = a;
    const residual =
      options.lossGradient === 'ce'
        ? graph.node('Sub', [graph.node('Softmax', [y], [intAttribute('axis', 1)]), GRAPH_TARGETS])
        : graph.node('Mul', [graph.node('Sub', [y, GRAPH_TARGETS]), graph.scalar(2 / K)]);
    let gamma = residual;
    for (let l = L - 1; l >= 0; l--) {
      if (l < L - 1) gamma = graph.node('MatMul', [gamma, weights[l + 1]]);
      const d = derivatives[l];
      if (d !== undefined) gamma = graph.node('Mul', [gamma, d]);
      const gradient = graph.node('Gemm', [gamma, layerInputs[l]], [intAttribute('transA', 1)]);
      emit(gradient, graphGradient(l), [sizes[l + 1], sizes[l]]);
    }
  }

  const model = encodeModel({
    name: 'ec-statistics',
    node: writer.nodes,
    initializer: writer.initializers,
    input: inputs,
    output: outputs,
  });
  return {
    model,
    sums: outputs.map((o) => o.name!).filter((name) => !means.includes(name)),
    means,
    sharedOutputRow,
  };
}
