/**
 * A graph not read from TF.js, as a TF.js functional model (browser-safe): a Keras `Model` with each
 * layer's `inbound_nodes`, as tfjs-layers saves one, built op by op. Each op becomes Keras layers
 * that compute the same function (read.ts reads each of them back into ops):
 *
 * - a fully-connected layer is a Dense layer, taking the activation after it when tfjs-layers has
 *   that activation (read.ts's KERAS_ACTIVATIONS, found by evaluating both) and nothing else reads
 *   the Dense's output; other activations are Activation layers, or LeakyReLU, PReLU,
 *   ThresholdedReLU, ReLU(max_value) layers;
 * - x · sigmoid(x) (SiLU as exported) is swish, GELU's Erf form gelu, softsign's Abs/Add/Div form
 *   softsign, mish's Softplus/Tanh/Mul form mish, LayerNorm's decomposed form (ReduceMean, Sub, Pow,
 *   ReduceMean, Add, Sqrt, Div, then Mul and Add) a LayerNormalization;
 * - BatchNormalization, LayerNormalization over the last axis, Add, Sub and Mul between tensors
 *   (Add, Multiply), Concat of features (Concatenate), Flatten and Reshape (Flatten, Reshape);
 * - arithmetic with a constant is a Rescaling layer (x · scale + offset) or, per feature, a
 *   BatchNormalization that computes γ x + β; an integer power is a Multiply; Clip, HardSigmoid,
 *   HardSwish, Celu, an ELU with alpha other than 1 (which tfjs-layers' ELU layer refuses) and the
 *   tanh GELU (whose gelu_new tfjs-layers saves but cannot load) are written with Rescaling, ReLU,
 *   Multiply, Add and Activation layers;
 * - Identity, Dropout and Cast are dropped; ops on shapes only (the `x.view(x.size(0), -1)` idiom)
 *   are evaluated into the Reshape's target.
 *
 * Anything else is refused with one line naming the node and the op. The per-sample shapes, the
 * values of shape computations and the parameters read off activations (a LeakyRelu's slope is
 * −f(−1)) come from running the graph's own ops.
 */
import { EcpruneError } from '../../errors.js';
import { tsGemm } from '../../gemm/ts-gemm.js';
import {
  batchedTensors,
  compensationTarget,
  type Graph,
  type GraphNode,
  layerOf,
} from '../../graph/graph.js';
import { geluErfAt } from '../../graph/mlp-graph.js';
import { OPS } from '../../graph/ops/index.js';
import { ONNX_EPSILON } from '../../graph/ops/normalize.js';
import { intsAttr, numberAttr } from '../../graph/ops/op.js';
import { GELU_CUBIC, hardSigmoidParameters, SQRT_2_OVER_PI } from '../../graph/ops/unary.js';
import { forwardTrace } from '../../graph/run.js';
import { broadcastIndex, sizeOf, type Tensor } from '../../graph/tensor.js';
import { type FloatArray, transpose } from '../../model/matrix.js';
import type { Json } from './manifest.js';
import { KERAS_ACTIVATIONS } from './read.js';

/** A weight of the written model: its manifest name and shape, and its values. */
export interface KerasWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly values: FloatArray;
}

export interface KerasModel {
  /** the Keras model config (model.json's modelTopology) */
  readonly topology: Json;
  /** in manifest order */
  readonly weights: readonly KerasWeight[];
}

/**
 * The activations of KERAS_ACTIVATIONS that tfjs-layers 4 loads (its names, snake_case in a
 * model.json). It has no exponential, silu, hard_silu/hard_swish or leaky_relu activation, and its
 * loader refuses the gelu_new it saves ("Unknown activation: geluNew").
 */
const TFJS_LAYERS_ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'elu',
  'selu',
  'softplus',
  'softsign',
  'sigmoid',
  'hard_sigmoid',
  'tanh',
  'swish',
  'gelu',
  'mish',
  'softmax',
  'log_softmax',
] as const;

/** The ops written as activations (or refused as such): TFJS_LAYERS_ACTIVATIONS' and the expanded ones. */
const ACTIVATION_OPS: ReadonlySet<string> = new Set([
  ...TFJS_LAYERS_ACTIVATIONS.flatMap((name) => {
    const ops = KERAS_ACTIVATIONS[name];
    return typeof ops === 'string' ? [] : [ops.op];
  }),
  'LeakyRelu',
  'ThresholdedRelu',
  'Celu',
  'HardSwish',
]);

