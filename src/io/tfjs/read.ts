/**
 * TensorFlow.js LayersModel in (browser-safe): a `model.json` and its binary weight shards as
 * `tensorflowjs_converter` writes them for a Keras model, or as TF.js saves one, read into the graph.
 *
 * model.json: `{ format: 'layers-model', modelTopology, weightsManifest, userDefinedMetadata? }`.
 * `modelTopology` is the Keras model config, possibly wrapped as `{ keras_version, backend,
 * model_config }` (the converter's form): a `Sequential` (a list of layers, each applied to the
 * previous one's output) or a functional `Model` / `Functional` (each layer lists the layers it is
 * called on in `inbound_nodes`: Keras 2 and TF.js `[[[name, node, tensor, kwargs], ...]]`, Keras 3
 * `[{ args, kwargs }]` with `keras_history`). Keras 3 configs (`batch_shape`, dtype policy objects,
 * `module` keys) read the same way.
 *
 * Each Keras layer becomes ONNX ops (src/graph/ops), a Dense layer a `Dense` node pointing at its
 * `DenseLayer` (the kernel, stored n_in x n_out, transposed to n_out x n_in). Keras and TF.js spell
 * activation names in snake_case or camelCase (`hard_sigmoid`, `hardSigmoid`): both are read.
 */
import { badInput, EcpruneError } from '../../errors.js';
import type { AttributeValue, DenseLayer, Graph, GraphNode } from '../../graph/graph.js';
import type { Tensor } from '../../graph/tensor.js';
import { matrix, transpose } from '../../model/matrix.js';
import { checkFiniteLayer } from '../../model/mlp.js';
import { shapeSize } from '../npy.js';
import { isRecord } from '../safetensors.js';
import {
  decodeWeight,
  findWeight,
  type Json,
  manifestWeights,
  type ShardReader,
  type StoredWeight,
} from './manifest.js';

export interface TfjsDenseTemplate {
  /** position of the Dense layer in the topology's layer list */
  readonly index: number;
  readonly name: string;
  readonly kernelName: string;
  /** undefined when the Dense has `use_bias: false` */
  readonly biasName?: string;
  /**
   * For a bias-free linear Dense whose only consumer is a BatchNormalization: that layer's
   * moving_mean weight, where a bias the layer gains is folded (mean' = mean − bias).
   */
  readonly foldInto?: string;
}

export interface TfjsWeightSource {
  readonly name: string;
  readonly shape: readonly number[];
  /** the Dense layer (index into graph.layers) this is the kernel or bias of; absent: the graph constant `name` */
  readonly dense?: { readonly layer: number; readonly role: 'kernel' | 'bias' };
}

/** What `writeTfjs` needs to write a model back as it was read (plain data). */
export interface TfjsTemplate {
  /** model.json as read, without its weightsManifest */
  readonly modelJson: Json;
  /** the Dense layers in graph order (graph.layers[i] is layers[i]) */
  readonly layers: readonly TfjsDenseTemplate[];
  /** the weights the model uses, in manifest order */
  readonly weights: readonly TfjsWeightSource[];
}

export interface TfjsModel {
  readonly graph: Graph;
  readonly template: TfjsTemplate;
}

export const configOf = (layer: Json): Json => (isRecord(layer.config) ? layer.config : {});

/** The Keras model config inside `json` (the objects inside `json` itself, not copies). */
export function modelConfig(
  json: Json,
  file?: string,
): { functional: boolean; layers: Json[]; config: Json } {
  const topology = json.modelTopology;
  if (!isRecord(topology)) throw badInput('has no modelTopology: not a TF.js model.json', file);
  const model = isRecord(topology.model_config) ? topology.model_config : topology;
  const functional = model.class_name === 'Model' || model.class_name === 'Functional';
  if (model.class_name !== 'Sequential' && !functional) {
    const what =
      model.class_name === undefined
        ? 'not a Keras LayersModel (a TF.js graph model?)'
        : `a '${model.class_name}' model`;
    throw new EcpruneError(
      'unsupported',
      `is ${what}; ecprune reads Keras Sequential and functional (Model, Functional) models`,
      file,
    );
  }
  const config = isRecord(model.config) ? model.config : {};
  const layers = Array.isArray(model.config) ? model.config : config.layers;
  if (!Array.isArray(layers) || !layers.every(isRecord))
    throw badInput(`the ${String(model.class_name)} model has no list of layers`, file);
  return { functional, layers, config };
}

