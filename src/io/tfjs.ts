/**
 * TensorFlow.js LayersModel in and out (browser-safe): a `model.json` and its binary weight shards
 * as `tensorflowjs_converter` writes them for a Keras `Sequential` model, or as TF.js saves one.
 *
 * model.json: `{ format: 'layers-model', modelTopology, weightsManifest, userDefinedMetadata? }`.
 * - `modelTopology` is the Keras model config `{ class_name: 'Sequential', config: { layers } }`,
 *   possibly wrapped as `{ keras_version, backend, model_config: {...} }` (the converter's form);
 *   Keras 3 configs (`batch_shape`, dtype policy objects, `module` keys) read the same way.
 * - Layers: InputLayer, Flatten and Dropout (no-ops at inference), Dense (the kernel is stored
 *   n_in x n_out and transposed to ecprune's n_out x n_in), and activations either in the Dense's
 *   `activation` or as a separate Activation / ReLU / LeakyReLU / ELU layer right after it.
 * - `weightsManifest`: groups `{ paths, weights: [{ name, shape, dtype, quantization? }] }`; a
 *   group's shards are concatenated and its weights lie back to back in manifest order. float32,
 *   or quantised: `{ dtype: 'uint8' | 'uint16', scale, min }` (value = q * scale + min) or
 *   `{ dtype: 'float16' }`. Weights are found by name: `<layer>/kernel` and `<layer>/bias`
 *   (Keras 2, TF.js, optionally with a `:0` suffix or a path prefix) or `<layer>/vars/0|1` (Keras 3).
 *
 * Written models are float32, in one shard; a model read from TF.js keeps its topology, layer
 * names, weight names and activation placement (`TfjsTemplate`).
 */
import { badInput, EcpruneError, quote } from '../errors.js';
import { type Activation, formatActivation } from '../model/activations.js';
import { matrix, transpose } from '../model/matrix.js';
import { inputSize, type Layer, type Mlp, validateMlp } from '../model/mlp.js';
import { VERSION } from '../version.js';
import { decodeElements, elementType, shapeSize } from './npy.js';
import { float32LittleEndian, isRecord } from './safetensors.js';

type Json = Record<string, unknown>;

export interface TfjsLayerTemplate {
  /** position of the Dense layer in the topology's layer list */
  readonly index: number;
  readonly name: string;
  readonly kernelName: string;
  /** undefined when the Dense has `use_bias: false` */
  readonly biasName?: string;
  /** the activation as read, and the positions of the separate layers that apply it (none: the Dense's own) */
  readonly activation: Activation;
  readonly activationLayers: readonly number[];
}

/** What `writeTfjs` needs to write a model back as it was read (plain JSON data). */
export interface TfjsTemplate {
  /** model.json as read, without its weightsManifest */
  readonly modelJson: Json;
  readonly inputSize: number;
  readonly layers: readonly TfjsLayerTemplate[];
}

export interface TfjsModel {
  readonly mlp: Mlp;
  readonly template: TfjsTemplate;
}

/** The shard `writeTfjs` writes unless told otherwise (the converter's name for a single shard). */
export const TFJS_SHARD_NAME = 'group1-shard1of1.bin';

const SKIPPED = new Set(['InputLayer', 'Flatten', 'Dropout']);
const IDENTITY: Activation = { kind: 'identity' };

/** Keras activation names ecprune can represent; Keras 3's leaky_relu defaults to negative_slope 0.2. */
const KERAS_ACTIVATIONS: Record<string, Activation> = {
  linear: IDENTITY,
  relu: { kind: 'relu' },
  tanh: { kind: 'tanh' },
  sigmoid: { kind: 'sigmoid' },
  softplus: { kind: 'softplus' },
  gelu: { kind: 'gelu' },
  elu: { kind: 'elu', alpha: 1 },
  leaky_relu: { kind: 'leaky_relu', alpha: 0.2 },
};

const configOf = (layer: Json): Json => (isRecord(layer.config) ? layer.config : {});