/** Why `graph` cannot be written as a TF.js functional model (one line, naming the node), or undefined. */
export async function tfjsGraphProblem(graph: Graph): Promise<string | undefined> {
  try {
    await kerasModelOf(graph);
    return undefined;
  } catch (error) {
    if (error instanceof EcpruneError && error.code === 'unsupported') return error.detail;
    throw error;
  }
}

/** `graph` as Keras layers tfjs-layers loads; an 'unsupported' EcpruneError names a node it cannot hold. */
export async function kerasModelOf(graph: Graph): Promise<KerasModel> {
  const sample = new Float32Array(sizeOf(graph.input.shape));
  const { values } = await forwardTrace(graph, { shape: [1, ...graph.input.shape], data: sample }, tsGemm);
  const writer = new KerasWriter(graph, values);
  return writer.write();
}

interface KerasLayer {
  readonly name: string;
  readonly className: string;
  readonly config: Json;
  /** the Keras layers it is called on */
  readonly inbound: readonly string[];
  readonly weights: KerasWeight[];
}

/** A pattern of several nodes written as one layer: the last node's index, its output and the layer. */
interface Matched {
  readonly last: number;
  readonly output: string;
  readonly layer: string;
}

/**
 * An elementwise op's output on one sample (their forward passes compute synchronously: only Dense
 * awaits its GEMM).
 */
function evaluate(
  op: string,
  attrs: GraphNode['attrs'],
  inputs: readonly (Tensor | undefined)[],
  batched: readonly boolean[],
): Float64Array {
  const outputs = OPS[op].forward(inputs, { attrs, batched, layers: [], gemm: tsGemm }) as Tensor[];
  return outputs[0].data as Float64Array;
}

/** Values a unary op is compared on, spanning every kink and saturation of the activations. */
const PROBE = Float64Array.of(-40, -7, -3, -1.5, -1, -0.5, -0.1, 0, 0.2, 0.7, 1, 1.3, 2.5, 4, 8, 40);

class KerasWriter {
  private readonly layers: KerasLayer[] = [];
  private readonly taken = new Set<string>();
  /** graph tensor → the Keras layer whose output it is */
  private readonly outputs = new Map<string, string>();
  /** Dense output tensor → its Keras layer, while it may still take the activation after it */
  private readonly denseOutputs = new Map<string, KerasLayer>();
  /** Dense output tensor → a bias the BatchNormalization after it takes in its moving mean */
  private readonly foldedBias = new Map<string, FloatArray>();
  private readonly batched: ReadonlySet<string>;
  /** live nodes reading each tensor (and 1 more for the graph's output) */
  private readonly uses = new Map<string, number>();
  private readonly live: readonly boolean[];

  constructor(
    private readonly graph: Graph,
    private readonly values: ReadonlyMap<string, Tensor>,
  ) {
    this.batched = batchedTensors(graph);
    const needed = new Set([graph.output]);
    const live = graph.nodes.map(() => false);
    for (let n = graph.nodes.length - 1; n >= 0; n--) {
      const node = graph.nodes[n];
      if (!node.outputs.some((name) => needed.has(name) && this.batched.has(name))) continue;
      live[n] = true;
      for (const name of node.inputs) needed.add(name);
    }
    this.live = live;
    const count = (name: string) => this.uses.set(name, (this.uses.get(name) ?? 0) + 1);
    graph.nodes.forEach((node, n) => {
      if (live[n]) node.inputs.forEach(count);
    });
    count(graph.output);
  }