/** A config option under its Keras (snake_case) or TF.js (camelCase) name. */
function option(config: Json, snake: string): unknown {
  const camel = snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return config[snake] ?? config[camel];
}

const numberOr = (value: unknown, fallback: number): number => (typeof value === 'number' ? value : fallback);

// ---------------------------------------------------------------------------------------------
// Building the graph

class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  readonly constants = new Map<string, Tensor>();
  readonly layers: DenseLayer[] = [];
  /** per-sample shape of every tensor */
  readonly shapes = new Map<string, readonly number[]>();

  constructor(
    readonly weights: Map<string, StoredWeight>,
    readonly file: string | undefined,
    /** Keras 3 changed hard_sigmoid (the topology's keras_version says which Keras saved it) */
    readonly keras3: boolean,
  ) {}

  /** Adds a node with one output; the output's name is the node's, unique in the graph. */
  op(
    layer: string,
    op: string,
    inputs: readonly string[],
    attrs: Record<string, AttributeValue> = {},
    shape: readonly number[] = this.shape(inputs[0]),
  ): string {
    const taken = (n: string) => this.shapes.has(n) || this.constants.has(n);
    let name = taken(layer) ? `${layer}/${op}` : layer;
    for (let k = 1; taken(name); k++) name = `${layer}/${op}_${k}`;
    this.nodes.push({ name, op, inputs, outputs: [name], attrs });
    this.shapes.set(name, shape);
    return name;
  }

  shape(tensor: string): readonly number[] {
    return this.shapes.get(tensor)!;
  }

  constant(name: string, value: Tensor): string {
    this.constants.set(name, value);
    return name;
  }

  /** A stored weight as a graph constant named as in the manifest. */
  weight(stored: StoredWeight, where: string): string {
    const data = decodeWeight(stored, this.file, `${where}: weight '${stored.name}'`);
    return this.constant(stored.name, { shape: stored.shape, data });
  }
}

interface KerasCall {
  /** position in the topology's layer list */
  readonly index: number;
  readonly name: string;
  readonly className: string;
  readonly config: Json;
  /** the layers whose outputs it is called on */
  readonly inbound: readonly string[];
}

/** The layers a functional layer is called on (its only call: shared layers are refused). */
function inboundLayers(layer: Json, file: string | undefined, where: string): string[] {
  const nodes = layer.inbound_nodes;
  if (!Array.isArray(nodes) || nodes.length === 0) return [];
  if (nodes.length > 1) {
    throw new EcpruneError(
      'unsupported',
      'the layer is called more than once (a shared layer); ecprune needs one call per layer',
      file,
      where,
    );
  }
  const names: string[] = [];
  const history = (entry: unknown[]) => {
    if (entry[1] !== 0 || entry[2] !== 0)
      throw new EcpruneError('unsupported', 'a layer with several outputs or calls', file, where);
    names.push(String(entry[0]));
  };
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      if (typeof value[0] === 'string' && typeof value[1] === 'number') history(value);
      else value.forEach(visit);
    } else if (isRecord(value)) {
      const config = configOf(value);
      if (value.class_name === '__keras_tensor__' && Array.isArray(config.keras_history))
        history(config.keras_history);
      else if (Array.isArray(value.args)) visit(value.args); // Keras 3: { args, kwargs }
    }
  };
  visit(nodes[0]);
  return names;
}