/** The layer list of the Sequential model in `json` (the arrays inside `json` itself, not copies). */
function layerList(json: Json, file?: string): Json[] {
  const topology = json.modelTopology;
  if (!isRecord(topology)) throw badInput('has no modelTopology: not a TF.js model.json', file);
  const model = isRecord(topology.model_config) ? topology.model_config : topology;
  if (model.class_name !== 'Sequential') {
    const what =
      model.class_name === undefined
        ? 'not a Keras LayersModel (a TF.js graph model?)'
        : `a '${model.class_name}' model`;
    throw new EcpruneError(
      'unsupported',
      `is ${what}; ecprune reads Keras Sequential models of Dense layers`,
      file,
    );
  }
  const layers = Array.isArray(model.config)
    ? model.config
    : isRecord(model.config)
      ? model.config.layers
      : undefined;
  if (!Array.isArray(layers) || !layers.every(isRecord))
    throw badInput('the Sequential model has no list of layers', file);
  return layers;
}

/** A Keras activation (a name, or Keras 3's `{ class_name: 'function', config: 'relu' }`). */
function kerasActivation(value: unknown, file: string | undefined, where: string): Activation {
  const name =
    value === undefined || value === null
      ? 'linear'
      : isRecord(value)
        ? typeof value.config === 'string'
          ? value.config
          : value.class_name
        : value;
  const activation = typeof name === 'string' ? KERAS_ACTIVATIONS[name] : undefined;
  if (activation === undefined) {
    throw new EcpruneError(
      'unsupported',
      `activation ${quote(name)} is not supported (${Object.keys(KERAS_ACTIVATIONS).join(', ')})`,
      file,
      where,
    );
  }
  return activation;
}