  write(): KerasModel {
    const { graph } = this;
    const input = this.add(graph.input.name, 'InputLayer', {
      batch_input_shape: [null, ...graph.input.shape],
      dtype: 'float32',
      sparse: false,
    });
    this.outputs.set(graph.input.name, input.name);
    for (let n = 0; n < graph.nodes.length; n++) {
      if (!this.live[n]) continue;
      const matched = this.layerNormAt(n) ?? this.activationPatternAt(n);
      if (matched) {
        this.outputs.set(matched.output, matched.layer);
        n = matched.last;
        continue;
      }
      const node = graph.nodes[n];
      this.outputs.set(node.outputs[0], this.node(node));
    }
    const output = this.ref(graph.output, graph.nodes[graph.nodes.length - 1]);
    const topology: Json = {
      class_name: 'Model',
      config: {
        name: 'model',
        layers: this.layers.map((layer) => ({
          name: layer.name,
          class_name: layer.className,
          config: { ...layer.config, name: layer.name, trainable: true },
          inbound_nodes: layer.inbound.length === 0 ? [] : [layer.inbound.map((name) => [name, 0, 0, {}])],
        })),
        input_layers: [[input.name, 0, 0]],
        output_layers: [[output, 0, 0]],
      },
    };
    return { topology, weights: this.layers.flatMap((layer) => layer.weights) };
  }

  // ------------------------------------------------------------------------------------------
  // Layers and tensors

  /** Adds a Keras layer named after `base` (made a valid, unique tfjs-layers name). */
  private add(
    base: string,
    className: string,
    config: Json,
    inbound: readonly string[] = [],
    weights: (name: string) => KerasWeight[] = () => [],
  ): KerasLayer {
    // tfjs-layers' name scopes take [A-Za-z0-9][-A-Za-z0-9._/]*; '/' would be read as a scope
    const stem =
      base.replace(/[^-A-Za-z0-9._]+/g, '_').replace(/^[^A-Za-z0-9]+/, '') || className.toLowerCase();
    let name = stem;
    for (let k = 1; this.taken.has(name); k++) name = `${stem}_${k}`;
    this.taken.add(name);
    const layer = { name, className, config, inbound, weights: weights(name) };
    this.layers.push(layer);
    return layer;
  }

  /**
   * A merge layer (Add, Multiply, Concatenate) of `inputs`. tfjs-layers 4.22 fails on a merge that
   * reads one tensor twice ("Tensor is disposed", seen with Multiply([x, x])), so each repeat goes
   * through its own Activation('linear').
   */
  private merged(base: string, className: string, inputs: readonly string[], config: Json = {}): string {
    const distinct = inputs.map((input, i) =>
      inputs.indexOf(input) < i
        ? this.add(base, 'Activation', { activation: 'linear' }, [input]).name
        : input,
    );
    return this.add(base, className, config, distinct).name;
  }

  /** The Keras layer computing `tensor` (which `node` reads). */
  private ref(tensor: string, node: GraphNode): string {
    const layer = this.outputs.get(tensor);
    // a tensor inside a pattern written as one layer, read from outside it (the patterns check this)
    if (layer === undefined) throw this.refuse(node, 'it reads a tensor no Keras layer computes');
    return layer;
  }

  private shape(tensor: string): readonly number[] {
    return this.values.get(tensor)!.shape.slice(1);
  }

  private constant(tensor: string): Tensor | undefined {
    return tensor === '' || this.batched.has(tensor) ? undefined : this.values.get(tensor);
  }

  private dataInputs(node: GraphNode): string[] {
    return node.inputs.filter((name) => this.batched.has(name));
  }

  private refuse(node: GraphNode, why = 'tfjs-layers has no layer that computes it'): EcpruneError {
    return new EcpruneError(
      'unsupported',
      `a TF.js model.json cannot hold node '${node.name}' (op ${node.op}: ${why}): write .onnx`,
    );
  }

  // ------------------------------------------------------------------------------------------
  // Ops

  /** The Keras layer computing `node`'s output, added. */
  private node(node: GraphNode): string {
    const data = this.dataInputs(node);
    const x = data[0];
    switch (node.op) {
      case 'Dense':
        return this.dense(node);
      case 'Identity':
      case 'Dropout':
      case 'Cast':
        return this.ref(x, node);
      case 'Flatten':
      case 'Reshape':
      case 'Squeeze':
      case 'Unsqueeze':
        return this.reshape(node, x);
      case 'BatchNormalization':
        return this.batchNorm(node, x);
      case 'LayerNormalization':
        return this.layerNorm(node, x);
      case 'Concat':
        return this.concat(node, data);
      case 'PRelu':
        return this.prelu(node, x);
    }
    if (data.length === 2 && ['Add', 'Sub', 'Mul'].includes(node.op)) return this.merge(node, data);
    if (data.length === 1 && ['Add', 'Sub', 'Mul', 'Div', 'Neg'].includes(node.op))
      return this.arithmetic(node, x);
    if (data.length === 1 && node.op === 'Pow' && node.inputs[0] === x) return this.power(node, x);
    if (data.length === 1 && node.inputs[0] === x && ACTIVATION_OPS.has(node.op))
      return this.activation(node, x);
    throw this.refuse(node);
  }