/** The `[name, 0, 0]` entries of a functional model's input_layers / output_layers. */
function endpoints(value: unknown, what: string, file?: string): string {
  const list = Array.isArray(value) && typeof value[0] === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length !== 1 || !Array.isArray(list[0])) {
    throw new EcpruneError(
      'unsupported',
      `the model has ${Array.isArray(list) ? list.length : 'no'} ${what}; ecprune needs exactly one`,
      file,
    );
  }
  return String(list[0][0]);
}

function layerName(layer: Json, index: number): string {
  return String(configOf(layer).name ?? layer.name ?? index);
}

function fixedShape(shape: unknown, file: string | undefined, where: string): number[] {
  const dims = Array.isArray(shape) ? shape.slice(1) : [];
  if (dims.length === 0 || !dims.every((d) => Number.isSafeInteger(d) && d > 0))
    throw badInput(`input shape ${JSON.stringify(shape)} is not fixed`, file, where);
  return dims;
}

/**
 * Reads a model.json (text or parsed) and its shards; `readShard` gets each path of the manifest
 * as written there (relative to the model.json) and returns the shard's bytes.
 */
export function readTfjs(modelJson: string | object, readShard: ShardReader, file?: string): TfjsModel {
  let json: unknown = modelJson;
  if (typeof modelJson === 'string') {
    try {
      json = JSON.parse(modelJson);
    } catch (error) {
      throw badInput(`not valid JSON: ${(error as Error).message}`, file);
    }
  }
  if (!isRecord(json)) throw badInput('is not a JSON object', file);
  const { functional, layers: list, config: modelCfg } = modelConfig(json, file);
  const weights = manifestWeights(json, readShard, file);
  const topology = json.modelTopology as Json;
  const b = new GraphBuilder(weights, file, /^3\./.test(String(topology.keras_version)));

  // the calls in order, and the model's input
  let input: { name: string; shape: number[] } | undefined;
  const calls: KerasCall[] = [];
  let previous: string | undefined;
  list.forEach((layer, index) => {
    const config = configOf(layer);
    const name = layerName(layer, index);
    const where = `layer '${name}'`;
    const className = String(layer.class_name);
    const batchShape = config.batch_input_shape ?? config.batch_shape;
    if (className === 'InputLayer' || (!functional && index === 0 && batchShape !== undefined)) {
      if (input !== undefined)
        throw new EcpruneError('unsupported', 'the model has several inputs; ecprune needs one', file, where);
      input = {
        name: className === 'InputLayer' ? name : 'input',
        shape: fixedShape(batchShape, file, where),
      };
      previous = input.name;
      if (className === 'InputLayer') return;
    }
    const inbound = functional ? inboundLayers(layer, file, where) : previous === undefined ? [] : [previous];
    calls.push({ index, name, className, config, inbound });
    previous = name;
  });
  if (input === undefined) {
    // a Sequential whose first layer states no input shape: a Dense's kernel says it
    const first = calls[0];
    const kernel = first?.className === 'Dense' ? findWeight(weights, first.name, 'kernel', 0) : undefined;
    if (kernel === undefined || kernel.shape.length !== 2)
      throw badInput('the model states no input shape (batch_input_shape)', file);
    input = { name: 'input', shape: [kernel.shape[0]] };
    calls[0] = { ...first, inbound: [input.name] };
  }
  b.shapes.set(input.name, input.shape);
  if (functional && endpoints(modelCfg.input_layers, 'inputs', file) !== input.name)
    throw badInput(`input_layers does not name the InputLayer '${input.name}'`, file);

  const outputs = new Map<string, string>([[input.name, input.name]]);
  const templates: TfjsDenseTemplate[] = [];
  const sources: TfjsWeightSource[] = [];
  const movingMeans = new Map<string, string>();
  const pending = [...calls];
  while (pending.length > 0) {
    // Keras lists a functional model's layers in topological order; tolerate any order
    const at = pending.findIndex((call) => call.inbound.every((name) => outputs.has(name)));
    if (at < 0) {
      const call = pending[0];
      const missing = call.inbound.filter((name) => !outputs.has(name));
      throw badInput(
        `is called on ${missing.map((n) => `'${n}'`).join(', ')}, which no layer computes`,
        file,
        `layer '${call.name}'`,
      );
    }
    const [call] = pending.splice(at, 1);
    const where = `layer '${call.name}'`;
    const inputs = call.inbound.map((name) => outputs.get(name)!);
    if (inputs.length === 0) throw badInput('is called on nothing', file, where);
    if (call.className === 'Dense') {
      const { output, template } = dense(b, call, inputs[0], sources);
      templates.push(template);
      outputs.set(call.name, output);
      continue;
    }
    const convert = LAYERS[call.className];
    if (convert === undefined) {
      throw new EcpruneError(
        'unsupported',
        `layer class '${call.className}' is not supported; ecprune reads ${SUPPORTED_LAYERS.join(', ')}. ` +
          'Rebuild the model from these layers (or prune it from another format, e.g. ONNX)',
        file,
        where,
      );
    }
    const output = convert({ b, call, inputs, x: inputs[0], where, sources, movingMeans });
    outputs.set(call.name, output);
  }
  const outputLayer = functional
    ? endpoints(modelCfg.output_layers, 'outputs', file)
    : calls[calls.length - 1]?.name;
  const output = outputLayer === undefined ? undefined : outputs.get(outputLayer);
  if (output === undefined) throw badInput(`the output layer '${outputLayer}' is never computed`, file);
  if (b.layers.length === 0) throw badInput('has no Dense layers', file);

  const consumers = (name: string) => calls.filter((call) => call.inbound.includes(name));
  const layersWithFold = templates.map((t) => {
    const call = calls.find((c) => c.index === t.index)!;
    const next = consumers(call.name);
    const linear = kerasActivationName(call.config.activation) === 'linear';
    const mean = next.length === 1 ? movingMeans.get(next[0].name) : undefined;
    const folds = t.biasName === undefined && linear && mean !== undefined && outputLayer !== call.name;
    return folds ? { ...t, foldInto: mean } : t;
  });
  const order = new Map([...weights.keys()].map((name, i) => [name, i]));
  sources.sort((p, q) => order.get(p.name)! - order.get(q.name)!);
  const modelJsonWithoutWeights = { ...json };
  delete modelJsonWithoutWeights.weightsManifest;
  return {
    graph: {
      input,
      output,
      nodes: b.nodes,
      constants: b.constants,
      layers: b.layers,
    },
    template: { modelJson: modelJsonWithoutWeights, layers: layersWithFold, weights: sources },
  };
}