/** The activation a separate activation layer applies; undefined when the layer is not one. */
function activationLayer(layer: Json, file: string | undefined, where: string): Activation | undefined {
  const config = configOf(layer);
  const number = (value: unknown, fallback: number) => (typeof value === 'number' ? value : fallback);
  switch (layer.class_name) {
    case 'Activation':
      return kerasActivation(config.activation, file, where);
    case 'ReLU': {
      if ((config.max_value ?? null) !== null || number(config.threshold, 0) !== 0) {
        throw new EcpruneError(
          'unsupported',
          'ReLU with max_value or threshold is not supported',
          file,
          where,
        );
      }
      const slope = number(config.negative_slope, 0);
      return slope === 0 ? { kind: 'relu' } : { kind: 'leaky_relu', alpha: slope };
    }
    case 'LeakyReLU': // Keras 2 and TF.js call the slope alpha, Keras 3 negative_slope; the layer's default is 0.3
      return { kind: 'leaky_relu', alpha: number(config.alpha ?? config.negative_slope, 0.3) };
    case 'ELU':
      return { kind: 'elu', alpha: number(config.alpha, 1) };
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Weights

interface StoredWeight {
  readonly shape: number[];
  readonly dtype: string;
  readonly quantization?: Json;
  readonly bytes: Uint8Array;
}

const BYTES_PER: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/**
 * Reads one weight shard: `path` as the manifest writes it (relative to the model.json, checked by
 * `checkShardPath`), `maxBytes` the most the manifest leaves for it (a reader should refuse a
 * longer file without reading it all).
 */
export type ShardReader = (path: string, maxBytes: number) => Uint8Array;

/**
 * A shard path must name a file inside the model's folder: relative, no `..` segment, no URL, no
 * drive or backslash (Windows separators), no NUL. Returns the path normalised (`./a//b` is `a/b`)
 * so that two spellings of one file are seen as the same path.
 */
export function checkShardPath(shard: string, file?: string, where?: string): string {
  const segments = shard.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (
    shard.startsWith('/') ||
    /^[a-z][a-z0-9+.-]*:/i.test(shard) ||
    /[\\\0]/.test(shard) ||
    segments.length === 0 ||
    segments.includes('..')
  ) {
    throw new EcpruneError(
      'input',
      `weight shard ${quote(shard)} is not a file inside the model's folder (shard paths must be relative, without '..')`,
      file,
      where,
    );
  }
  return segments.join('/');
}

/** Bytes per element of the stored (possibly quantised) dtype of a weight entry. */
function storedSize(entry: Json, file: string | undefined, where: string): number {
  const { shape, dtype, quantization } = entry;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw badInput(`invalid shape ${quote(shape)}`, file, where);
  }
  if (quantization !== undefined && !isRecord(quantization))
    throw badInput('invalid quantization', file, where);
  const stored = quantization?.dtype ?? dtype;
  const size = typeof stored === 'string' ? BYTES_PER[stored] : undefined;
  if (size === undefined) {
    throw new EcpruneError('unsupported', `dtype ${quote(stored)} is not supported`, file, where);
  }
  const bytes = shapeSize(shape) * size;
  if (!Number.isSafeInteger(bytes)) throw badInput(`shape ${quote(shape)} is impossibly large`, file, where);
  return bytes;
}

/**
 * Every weight of the manifest, by name, as the bytes it occupies in its group's shards. The
 * shards of a group together must hold exactly the bytes its weights declare (a shard longer or
 * shorter is an error), each shard path is read at most once, and the shards are read with the
 * bytes still declared as their limit, so the total read is bounded by the manifest.
 */
function manifestWeights(json: Json, readShard: ShardReader, file?: string): Map<string, StoredWeight> {
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest)) throw badInput('has no weightsManifest', file);
  const weights = new Map<string, StoredWeight>();
  const seen = new Set<string>();
  manifest.forEach((group: unknown, g) => {
    const where = `weightsManifest group ${g}`;
    if (!isRecord(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw badInput('needs paths and weights', file, where);
    }
    if (!group.paths.every((p) => typeof p === 'string'))
      throw badInput('paths must be strings', file, where);
    const entries = (group.weights as unknown[]).map((entry) => {
      if (!isRecord(entry) || typeof entry.name !== 'string')
        throw badInput('a weight entry has no name', file, where);
      return { entry, name: entry.name, bytes: storedSize(entry, file, `weight ${quote(entry.name)}`) };
    });
    const declared = entries.reduce((n, { bytes }) => n + bytes, 0);
    if (!Number.isSafeInteger(declared)) throw badInput('the weights are impossibly large', file, where);
    const shards: Uint8Array[] = [];
    let read = 0;
    for (const shard of group.paths as string[]) {
      const normalised = checkShardPath(shard, file, where);
      if (seen.has(normalised)) {
        throw badInput(`weight shard ${quote(shard)} is listed more than once`, file, where);
      }
      seen.add(normalised);
      const bytes = readShard(shard, declared - read);
      if (bytes.length > declared - read) {
        throw badInput(
          `weight shard ${quote(shard)} is longer than the manifest declares (the group's weights take ${declared} bytes)`,
          file,
          where,
        );
      }
      shards.push(bytes);
      read += bytes.length;
    }
    if (read < declared) {
      throw badInput(
        `truncated: the weights take ${declared} bytes, but the shards ${quote(group.paths.join(', '))} hold ${read}`,
        file,
        where,
      );
    }
    const data = new Uint8Array(declared);
    let at = 0;
    for (const shard of shards) {
      data.set(shard, at);
      at += shard.length;
    }
    let offset = 0;
    for (const { entry, name, bytes } of entries) {
      if (!weights.has(name)) {
        weights.set(name, {
          shape: entry.shape as number[],
          dtype: String(entry.dtype),
          quantization: entry.quantization as Json | undefined,
          bytes: data.subarray(offset, offset + bytes),
        });
      }
      offset += bytes;
    }
  });
  return weights;
}