  private dense(node: GraphNode): string {
    const l = layerOf(node);
    const layer = this.graph.layers[l];
    let x = this.ref(node.inputs[0], node);
    // Keras' Dense acts on the last axis; the graph's on the flattened sample
    if (this.shape(node.inputs[0]).length !== 1)
      x = this.add(`${layer.name}_flatten`, 'Flatten', {}, [x]).name;
    const target = compensationTarget(this.graph, l);
    // a bias compensation put on a bias-free layer goes into the BatchNormalization after it
    if (target === 'batchnorm') this.foldedBias.set(node.outputs[0], layer.bias);
    const useBias = target === 'bias' || (target === 'new-bias' && layer.bias.some((b) => b !== 0));
    const config: Json = {
      units: layer.weight.rows,
      activation: 'linear',
      use_bias: useBias,
      dtype: 'float32',
    };
    const dense = this.add(layer.name, 'Dense', config, [x], (name) => [
      {
        name: `${name}/kernel`,
        shape: [layer.weight.cols, layer.weight.rows],
        // transposed only when written: checking whether a graph can be written (unwritable())
        // builds the model too, and needs no copy of every weight
        get values() {
          return transpose(layer.weight).data;
        },
      },
      ...(useBias ? [{ name: `${name}/bias`, shape: [layer.weight.rows], values: layer.bias }] : []),
    ]);
    this.denseOutputs.set(node.outputs[0], dense);
    return dense.name;
  }

  /**
   * An activation: in the Dense before it when that Dense's output goes nowhere else, else an
   * Activation layer; an activation layer with a parameter; or the same function from several
   * layers (Rescaling shifts and scales, ReLU clips).
   */
  private activation(node: GraphNode, x: string): string {
    const name = this.kerasActivation(node);
    if (name !== undefined) return this.activationLayer(x, name, node);
    const f = (v: number) => this.apply(node, Float64Array.of(v))[0];
    const input = this.ref(x, node);
    const base = node.name;
    const act = (activation: string, on: string) => this.add(base, 'Activation', { activation }, [on]).name;
    switch (node.op) {
      case 'LeakyRelu':
        return this.add(base, 'LeakyReLU', { alpha: -f(-1) }, [input]).name;
      case 'ThresholdedRelu': {
        const theta = numberAttr(node, 'alpha', 1);
        return this.add(base, 'ThresholdedReLU', { theta }, [input]).name;
      }
      case 'Clip':
        return this.clip(base, input, f(-Infinity), f(Infinity));
      case 'HardSigmoid': {
        const { alpha, beta } = hardSigmoidParameters(node);
        return this.clip(base, this.rescaling(base, input, alpha, beta), 0, 1);
      }
      case 'HardSwish': {
        // ONNX defines it as x · HardSigmoid(x) with alpha 1/6, beta 1/2
        const gate = this.clip(base, this.rescaling(base, input, 1 / 6, 0.5), 0, 1);
        return this.merged(base, 'Multiply', [input, gate]);
      }
      case 'Celu': {
        // alpha · elu(x / alpha); Celu(−∞) = −alpha
        const alpha = -f(-Infinity);
        return this.rescaling(base, act('elu', this.rescaling(base, input, 1 / alpha, 0)), alpha, 0);
      }
      case 'Elu': {
        // alpha · elu(x) + (1 − alpha) · relu(x): tfjs-layers' ELU layer takes only alpha 1;
        // Elu(−∞) = −alpha
        const alpha = -f(-Infinity);
        const negative = this.rescaling(base, act('elu', input), alpha, 0);
        const positive = this.rescaling(base, act('relu', input), 1 - alpha, 0);
        return this.merged(base, 'Add', [negative, positive]);
      }
      case 'Gelu': {
        // the tanh form (the erf form is tfjs-layers' gelu), 0.5 x (1 + tanh(√(2/π) (x + c x³))):
        // tfjs-layers saves its gelu_new but cannot load it
        const cube = this.rescaling(
          base,
          this.merged(base, 'Multiply', [input, input, input]),
          GELU_CUBIC,
          0,
        );
        const inner = this.rescaling(base, this.merged(base, 'Add', [input, cube]), SQRT_2_OVER_PI, 0);
        return this.merged(base, 'Multiply', [input, this.rescaling(base, act('tanh', inner), 0.5, 0.5)]);
      }
    }
    throw this.refuse(node);
  }