// ---------------------------------------------------------------------------------------------
// Layers

function dense(
  b: GraphBuilder,
  call: KerasCall,
  x: string,
  sources: TfjsWeightSource[],
): { output: string; template: TfjsDenseTemplate } {
  const { file } = b;
  const where = `layer '${call.name}'`;
  const units = call.config.units;
  if (!Number.isSafeInteger(units) || (units as number) < 1)
    throw badInput(`units ${JSON.stringify(units)} is not a positive integer`, file, where);
  const shape = b.shape(x);
  if (shape.length !== 1) {
    throw new EcpruneError(
      'unsupported',
      `Dense on a [${shape}] input acts on its last axis; ecprune needs a Flatten before it`,
      file,
      where,
    );
  }
  const kernel = findWeight(b.weights, call.name, 'kernel', 0);
  if (kernel === undefined)
    throw badInput(`the weightsManifest has no kernel '${call.name}/kernel'`, file, where);
  const [nIn, nOut] = kernel.shape;
  if (kernel.shape.length !== 2 || nOut !== units || nIn !== shape[0]) {
    throw badInput(
      `kernel '${kernel.name}' has shape [${kernel.shape.join(', ')}], expected [${shape[0]}, ${units}] (the layer before gives ${shape[0]})`,
      file,
      where,
    );
  }
  const useBias = call.config.use_bias !== false;
  const stored = useBias ? findWeight(b.weights, call.name, 'bias', 1) : undefined;
  if (useBias && stored === undefined)
    throw badInput(`the weightsManifest has no bias '${call.name}/bias'`, file, where);
  if (stored && shapeSize(stored.shape) !== nOut) {
    throw badInput(
      `bias '${stored.name}' has shape [${stored.shape.join(', ')}], expected [${nOut}]`,
      file,
      where,
    );
  }
  const layer = b.layers.length;
  const denseLayer: DenseLayer = {
    name: call.name,
    weight: transpose(matrix(nIn, nOut, decodeWeight(kernel, file, `${where}: weight '${kernel.name}'`))),
    bias: stored ? decodeWeight(stored, file, `${where}: weight '${stored.name}'`) : new Float32Array(nOut),
    hasBias: stored !== undefined,
  };
  checkFiniteLayer(denseLayer, file, where);
  b.layers.push(denseLayer);
  sources.push({ name: kernel.name, shape: kernel.shape, dense: { layer, role: 'kernel' } });
  if (stored) sources.push({ name: stored.name, shape: stored.shape, dense: { layer, role: 'bias' } });
  const z = b.op(call.name, 'Dense', [x], { layer }, [nOut]);
  return {
    output: activate(b, call.name, call.config.activation, z, where),
    template: {
      index: call.index,
      name: call.name,
      kernelName: kernel.name,
      ...(stored ? { biasName: stored.name } : {}),
    },
  };
}