/** A weight's values as float32, dequantised. */
function decodeWeight(weight: StoredWeight, file: string | undefined, where: string): Float32Array {
  const count = shapeSize(weight.shape);
  const q = weight.quantization;
  if (weight.dtype !== 'float32') {
    throw new EcpruneError(
      'unsupported',
      `has dtype ${weight.dtype}; Dense weights must be float32`,
      file,
      where,
    );
  }
  if (q === undefined) return decodeElements(weight.bytes, elementType('<f4'), count) as Float32Array;
  if (q.dtype === 'float16') return decodeElements(weight.bytes, elementType('<f2'), count) as Float32Array;
  if (typeof q.scale !== 'number' || typeof q.min !== 'number')
    throw badInput(`${q.dtype} quantization needs scale and min`, file, where);
  const codes = decodeElements(weight.bytes, elementType(q.dtype === 'uint8' ? '|u1' : '<u2'), count);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = codes[i] * q.scale + q.min;
  return values;
}

/** The manifest name of a Dense layer's kernel (role 0) or bias (role 1). */
function findWeight(weights: Map<string, StoredWeight>, layer: string, role: 0 | 1): string | undefined {
  const escaped = layer.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`(^|/)${escaped}/(${role === 0 ? 'kernel' : 'bias'}|vars/${role})(:0)?$`);
  return [...weights.keys()].find((name) => pattern.test(name));
}

// ---------------------------------------------------------------------------------------------
// Reading

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
  const list = layerList(json, file);
  const weights = manifestWeights(json, readShard, file);
  const layers: Layer[] = [];
  const templates: TfjsLayerTemplate[] = [];
  let inputDims: number[] | undefined; // the model's input shape without the batch axis, when stated
  let flattened = false;
  list.forEach((layer, index) => {
    const config = configOf(layer);
    const name = String(config.name ?? layer.name ?? index);
    const where = `layer '${name}'`;
    const shape = config.batch_input_shape ?? config.batch_shape;
    if (Array.isArray(shape) && layers.length === 0) {
      inputDims = shape.slice(1);
      if (!inputDims.every((d) => Number.isSafeInteger(d) && d > 0)) {
        throw badInput(`input shape ${quote(shape)} is not fixed`, file, where);
      }
    }
    if (layer.class_name === 'Flatten') {
      // channels_first reorders the axes before flattening: reading it as a plain flatten would
      // give other outputs than TF.js (only a no-op when at most one axis has more than one entry)
      const multiAxis = inputDims === undefined || inputDims.filter((d) => d > 1).length > 1;
      if (config.data_format === 'channels_first' && multiAxis) {
        throw new EcpruneError(
          'unsupported',
          "Flatten with data_format 'channels_first' is not supported",
          file,
          where,
        );
      }
      flattened = true;
    }
    if (SKIPPED.has(String(layer.class_name))) return;
    const separate = activationLayer(layer, file, where);
    if (separate !== undefined) {
      const previous = templates[templates.length - 1];
      if (previous === undefined)
        throw new EcpruneError('unsupported', 'an activation layer before any Dense layer', file, where);
      if (previous.activation.kind !== 'identity') {
        throw new EcpruneError('unsupported', `a second activation after '${previous.name}'`, file, where);
      }
      templates[templates.length - 1] = {
        ...previous,
        activation: separate,
        activationLayers: [...previous.activationLayers, index],
      };
      layers[layers.length - 1] = { ...layers[layers.length - 1], activation: separate };
      return;
    }
    if (layer.class_name !== 'Dense') {
      throw new EcpruneError(
        'unsupported',
        `layer class '${layer.class_name}' is not supported (Dense, activations, Flatten, Dropout, InputLayer)`,
        file,
        where,
      );
    }
    const units = config.units;
    if (!Number.isSafeInteger(units) || (units as number) < 1)
      throw badInput(`units ${quote(units)} is not a positive integer`, file, where);
    const kernelName = findWeight(weights, name, 0);
    if (kernelName === undefined)
      throw badInput(`the weightsManifest has no kernel '${name}/kernel'`, file, where);
    const kernel = weights.get(kernelName)!;
    const [nIn, nOut] = kernel.shape;
    if (kernel.shape.length !== 2 || nOut !== units) {
      throw badInput(
        `kernel '${kernelName}' has shape [${kernel.shape.join(', ')}], expected [n_in, ${units}]`,
        file,
        where,
      );
    }
    if (layers.length === 0 && inputDims !== undefined && inputDims.length > 1 && !flattened) {
      throw new EcpruneError(
        'unsupported',
        `Dense on a [${inputDims}] input acts on its last axis; ecprune needs a Flatten first`,
        file,
        where,
      );
    }
    const expectedIn =
      layers.length > 0 ? layers[layers.length - 1].weight.rows : inputDims && shapeSize(inputDims);
    if (expectedIn !== undefined && nIn !== expectedIn) {
      throw badInput(
        `kernel '${kernelName}' takes ${nIn} inputs, the layer before gives ${expectedIn}`,
        file,
        where,
      );
    }
    const useBias = config.use_bias !== false;
    const biasName = useBias ? findWeight(weights, name, 1) : undefined;
    if (useBias && biasName === undefined)
      throw badInput(`the weightsManifest has no bias '${name}/bias'`, file, where);
    const storedBias = biasName === undefined ? undefined : weights.get(biasName)!;
    if (storedBias && shapeSize(storedBias.shape) !== nOut) {
      throw badInput(
        `bias '${biasName}' has shape [${storedBias.shape.join(', ')}], expected [${nOut}]`,
        file,
        where,
      );
    }
    const bias = storedBias
      ? decodeWeight(storedBias, file, `${where}: weight '${biasName}'`)
      : new Float32Array(nOut);
    const activation = kerasActivation(config.activation, file, where);
    const weight = transpose(
      matrix(nIn, nOut, decodeWeight(kernel, file, `${where}: weight '${kernelName}'`)),
    );
    layers.push({ weight, bias, activation });
    templates.push({
      index,
      name,
      kernelName,
      ...(biasName === undefined ? {} : { biasName }),
      activation,
      activationLayers: [],
    });
  });
  if (layers.length === 0) throw badInput('has no Dense layers', file);
  const mlp = validateMlp({ layers }, file);
  const modelJsonWithoutWeights = { ...json };
  delete modelJsonWithoutWeights.weightsManifest;
  return {
    mlp,
    template: { modelJson: modelJsonWithoutWeights, inputSize: inputSize(mlp), layers: templates },
  };
}