  /** x · scale + offset (a Rescaling layer; none when it is x). */
  private rescaling(base: string, x: string, scale: number, offset: number): string {
    if (scale === 1 && offset === 0) return x;
    return this.add(base, 'Rescaling', { scale, offset }, [x]).name;
  }

  /** clip(x, lo, hi) as ReLU layers (max(x, 0), capped at max_value) between shifts. */
  private clip(base: string, x: string, lo: number, hi: number): string {
    if (lo === 0) return this.add(base, 'ReLU', Number.isFinite(hi) ? { max_value: hi } : {}, [x]).name;
    // lo + clip(x − lo, 0, hi − lo)
    if (Number.isFinite(lo))
      return this.rescaling(base, this.clip(base, this.rescaling(base, x, 1, -lo), 0, hi - lo), 1, lo);
    // min(x, hi) = hi − relu(hi − x)
    if (Number.isFinite(hi))
      return this.rescaling(base, this.clip(base, this.rescaling(base, x, -1, hi), 0, Infinity), -1, hi);
    return x;
  }

  /**
   * Add, Sub, Mul or Div of x and a constant, or Neg: x · scale + offset, found by evaluating the
   * node on zeros and ones. A scalar constant is a Rescaling layer; a per-feature one, on a flat
   * input, a BatchNormalization with mean 0, variance 1 and epsilon 0 (γ x + β exactly).
   */
  private arithmetic(node: GraphNode, x: string): string {
    const shape = this.shape(x);
    const out = this.shape(node.outputs[0]);
    const at = (values: Float64Array) => this.apply(node, values, shape);
    const size = sizeOf(shape);
    const offset = at(new Float64Array(size));
    const scale = at(new Float64Array(size).fill(1)).map((v, i) => v - offset[i]);
    // not affine in x (a constant divided by x), or broadcast to a larger shape
    const probe = Float64Array.from({ length: size }, (_, i) => PROBE[i % PROBE.length]);
    const affine =
      out.length === shape.length &&
      out.every((d, i) => d === shape[i]) &&
      at(probe).every((y, i) => Math.abs(y - (scale[i] * probe[i] + offset[i])) <= 1e-9 * (1 + Math.abs(y)));
    if (!affine) throw this.refuse(node);
    const input = this.ref(x, node);
    if (scale.every((v) => v === scale[0]) && offset.every((v) => v === offset[0]))
      return this.rescaling(node.name, input, scale[0], offset[0]);
    if (shape.length !== 1)
      throw this.refuse(
        node,
        `tfjs-layers scales and shifts per feature only on a flat input, not on [${shape}]`,
      );
    const values = (v: Float64Array | number) =>
      typeof v === 'number' ? new Float32Array(size).fill(v) : Float32Array.from(v);
    return this.add(node.name, 'BatchNormalization', { axis: -1, epsilon: 0 }, [input], (name) => [
      { name: `${name}/gamma`, shape, values: values(scale) },
      { name: `${name}/beta`, shape, values: values(offset) },
      { name: `${name}/moving_mean`, shape, values: values(0) },
      { name: `${name}/moving_variance`, shape, values: values(1) },
    ]).name;
  }

  /** x to a constant integer power k: a Multiply of k copies of x. */
  private power(node: GraphNode, x: string): string {
    const value = this.constant(node.inputs[1]);
    const k = value?.data.length === 1 ? value.data[0] : Number.NaN;
    if (!Number.isInteger(k) || k < 1 || k > 16)
      throw this.refuse(node, 'tfjs-layers raises to an integer power from 1 to 16 only (Multiply)');
    const input = this.ref(x, node);
    return k === 1 ? input : this.merged(node.name, 'Multiply', new Array<string>(k).fill(input));
  }

