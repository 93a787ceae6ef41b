/**
 * TensorFlow.js LayersModel out (browser-safe): a graph written as a model.json and one float32
 * shard. `writeTfjs` writes over the template of the model it was read from: the topology, layer
 * names and weight names are kept and the weights replaced (quantised or float16 weights come back
 * as float32). `writeTfjsGraph` writes any other graph as a functional model (write-graph.ts).
 */
import { EcpruneError } from '../../errors.js';
import type { Graph } from '../../graph/graph.js';
import { type FloatArray, transpose } from '../../model/matrix.js';
import { VERSION } from '../../version.js';
import { shapeSize } from '../npy.js';
import { float32LittleEndian, isRecord } from '../safetensors.js';
import type { Json } from './manifest.js';
import { configOf, modelConfig, type TfjsTemplate } from './read.js';
import { kerasModelOf } from './write-graph.js';

/** The shard `writeTfjs` writes unless told otherwise (the converter's name for a single shard). */
export const TFJS_SHARD_NAME = 'group1-shard1of1.bin';

/** model.json's text and its weight shards by file name */
export interface TfjsFiles {
  readonly modelJson: string;
  readonly shards: Map<string, Uint8Array>;
}

export interface TfjsWriteOptions {
  /** stored in model.json's userDefinedMetadata (merged over the template's) */
  readonly metadata?: Record<string, string>;
  /** the shard's file name, relative to the model.json; default `group1-shard1of1.bin` */
  readonly shardName?: string;
}

/**
 * A graph constant as float32 and its shape: the model.json's, or the constant's own when only the
 * last dimension differs (a per-unit parameter sliced by neuron removal).
 */
function constantValues(
  graph: Graph,
  source: { name: string; shape: readonly number[] },
): { values: Float32Array; shape: readonly number[] } {
  const value = graph.constants.get(source.name);
  const sliced =
    value !== undefined &&
    value.shape.length === source.shape.length &&
    value.shape.slice(0, -1).every((d, i) => d === source.shape[i]);
  if (value === undefined || (value.data.length !== shapeSize(source.shape) && !sliced)) {
    throw new EcpruneError(
      'internal',
      `the graph has no constant '${source.name}' of shape [${source.shape}] for the TF.js model it was read from`,
    );
  }
  const values = value.data instanceof Float32Array ? value.data : Float32Array.from(value.data);
  return { values, shape: sliced ? value.shape : source.shape };
}

/**
 * Encodes `graph` over the TF.js model it was read from (`template`). A Dense layer with
 * `use_bias: false` that now has a bias (compensation put one there) keeps its structure when its
 * only consumer is a BatchNormalization (the bias is folded into the moving mean:
 * BN(z + b; μ) = BN(z; μ − b)); otherwise it gets `use_bias: true` and a bias weight.
 */
export function writeTfjs(graph: Graph, template: TfjsTemplate, options: TfjsWriteOptions = {}): TfjsFiles {
  if (template.layers.length !== graph.layers.length) {
    throw new EcpruneError(
      'usage',
      `the graph has ${graph.layers.length} fully-connected layers, the TF.js model it was read from ${template.layers.length}`,
    );
  }
  const json = structuredClone(template.modelJson);
  const { layers: list } = modelConfig(json);
  const foldedMeans = new Map<string, Float32Array>();
  const gainsBias = new Set<number>();
  graph.layers.forEach((layer, l) => {
    const t = template.layers[l];
    const entry = list[t.index];
    const config = configOf(entry);
    config.units = layer.weight.rows;
    const build = entry.build_config;
    if (isRecord(build) && Array.isArray(build.input_shape))
      build.input_shape[build.input_shape.length - 1] = layer.weight.cols;
    if (t.biasName !== undefined || layer.bias.every((b) => b === 0)) return;
    if (t.foldInto !== undefined) {
      const mean =
        foldedMeans.get(t.foldInto) ??
        constantValues(graph, { name: t.foldInto, shape: [layer.bias.length] }).values;
      foldedMeans.set(
        t.foldInto,
        mean.map((m, i) => m - layer.bias[i]),
      );
    } else {
      config.use_bias = true;
      gainsBias.add(l);
    }
  });
  const manifest: Json[] = [];
  const arrays: FloatArray[] = [];
  for (const source of template.weights) {
    if (source.dense === undefined) {
      const { values, shape } = constantValues(graph, source);
      manifest.push({ name: source.name, shape, dtype: 'float32' });
      arrays.push(foldedMeans.get(source.name) ?? values);
      continue;
    }
    const layer = graph.layers[source.dense.layer];
    if (source.dense.role === 'bias') {
      manifest.push({ name: source.name, shape: [layer.bias.length], dtype: 'float32' });
      arrays.push(layer.bias);
      continue;
    }
    manifest.push({ name: source.name, shape: [layer.weight.cols, layer.weight.rows], dtype: 'float32' });
    arrays.push(transpose(layer.weight).data);
    if (gainsBias.has(source.dense.layer)) {
      manifest.push({ name: biasNameFor(source.name), shape: [layer.bias.length], dtype: 'float32' });
      arrays.push(layer.bias);
    }
  }
  return files(json, manifest, arrays, options);
}

/** A model.json and its one float32 shard (named as `options` says), with the metadata merged in. */
function files(json: Json, manifest: Json[], arrays: FloatArray[], options: TfjsWriteOptions): TfjsFiles {
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

/**
 * Encodes a graph not read from TF.js as a functional model (write-graph.ts); an 'unsupported'
 * EcpruneError names the node and op no layer tfjs-layers loads computes.
 */
export async function writeTfjsGraph(graph: Graph, options: TfjsWriteOptions = {}): Promise<TfjsFiles> {
  const { topology, weights } = await kerasModelOf(graph);
  const json: Json = {
    format: 'layers-model',
    generatedBy: `ecprune ${VERSION}`,
    convertedBy: null,
    modelTopology: topology,
  };
  const manifest = weights.map(({ name, shape }) => ({ name, shape, dtype: 'float32' }));
  return files(
    json,
    manifest,
    weights.map((w) => w.values),
    options,
  );
}

/** The bias name that goes with a kernel name (for a layer read without a bias that now has one). */
function biasNameFor(kernelName: string): string {
  const match = /^(.*)(kernel|vars\/0)(:0)?$/.exec(kernelName);
  if (!match) return `${kernelName}_bias`;
  return `${match[1]}${match[2] === 'kernel' ? 'bias' : 'vars/1'}${match[3] ?? ''}`;
}