// ---------------------------------------------------------------------------------------------
// Writing

/** How Keras writes an activation: in the Dense's `activation` where it can, else as a layer after it. */
function kerasForm(activation: Activation, name: string): { inline: string; layer?: Json } {
  switch (activation.kind) {
    case 'identity':
      return { inline: 'linear' };
    case 'leaky_relu':
      return {
        inline: 'linear',
        layer: {
          class_name: 'LeakyReLU',
          config: { name: `${name}_leaky_relu`, trainable: true, alpha: activation.alpha },
        },
      };
    case 'elu':
      if (activation.alpha === 1) return { inline: 'elu' };
      return {
        inline: 'linear',
        layer: {
          class_name: 'ELU',
          config: { name: `${name}_elu`, trainable: true, alpha: activation.alpha },
        },
      };
    default:
      return { inline: activation.kind };
  }
}

/** A template for a model not read from TF.js: a Sequential of Dense layers named as Keras names them. */
function freshTemplate(mlp: Mlp): TfjsTemplate {
  const names = mlp.layers.map((_, l) => (l === 0 ? 'dense' : `dense_${l}`));
  const layers = mlp.layers.map((layer, l) => ({
    class_name: 'Dense',
    config: {
      name: names[l],
      trainable: true,
      ...(l === 0 ? { batch_input_shape: [null, layer.weight.cols] } : {}),
      dtype: 'float32',
      units: layer.weight.rows,
      activation: 'linear',
      use_bias: true,
    },
  }));
  return {
    modelJson: {
      format: 'layers-model',
      generatedBy: `ecprune ${VERSION}`,
      convertedBy: null,
      modelTopology: { class_name: 'Sequential', config: { name: 'sequential', layers } },
    },
    inputSize: inputSize(mlp),
    layers: names.map((name, index) => ({
      index,
      name,
      kernelName: `${name}/kernel`,
      biasName: `${name}/bias`,
      activation: IDENTITY,
      activationLayers: [],
    })),
  };
}