  /**
   * `activation` of x (read by `at`, `reads` times): in the Dense computing x when nothing else
   * reads x, else an Activation layer.
   */
  private activationLayer(x: string, activation: string, at: GraphNode, reads = 1): string {
    // denseOutputs holds the Dense layers still without an activation; the graph's output counts
    // as one more use, so a Dense computing it never takes the activation
    const dense = this.denseOutputs.get(x);
    if (dense && this.uses.get(x) === reads) {
      dense.config.activation = activation;
      this.denseOutputs.delete(x);
      return dense.name;
    }
    return this.add(at.name, 'Activation', { activation }, [this.ref(x, at)]).name;
  }

  /** The tfjs-layers activation computing `node`'s function (compared on PROBE), if one does. */
  private kerasActivation(node: GraphNode): string | undefined {
    const ours = this.apply(node, PROBE);
    return TFJS_LAYERS_ACTIVATIONS.find((name) => {
      const ops = KERAS_ACTIVATIONS[name];
      if (typeof ops === 'string' || ops.op !== node.op) return false;
      const theirs = evaluate(ops.op, ops.attrs, [{ shape: [1, PROBE.length], data: PROBE }], [true]);
      return theirs.every((v, i) => Math.abs(v - ours[i]) <= 1e-6 * Math.abs(v) || v === ours[i]);
    });
  }

  /** `node` (one data input, the rest the graph's constants) on the values `x` as one sample of `shape`. */
  private apply(node: GraphNode, x: Float64Array, shape: readonly number[] = [x.length]): Float64Array {
    const batched = node.inputs.map((name) => this.batched.has(name));
    const inputs = node.inputs.map((name, i) =>
      batched[i] ? { shape: [1, ...shape], data: x } : this.constant(name),
    );
    return evaluate(node.op, node.attrs, inputs, batched);
  }

  private reshape(node: GraphNode, x: string): string {
    const from = this.shape(x);
    const to = this.shape(node.outputs[0]);
    const input = this.ref(x, node);
    if (from.length === to.length && from.every((d, i) => d === to[i])) return input;
    if (to.length === 1) return this.add(node.name, 'Flatten', {}, [input]).name;
    return this.add(node.name, 'Reshape', { target_shape: to }, [input]).name;
  }

  private batchNorm(node: GraphNode, x: string): string {
    const width = this.shape(x);
    if (width.length !== 1)
      throw this.refuse(node, `ecprune writes BatchNormalization of a flat input only, not of [${width}]`);
    const [gamma, beta, mean, variance] = node.inputs.slice(1).map((name) => this.vector(name, width));
    const folded = this.foldedBias.get(x);
    const movingMean = folded ? mean.map((m, i) => m - folded[i]) : mean;
    const epsilon = numberAttr(node, 'epsilon', ONNX_EPSILON);
    return this.add(node.name, 'BatchNormalization', { axis: -1, epsilon }, [this.ref(x, node)], (name) => [
      { name: `${name}/gamma`, shape: width, values: gamma },
      { name: `${name}/beta`, shape: width, values: beta },
      { name: `${name}/moving_mean`, shape: width, values: movingMean },
      { name: `${name}/moving_variance`, shape: width, values: variance },
    ]).name;
  }

  private layerNorm(node: GraphNode, x: string): string {
    const shape = this.shape(x);
    const axis = numberAttr(node, 'axis', -1);
    if (axis !== -1 && axis !== shape.length)
      throw this.refuse(
        node,
        `Keras' LayerNormalization here normalises the last axis only, not from axis ${axis}`,
      );
    const epsilon = numberAttr(node, 'epsilon', ONNX_EPSILON);
    const [, scale, bias = ''] = node.inputs;
    return this.layerNormalization(node, x, scale, bias, epsilon);
  }