/** A Keras activation's name in snake_case (a name, or Keras 3's `{ class_name: 'function', config: 'relu' }`). */
function kerasActivationName(value: unknown): unknown {
  const name =
    value === undefined || value === null
      ? 'linear'
      : isRecord(value)
        ? typeof value.config === 'string'
          ? value.config
          : value.class_name
        : value;
  return typeof name === 'string' ? name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) : name;
}

/**
 * A Keras activation as graph ops: `linear` is no op, `swish` is x · sigmoid(x) (tfjs-layers' swish
 * with its default alpha 1; Keras' silu), every other one a single unary op with these attributes.
 */
type KerasActivationOps =
  | 'linear'
  | 'swish'
  | { readonly op: string; readonly attrs: Readonly<Record<string, AttributeValue>> };

const unary = (op: string, attrs: Record<string, AttributeValue> = {}): KerasActivationOps => ({ op, attrs });

/**
 * Every Keras activation (Keras 2 and 3, tfjs-layers), with the formulas tfjs-layers uses
 * (tfjs-layers src/activations.ts). The one table of Keras activation names: the reader builds the
 * ops from it and the writer (write-graph.ts) finds a node's activation in it.
 */
export const KERAS_ACTIVATIONS: Readonly<Record<string, KerasActivationOps>> = {
  linear: 'linear',
  relu: unary('Relu'),
  relu6: unary('Clip', { min: 0, max: 6 }),
  elu: unary('Elu', { alpha: 1 }),
  selu: unary('Selu'),
  softplus: unary('Softplus'),
  softsign: unary('Softsign'),
  sigmoid: unary('Sigmoid'),
  // clip(0.2 x + 0.5, 0, 1) in tfjs-layers and Keras 2 (Keras 3: KERAS3_HARD_SIGMOID)
  hard_sigmoid: unary('HardSigmoid', { alpha: 0.2, beta: 0.5 }),
  // Keras 3: x · hard_sigmoid(x)
  hard_silu: unary('HardSwish'),
  hard_swish: unary('HardSwish'),
  tanh: unary('Tanh'),
  exponential: unary('Exp'),
  swish: 'swish',
  silu: 'swish',
  // tfjs-layers' gelu is the exact x Φ(x) with erf; gelu_new the tanh approximation
  gelu: unary('Gelu'),
  gelu_new: unary('Gelu', { approximate: 'tanh' }),
  mish: unary('Mish'),
  softmax: unary('Softmax', { axis: -1 }),
  log_softmax: unary('LogSoftmax', { axis: -1 }),
  // Keras 3's leaky_relu activation (negative_slope 0.2)
  leaky_relu: unary('LeakyRelu', { alpha: 0.2 }),
};