export interface TfjsWriteOptions {
  /** stored in model.json's userDefinedMetadata (merged over the template's) */
  readonly metadata?: Record<string, string>;
  /** the shard's file name, relative to the model.json; default `group1-shard1of1.bin` */
  readonly shardName?: string;
}

/**
 * Encodes `mlp` as a model.json and one float32 shard. With a template of the same depth and input
 * width, its topology, names and activation placement are kept (widths and changed activations
 * are updated); otherwise a fresh Sequential is written.
 */
export function writeTfjs(
  mlp: Mlp,
  template?: TfjsTemplate,
  options: TfjsWriteOptions = {},
): { modelJson: string; shards: Map<string, Uint8Array> } {
  const fits = template?.layers.length === mlp.layers.length && template.inputSize === inputSize(mlp);
  const base = fits ? template : freshTemplate(mlp);
  const json = structuredClone(base.modelJson);
  const list = layerList(json);
  const removed = new Set<number>();
  const inserted = new Map<number, Json>();
  const manifest: Json[] = [];
  const arrays: Float32Array[] = [];
  mlp.layers.forEach((layer, l) => {
    const t = base.layers[l];
    const dense = list[t.index];
    const config = configOf(dense);
    config.units = layer.weight.rows;
    const build = dense.build_config;
    if (l > 0 && isRecord(build) && Array.isArray(build.input_shape))
      build.input_shape[build.input_shape.length - 1] = layer.weight.cols;
    if (formatActivation(layer.activation) !== formatActivation(t.activation)) {
      for (const index of t.activationLayers) removed.add(index);
      const form = kerasForm(layer.activation, t.name);
      config.activation = form.inline;
      if (form.layer) inserted.set(t.index, form.layer);
    }
    manifest.push({ name: t.kernelName, shape: [layer.weight.cols, layer.weight.rows], dtype: 'float32' });
    arrays.push(transpose(layer.weight).data);
    const biasName = t.biasName ?? (layer.bias.some((b) => b !== 0) ? biasNameFor(t.kernelName) : undefined);
    config.use_bias = biasName !== undefined;
    if (biasName !== undefined) {
      manifest.push({ name: biasName, shape: [layer.bias.length], dtype: 'float32' });
      arrays.push(layer.bias);
    }
  });
  list.splice(
    0,
    list.length,
    ...list.flatMap((entry, i) => [
      ...(removed.has(i) ? [] : [entry]),
      ...(inserted.has(i) ? [inserted.get(i)!] : []),
    ]),
  );
  const shardName = options.shardName ?? TFJS_SHARD_NAME;
  json.weightsManifest = [{ paths: [shardName], weights: manifest }];
  if (options.metadata && Object.keys(options.metadata).length > 0) {
    json.userDefinedMetadata = {
      ...(isRecord(json.userDefinedMetadata) ? json.userDefinedMetadata : {}),
      ...options.metadata,
    };
  }
  return { modelJson: JSON.stringify(json), shards: new Map([[shardName, float32LittleEndian(arrays)]]) };
}

/** The bias name that goes with a kernel name (for a layer read without a bias that now has one). */
function biasNameFor(kernelName: string): string {
  const match = /^(.*)(kernel|vars\/0)(:0)?$/.exec(kernelName);
  if (!match) return `${kernelName}_bias`;
  return `${match[1]}${match[2] === 'kernel' ? 'bias' : 'vars/1'}${match[3] ?? ''}`;
}