  /** A LayerNormalization layer over the last axis; `scale`/`bias` '' for ones and zeros. */
  private layerNormalization(
    node: GraphNode,
    x: string,
    scale: string,
    bias: string,
    epsilon: number,
  ): string {
    const width = this.shape(x).slice(-1);
    const gamma = scale === '' ? new Float32Array(width[0]).fill(1) : this.vector(scale, width);
    const beta = bias === '' ? new Float32Array(width[0]) : this.vector(bias, width);
    return this.add(node.name, 'LayerNormalization', { axis: -1, epsilon }, [this.ref(x, node)], (name) => [
      { name: `${name}/gamma`, shape: width, values: gamma },
      { name: `${name}/beta`, shape: width, values: beta },
    ]).name;
  }

  /** A constant as float32 values of the per-sample shape `shape` (broadcast as the op broadcasts it). */
  private vector(name: string, shape: readonly number[]): Float32Array {
    const value = this.values.get(name)!;
    const { index } = broadcastIndex(value.shape, false, shape);
    return Float32Array.from(index, (i) => value.data[i]);
  }

  private concat(node: GraphNode, data: readonly string[]): string {
    const rank = this.shape(data[0]).length;
    const axis = numberAttr(node, 'axis', 0);
    if (data.length !== node.inputs.length || (axis !== -1 && axis !== rank))
      throw this.refuse(node, 'Keras’ Concatenate here joins data tensors along the last axis only');
    const inputs = data.map((name) => this.ref(name, node));
    return this.merged(node.name, 'Concatenate', inputs, { axis: -1 });
  }

  private prelu(node: GraphNode, x: string): string {
    const slope = node.inputs[1];
    if (this.batched.has(slope)) throw this.refuse(node, 'its slope is not a constant');
    const shape = this.shape(x);
    const alpha = this.vector(slope, shape);
    return this.add(node.name, 'PReLU', {}, [this.ref(x, node)], (name) => [
      { name: `${name}/alpha`, shape, values: alpha },
    ]).name;
  }

  /** Add, Sub or Mul of two tensors of one shape (Sub: Add of the negation; tfjs-layers has no Subtract). */
  private merge(node: GraphNode, [a, b]: readonly string[]): string {
    const [sa, sb] = [this.shape(a), this.shape(b)];
    if (sa.length !== sb.length || sa.some((d, i) => d !== sb[i]))
      throw this.refuse(node, `Keras' merge layers take tensors of one shape, not [${sa}] and [${sb}]`);
    const [first, second] = [this.ref(a, node), this.ref(b, node)];
    if (node.op === 'Mul') return this.merged(node.name, 'Multiply', [first, second]);
    const sign = node.op === 'Sub' ? -1 : 1;
    return this.merged(node.name, 'Add', [first, this.rescaling(node.name, second, sign, 0)]);
  }

  // ------------------------------------------------------------------------------------------
  // Patterns of several nodes that are one Keras layer

  /** Whether the tensors `nodes` compute, but the last, are read only inside them. */
  private internal(nodes: readonly GraphNode[]): boolean {
    const inside = nodes.flatMap((node) => node.inputs);
    return (
      nodes
        .slice(0, -1)
        .flatMap((node) => node.outputs)
        // (the graph's output counts as one more use: it is never internal)
        .every((t) => this.uses.get(t) === inside.filter((i) => i === t).length)
    );
  }

  /** GELU's Erf form, softsign's and mish's decomposed forms and x · sigmoid(x) (swish): one activation. */
  private activationPatternAt(n: number): Matched | undefined {
    const { nodes } = this.graph;
    const node = nodes[n];
    const x = node.inputs[0];
    if (!this.batched.has(x ?? '')) return undefined;
    const found = (last: number | undefined, activation: string) =>
      last === undefined ? undefined : { last, activation };
    // softsign x / (1 + |x|) as torch exports it: Abs, Add 1, Div
    const [next, third] = nodes.slice(n + 1, n + 3);
    const softsign =
      node.op === 'Abs' &&
      next?.op === 'Add' &&
      next.inputs.includes(node.outputs[0]) &&
      this.constant(next.inputs.find((i) => i !== node.outputs[0]) ?? '')?.data.join() === '1' &&
      third?.op === 'Div' &&
      third.inputs[0] === x &&
      third.inputs[1] === next.outputs[0];
    const swish =
      node.op === 'Sigmoid' &&
      next?.op === 'Mul' &&
      next.inputs.includes(x) &&
      next.inputs.includes(node.outputs[0]);
    // mish x · tanh(softplus(x)) as torch exports it before opset 18: Softplus, Tanh, Mul
    const mish =
      node.op === 'Softplus' &&
      next?.op === 'Tanh' &&
      next.inputs[0] === node.outputs[0] &&
      third?.op === 'Mul' &&
      third.inputs.includes(x) &&
      third.inputs.includes(next.outputs[0]);
    const match =
      found(node.op === 'Div' ? geluErfAt(this.graph, n, x)?.last : undefined, 'gelu') ??
      found(softsign ? n + 2 : undefined, 'softsign') ??
      found(swish ? n + 1 : undefined, 'swish') ??
      found(mish ? n + 2 : undefined, 'mish');
    const pattern = match && nodes.slice(n, match.last + 1);
    if (!match || !pattern || !this.internal(pattern)) return undefined;
    // the Dense before takes the activation when the pattern's reads of x are all there are
    const reads = pattern.flatMap((p) => p.inputs).filter((i) => i === x).length;
    const layer = this.activationLayer(x, match.activation, node, reads);
    return { last: match.last, output: nodes[match.last].outputs[0], layer };
  }