/** Keras 3 redefined hard_sigmoid as clip(x / 6 + 0.5, 0, 1) (the topology's keras_version says which Keras saved it). */
const KERAS3_HARD_SIGMOID = unary('HardSigmoid', { alpha: 1 / 6, beta: 0.5 });

function activate(b: GraphBuilder, layer: string, value: unknown, x: string, where: string): string {
  const name = kerasActivationName(value);
  const ops =
    name === 'hard_sigmoid' && b.keras3
      ? KERAS3_HARD_SIGMOID
      : typeof name === 'string'
        ? KERAS_ACTIVATIONS[name]
        : undefined;
  if (ops === undefined) {
    throw new EcpruneError(
      'unsupported',
      `activation ${JSON.stringify(name)} is not supported (${Object.keys(KERAS_ACTIVATIONS).join(', ')})`,
      b.file,
      where,
    );
  }
  if (ops === 'linear') return x;
  if (ops === 'swish') return b.op(layer, 'Mul', [x, b.op(layer, 'Sigmoid', [x])]);
  return b.op(layer, ops.op, [x], ops.attrs);
}

interface LayerArgs {
  readonly b: GraphBuilder;
  readonly call: KerasCall;
  /** the tensors it is called on, and the first of them */
  readonly inputs: readonly string[];
  readonly x: string;
  readonly where: string;
  readonly sources: TfjsWeightSource[];
  /** BatchNormalization layer name → its moving_mean weight name */
  readonly movingMeans: Map<string, string>;
}

function unsupported(args: LayerArgs, detail: string): EcpruneError {
  return new EcpruneError('unsupported', detail, args.b.file, args.where);
}

/** A layer's stored weight as a graph constant (written back from the graph's constant). */
function layerWeight(args: LayerArgs, role: string, keras3Index: number): string {
  const stored = findWeight(args.b.weights, args.call.name, role, keras3Index);
  if (stored === undefined)
    throw badInput(`the weightsManifest has no weight '${args.call.name}/${role}'`, args.b.file, args.where);
  args.sources.push({ name: stored.name, shape: stored.shape });
  return args.b.weight(stored, args.where);
}

/** A constant the file does not store (a default scale or shift, a target shape). */
function syntheticConstant(args: LayerArgs, role: string, shape: number[], fill: number): string {
  return args.b.constant(`${args.call.name}/${role}`, {
    shape,
    data: new Float32Array(shapeSize(shape)).fill(fill),
  });
}

/**
 * A normalisation's gamma and beta (per feature): stored when `scale` / `center` (the default),
 * else ones and zeros; `count` is how many the file stores (Keras 3 numbers the rest after them).
 */
function scaleAndShift(args: LayerArgs, width: number): { gamma: string; beta: string; count: number } {
  const scale = option(args.call.config, 'scale') !== false;
  const center = option(args.call.config, 'center') !== false;
  const gamma = scale ? layerWeight(args, 'gamma', 0) : syntheticConstant(args, 'gamma', [width], 1);
  const beta = center
    ? layerWeight(args, 'beta', scale ? 1 : 0)
    : syntheticConstant(args, 'beta', [width], 0);
  return { gamma, beta, count: Number(scale) + Number(center) };
}

/** The last axis of the per-sample shape, as Keras gives it (-1, or its index counting the batch). */
function isLastAxis(axis: unknown, rank: number): boolean {
  const value = Array.isArray(axis) && axis.length === 1 ? axis[0] : axis;
  return value === undefined || value === -1 || value === rank;
}

function merge(op: string): (args: LayerArgs) => string {
  return ({ b, call, inputs }) =>
    inputs.slice(1).reduce((sum, x) => b.op(call.name, op, [sum, x]), inputs[0]);
}

const identity = ({ x }: LayerArgs) => x;

const LAYERS: Record<string, (args: LayerArgs) => string> = {
  Activation: ({ b, call, x, where }) => activate(b, call.name, call.config.activation, x, where),
  ReLU: (args) => {
    const { b, call, x } = args;
    const maxValue = option(call.config, 'max_value');
    const slope = numberOr(option(call.config, 'negative_slope'), 0);
    const threshold = numberOr(call.config.threshold, 0);
    const set = [maxValue !== undefined && maxValue !== null, slope !== 0, threshold !== 0].filter(Boolean);
    if (set.length > 1)
      throw unsupported(
        args,
        'ReLU with more than one of max_value, negative_slope, threshold is not supported',
      );
    if (typeof maxValue === 'number') return b.op(call.name, 'Clip', [x], { min: 0, max: maxValue });
    if (slope !== 0) return b.op(call.name, 'LeakyRelu', [x], { alpha: slope });
    if (threshold !== 0) return b.op(call.name, 'ThresholdedRelu', [x], { alpha: threshold });
    return b.op(call.name, 'Relu', [x]);
  },
  // Keras 2 and TF.js call the slope alpha, Keras 3 negative_slope; the layer's default is 0.3
  LeakyReLU: ({ b, call, x }) =>
    b.op(call.name, 'LeakyRelu', [x], {
      alpha: numberOr(call.config.alpha ?? call.config.negative_slope, 0.3),
    }),
  PReLU: (args) => args.b.op(args.call.name, 'PRelu', [args.x, layerWeight(args, 'alpha', 0)]),
  ELU: ({ b, call, x }) => b.op(call.name, 'Elu', [x], { alpha: numberOr(call.config.alpha, 1) }),
  ThresholdedReLU: ({ b, call, x }) =>
    b.op(call.name, 'ThresholdedRelu', [x], { alpha: numberOr(call.config.theta, 1) }),
  Softmax: (args) => {
    const { b, call, x } = args;
    if (!isLastAxis(call.config.axis, b.shape(x).length))
      throw unsupported(
        args,
        `Softmax over axis ${JSON.stringify(call.config.axis)} is not supported (only the last axis)`,
      );
    return b.op(call.name, 'Softmax', [x], { axis: -1 });
  },
  BatchNormalization: (args) => {
    const { b, call, x } = args;
    const shape = b.shape(x);
    if (shape.length !== 1 || !isLastAxis(call.config.axis, 1)) {
      throw unsupported(
        args,
        `BatchNormalization over axis ${JSON.stringify(call.config.axis)} of a [${shape}] input is not supported (only axis -1 on a flat input)`,
      );
    }
    // Keras creates gamma, beta (when used), then the moving mean and variance
    const { gamma, beta, count } = scaleAndShift(args, shape[0]);
    const mean = layerWeight(args, 'moving_mean', count);
    const variance = layerWeight(args, 'moving_variance', count + 1);
    args.movingMeans.set(call.name, mean);
    return b.op(call.name, 'BatchNormalization', [x, gamma, beta, mean, variance], {
      epsilon: numberOr(call.config.epsilon, 1e-3),
    });
  },
  LayerNormalization: (args) => {
    const { b, call, x } = args;
    const shape = b.shape(x);
    if (!isLastAxis(call.config.axis, shape.length))
      throw unsupported(
        args,
        `LayerNormalization over axis ${JSON.stringify(call.config.axis)} is not supported (only the last axis)`,
      );
    const { gamma, beta } = scaleAndShift(args, shape[shape.length - 1]);
    return b.op(call.name, 'LayerNormalization', [x, gamma, beta], {
      axis: -1,
      epsilon: numberOr(call.config.epsilon, 1e-3),
    });
  },
  // inference no-ops
  Dropout: identity,
  SpatialDropout1D: identity,
  SpatialDropout2D: identity,
  SpatialDropout3D: identity,
  GaussianNoise: identity,
  GaussianDropout: identity,
  AlphaDropout: identity,
  ActivityRegularization: identity,
  Flatten: (args) => {
    const { b, call, x } = args;
    const shape = b.shape(x);
    if (option(call.config, 'data_format') === 'channels_first' && shape.length > 1) {
      throw unsupported(
        args,
        'Flatten with data_format channels_first reorders a [' +
          `${shape}] input; ecprune reads channels_last only (save the model with channels_last)`,
      );
    }
    return b.op(call.name, 'Flatten', [x], { axis: 1 }, [shapeSize(shape)]);
  },
  Reshape: (args) => {
    const { b, call, x } = args;
    const target = option(call.config, 'target_shape');
    if (!Array.isArray(target) || !target.every((d) => Number.isSafeInteger(d) && (d > 0 || d === -1)))
      throw badInput(`target_shape ${JSON.stringify(target)} is not a shape`, b.file, args.where);
    const size = shapeSize(b.shape(x));
    const known = target.reduce((p: number, d: number) => (d === -1 ? p : p * d), 1);
    const shape = target.map((d: number) => (d === -1 ? size / known : d));
    if (shapeSize(shape) !== size || !shape.every(Number.isInteger))
      throw badInput(`cannot reshape [${b.shape(x)}] to [${target}]`, b.file, args.where);
    // 0 keeps the batch dimension (ONNX Reshape)
    const targetConstant = b.constant(`${call.name}/shape`, {
      shape: [target.length + 1],
      data: Float64Array.from([0, ...shape]),
    });
    return b.op(call.name, 'Reshape', [x, targetConstant], {}, shape);
  },
  // x · scale + offset, both scalars
  Rescaling: (args) => {
    const { b, call, x } = args;
    const scale = syntheticConstant(args, 'scale', [1], numberOr(call.config.scale, 1));
    const offset = syntheticConstant(args, 'offset', [1], numberOr(call.config.offset, 0));
    return b.op(call.name, 'Add', [b.op(call.name, 'Mul', [x, scale]), offset]);
  },
  Add: merge('Add'),
  Subtract: merge('Sub'),
  Multiply: merge('Mul'),
  Average: (args) => {
    const sum = merge('Add')(args);
    const factor = args.b.constant(`${args.call.name}/factor`, {
      shape: [1],
      data: Float32Array.of(1 / args.inputs.length),
    });
    return args.b.op(args.call.name, 'Mul', [sum, factor]);
  },
  Concatenate: (args) => {
    const { b, call, inputs } = args;
    const shapes = inputs.map((x) => b.shape(x));
    const rank = shapes[0].length;
    if (
      !isLastAxis(call.config.axis, rank) ||
      shapes.some((s) => s.length !== rank || s.slice(0, -1).some((d, i) => d !== shapes[0][i]))
    ) {
      throw unsupported(
        args,
        `Concatenate of [${shapes.join('], [')}] along axis ${JSON.stringify(call.config.axis)} is not supported (only the last axis)`,
      );
    }
    const width = shapes.reduce((sum, s) => sum + s[rank - 1], 0);
    return b.op(call.name, 'Concat', inputs, { axis: -1 }, [...shapes[0].slice(0, -1), width]);
  },
};

const SUPPORTED_LAYERS = ['InputLayer', 'Dense', ...Object.keys(LAYERS)];