  /**
   * LayerNorm as torch exports it before opset 17: ReduceMean(x) → Sub → Pow 2 → ReduceMean → Add ε
   * → Sqrt → Div, then Mul γ and Add β (absent without elementwise_affine), over the last axis.
   */
  private layerNormAt(n: number): Matched | undefined {
    const { nodes } = this.graph;
    const ops = nodes.slice(n, n + 7).map((node) => node.op);
    if (ops.join() !== 'ReduceMean,Sub,Pow,ReduceMean,Add,Sqrt,Div') return undefined;
    const [mean, sub, pow, variance, add, sqrt, div] = nodes.slice(n, n + 7);
    const x = mean.inputs[0];
    const scalar = (name: string | undefined) => {
      const value = name === undefined ? undefined : this.constant(name);
      return value && value.data.length === 1 ? value.data[0] : undefined;
    };
    const other = (node: GraphNode, t: string) => node.inputs.find((i) => i !== t) ?? '';
    const lastAxis = (node: GraphNode) => {
      const axes = node.inputs[1]
        ? Array.from(this.constant(node.inputs[1])?.data ?? [])
        : intsAttr(node, 'axes');
      const rank = this.shape(node.inputs[0]).length + 1;
      return axes?.length === 1 && (axes[0] === -1 || axes[0] === rank - 1);
    };
    const epsilon = scalar(other(add, variance.outputs[0]));
    const matches =
      this.batched.has(x) &&
      lastAxis(mean) &&
      lastAxis(variance) &&
      sub.inputs[0] === x &&
      sub.inputs[1] === mean.outputs[0] &&
      pow.inputs[0] === sub.outputs[0] &&
      scalar(pow.inputs[1]) === 2 &&
      variance.inputs[0] === pow.outputs[0] &&
      add.inputs.includes(variance.outputs[0]) &&
      epsilon !== undefined &&
      sqrt.inputs[0] === add.outputs[0] &&
      div.inputs[0] === sub.outputs[0] &&
      div.inputs[1] === sqrt.outputs[0];
    if (!matches) return undefined;
    // the affine part: Mul by a constant γ, then Add a constant β, each per feature of the last axis
    let last = n + 6;
    let output = div.outputs[0];
    const width = this.shape(x).at(-1);
    const perFeature = (t: Tensor | undefined) =>
      t?.shape.slice(0, -1).every((d) => d === 1) === true && [1, width].includes(t.shape.at(-1) ?? 1);
    const affine = (op: string) => {
      const next = nodes[last + 1];
      const c = next?.op === op && next.inputs.includes(output) ? other(next, output) : undefined;
      if (
        c === undefined ||
        !perFeature(this.constant(c)) ||
        !this.internal([...nodes.slice(n, last + 1), next])
      )
        return '';
      last += 1;
      output = next.outputs[0];
      return c;
    };
    const scale = affine('Mul');
    const bias = scale === '' ? '' : affine('Add');
    if (!this.internal(nodes.slice(n, last + 1))) return undefined;
    return { last, output, layer: this.layerNormalization(mean, x, scale, bias, epsilon) };
  }
}
