/**
 * Models on disk: the format is chosen by the file's content on input (ONNX protobuf, TF.js
 * model.json, safetensors, PyTorch checkpoint, .npz; by the extension when the content is not
 * recognised) and by the
 * extension on output. Everything format-specific lives
 * in src/io; this file only reads and writes bytes and dispatches.
 */
import { realpathSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { badInput, EcpruneError, option, quote } from '../errors.js';
import { defaultGemm } from '../gemm/default.js';
import { type Graph, inputSize, type Model } from '../graph/graph.js';
import { asGraph, chainOf, graphFromMlp } from '../graph/mlp-graph.js';
import { type FrozenPrefix, throughPrefix } from '../graph/prefix.js';
import { type ModelShape, modelShape } from '../graph/run.js';
import { sizeOf } from '../graph/tensor.js';
import { type Arch, formatArch, parseArch, requireArch } from '../io/arch.js';
import { readNpzModel, writeNpzModel } from '../io/npz-model.js';
import { frozenPrefixOf, type OnnxTemplate, readOnnx, weightDtypeOf, writeOnnx } from '../io/onnx.js';
import {
  ARCH_METADATA_KEY,
  mlpFromStateDict,
  parseSafetensorsHeader,
  readSafetensors,
  type StateDictLayerKeys,
  stateDictFromMlp,
  writeSafetensors,
} from '../io/safetensors.js';
import {
  readTfjs,
  TFJS_SHARD_NAME,
  type TfjsTemplate,
  tfjsGraphProblem,
  writeTfjs,
  writeTfjsGraph,
} from '../io/tfjs.js';
import { isTorchZip, readTorch, type TorchDtype, writeTorch } from '../io/torch.js';
import { type Mlp, validateMlp } from '../model/mlp.js';
import { VERSION } from '../version.js';
import {
  checkOutputPath,
  readInputFile,
  readReferencedFile,
  type WriteOptions,
  withParentDir,
  writeOutputAtomic,
} from './files.js';

export type ModelFormat = 'onnx' | 'tfjs' | 'safetensors' | 'pytorch' | 'npz';

export interface LoadedModel {
  readonly graph: Graph;
  /** the model as a chain of layers, when it is one (what the chain-only variants need) */
  readonly mlp?: Mlp;
  /** ops before the first fully-connected layer, run forward-only by onnxruntime (ONNX only) */
  readonly prefix?: FrozenPrefix;
  /** features per sample the data must have (through the prefix), outputs, layers */
  readonly shape: ModelShape;
  readonly format: ModelFormat;
  readonly file: string;
  /** every file that was read: the model and, for TF.js, its weight shards */
  readonly files: readonly string[];
  /** the ONNX graph's structure, to write a pruned model back the same way */
  readonly onnx?: OnnxTemplate;
  /** the TF.js topology, layer and weight names */
  readonly tfjs?: TfjsTemplate;
  /** the state_dict's key names and the file's __metadata__ */
  readonly safetensors?: {
    readonly keys: readonly StateDictLayerKeys[];
    readonly metadata: Record<string, string>;
  };
  /** the state_dict's key names, each tensor's dtype, and the metadata ecprune stored */
  readonly pytorch?: {
    readonly keys: readonly StateDictLayerKeys[];
    readonly dtypes: ReadonlyMap<string, TorchDtype>;
    readonly metadata: Record<string, string>;
  };
}

const EXTENSIONS: Record<string, ModelFormat> = {
  '.onnx': 'onnx',
  '.json': 'tfjs',
  '.safetensors': 'safetensors',
  '.pt': 'pytorch',
  '.pth': 'pytorch',
  '.npz': 'npz',
};

export function formatFromExtension(file: string): ModelFormat {
  const extension = path.extname(file).toLowerCase();
  const format = EXTENSIONS[extension];
  if (format === undefined) {
    const known = Object.keys(EXTENSIONS).join(', ');
    throw new EcpruneError(
      'usage',
      `cannot tell the model format from the extension '${extension}' (use ${known})`,
      file,
    );
  }
  return format;
}

/**
 * The format of a model file from its first bytes, undefined when they say nothing: safetensors
 * starts with a little-endian header length (< 2^48, so bytes 6-7 are zero) and then '{'; a zip
 * with 'PK' (a torch.save checkpoint when it holds a data.pkl, else an .npz; a zip whose directory
 * is unreadable says nothing); a model.json with '{' (after optional whitespace); an ONNX protobuf with the tag
 * of field 1 (ir_version), which ONNX writers put first.
 */
export function sniffFormat(bytes: Uint8Array): ModelFormat | undefined {
  if (bytes.length >= 9 && bytes[6] === 0 && bytes[7] === 0 && bytes[8] === 0x7b) return 'safetensors';
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) {
    const torch = isTorchZip(bytes);
    return torch === undefined ? undefined : torch ? 'pytorch' : 'npz';
  }
  const first = bytes.find((byte) => byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d);
  if (first === 0x7b) return 'tfjs';
  return bytes[0] === 0x08 ? 'onnx' : undefined;
}

export interface LoadOptions {
  /** the architecture of a weight-only model (safetensors, PyTorch .pt, .npz), e.g. `784,300,10:relu`; see src/io/arch.ts */
  readonly arch?: string;
}

export async function loadModel(file: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const bytes = await readInputFile(file);
  if (bytes.length === 0) throw badInput('is empty', file);
  // unrecognised (truncated, corrupt) content goes to the reader its extension names, for a useful error
  const format = sniffFormat(bytes) ?? EXTENSIONS[path.extname(file).toLowerCase()] ?? 'onnx';
  const arch = options.arch === undefined ? undefined : parseArch(options.arch);
  if (arch !== undefined && (format === 'onnx' || format === 'tfjs')) {
    throw new EcpruneError(
      'usage',
      `${option('arch')} is for weight-only models (.safetensors, .pt, .npz); this ${format} model states its own activations`,
      file,
    );
  }
  switch (format) {
    case 'onnx': {
      const read = readOnnx(bytes, file);
      const { graph, template } = read;
      const frozen = frozenPrefixOf(read, file);
      return described({ graph, format, file, files: [file], onnx: template, prefix: frozen });
    }
    case 'tfjs':
      return loadTfjs(file, bytes);
    case 'safetensors':
      return loadSafetensors(file, bytes, arch);
    case 'pytorch':
      return loadTorch(file, bytes, arch);
    case 'npz':
      return described({ graph: graphFromMlp(readNpzModel(bytes, arch, file)), format, file, files: [file] });
  }
}

/** Completes a loaded model with its chain view and its shape. */
async function described(model: Omit<LoadedModel, 'mlp' | 'shape'>): Promise<LoadedModel> {
  const mlp = chainOf(model.graph);
  const shape = await modelShape(model.graph);
  const inputs = model.prefix ? sizeOf(model.prefix.inputShape) : shape.inputs;
  return { ...model, mlp: mlp && validateMlp(mlp, model.file), shape: { ...shape, inputs } };
}

/**
 * The model as a chain of layers from its input, for the commands that need one (the `.ecsr`
 * runtime): an error naming `what` otherwise, also for a chain behind a frozen prefix.
 */
export function requireChain(
  model: LoadedModel,
  what: string,
  instead = 'plain pruning and the other variants work on it',
): Mlp {
  if (model.prefix) {
    // the layers after a prefix are a chain, but not from the model's input: writing them alone drops the prefix
    throw new EcpruneError(
      'unsupported',
      `${what} needs a plain chain of fully-connected layers and activations; this model has a frozen prefix ` +
        '(the ops before its first fully-connected layer, run by onnxruntime), which only ONNX holds: keep it as ONNX',
      model.file,
    );
  }
  if (model.mlp) return model.mlp;
  throw new EcpruneError(
    'unsupported',
    `${what} needs a plain chain of fully-connected layers and activations; this model is a graph ` +
      `(${model.graph.nodes.length} ops: a residual, normalisation, head or prefix); ${instead}`,
    model.file,
  );
}

/**
 * The float type a model's weights are stored in, where its file says and ecprune keeps it (ONNX,
 * PyTorch .pt; float64 in any format, which ecprune holds as float64): a .pt written from it keeps
 * that type.
 */
export function storedDtype(model: LoadedModel): TorchDtype | undefined {
  if (model.onnx) return weightDtypeOf(model.onnx);
  const first = model.pytorch?.keys[0];
  if (first) return model.pytorch?.dtypes.get(first.weight);
  return isFloat64(model.graph) ? 'float64' : undefined;
}

/** Whether the model's weights are held in float64 (see FloatArray). */
function isFloat64(graph: Graph): boolean {
  return graph.layers[0]?.weight.data instanceof Float64Array;
}

/**
 * The float type `saveModel` stores the weights of `like` (or a pruning of it) in as `file`: its own
 * in ONNX over its ONNX file and in a .pt, float64 kept in safetensors and .npz, float32 in every
 * other case.
 */
export function writtenDtype(file: string, like: LoadedModel): TorchDtype {
  const format = formatFromExtension(file);
  const kept = format === 'pytorch' || (format === 'onnx' && like.format === 'onnx');
  if ((format === 'safetensors' || format === 'npz') && isFloat64(like.graph)) return 'float64';
  return (kept && storedDtype(like)) || 'float32';
}

/** Each format as the messages name it. */
const FORMAT_NAMES: Record<ModelFormat, string> = {
  onnx: 'ONNX',
  tfjs: 'TF.js',
  safetensors: 'safetensors',
  pytorch: 'PyTorch .pt',
  npz: '.npz',
};

/** The formats that hold only the weights of a chain of layers (the activations come from --arch). */
const CHAIN_FORMATS: ReadonlySet<ModelFormat> = new Set(['safetensors', 'pytorch', 'npz']);

/**
 * Why `graph` (derived from `like`, when given) cannot be written as `file`'s format, or undefined:
 * a frozen prefix is kept only in ONNX; a weight-only format holds a chain of layers; TF.js holds
 * a graph over the model.json it was read from, or one whose ops Keras layers compute (the TF.js
 * writer says which node it cannot hold). The advice names only formats that can hold the model.
 */
async function unwritable(
  file: string,
  graph: Graph,
  like: LoadedModel | undefined,
): Promise<EcpruneError | undefined> {
  const format = formatFromExtension(file);
  if (like?.prefix && format !== 'onnx') {
    return new EcpruneError(
      'unsupported',
      `a ${FORMAT_NAMES[format]} file cannot hold the model's frozen prefix (the ops before its first fully-connected layer, run by onnxruntime): write .onnx`,
      file,
    );
  }
  const tfjsProblem = () => (like?.format === 'tfjs' ? undefined : tfjsGraphProblem(graph));
  if (format === 'tfjs') {
    const problem = await tfjsProblem();
    return problem === undefined ? undefined : new EcpruneError('unsupported', problem, file);
  }
  if (!CHAIN_FORMATS.has(format) || chainOf(graph) !== undefined) return undefined;
  const graphFormats = (await tfjsProblem()) === undefined ? '.onnx or TF.js model.json' : '.onnx';
  return new EcpruneError(
    'unsupported',
    `a ${FORMAT_NAMES[format]} file holds only the weights of a chain of layers; this model is a graph: write ${graphFormats}`,
    file,
  );
}

/** Refuses, before any work, writing `model` (or a pruning of it) where its format cannot hold it. */
export async function checkFormatHolds(file: string, model: LoadedModel): Promise<void> {
  const problem = await unwritable(file, model.graph, model);
  if (problem) throw problem;
}

/** The data as the model's fully-connected part sees it: through the frozen prefix, if any. */
export function dataForModel(model: LoadedModel, data: Dataset): Dataset {
  return model.prefix ? throughPrefix(data, model.prefix, defaultGemm(), inputSize(model.graph)) : data;
}

/** Each layer's name in a state_dict: its module path (`fc1`, `net.0`). */
function moduleNames(keys: readonly StateDictLayerKeys[]): string[] {
  return keys.map((key) => key.weight.replace(/\.weight$/, ''));
}

/** A state_dict's architecture: `--arch`, else the one ecprune stored in the file's metadata. */
function archOf(metadata: Readonly<Record<string, string>>, arch: Arch | undefined, file: string): Arch {
  const stored = metadata[ARCH_METADATA_KEY];
  return requireArch(arch ?? (stored === undefined ? undefined : parseArch(stored, file)), file);
}

function loadSafetensors(file: string, bytes: Uint8Array, arch: Arch | undefined): Promise<LoadedModel> {
  const { metadata } = parseSafetensorsHeader(bytes, file);
  const { mlp, keys } = mlpFromStateDict(readSafetensors(bytes, file), archOf(metadata, arch, file), file);
  return described({
    graph: graphFromMlp(mlp, moduleNames(keys)),
    format: 'safetensors',
    file,
    files: [file],
    safetensors: { keys, metadata },
  });
}

function loadTorch(file: string, bytes: Uint8Array, arch: Arch | undefined): Promise<LoadedModel> {
  const { tensors, metadata } = readTorch(bytes, file);
  const { mlp, keys } = mlpFromStateDict(tensors, archOf(metadata, arch, file), file);
  const dtypes = new Map([...tensors].map(([name, tensor]) => [name, tensor.dtype]));
  return described({
    graph: graphFromMlp(mlp, moduleNames(keys)),
    format: 'pytorch',
    file,
    files: [file],
    pytorch: { keys, dtypes, metadata },
  });
}

/**
 * A model.json and its shards, which must be regular files inside the model.json's folder (after
 * following links), each read once and no longer than the manifest declares (see `manifestWeights`).
 */
function loadTfjs(file: string, bytes: Uint8Array): Promise<LoadedModel> {
  const files = [file];
  const read = new Map<string, string>([[realpathSync(file), file]]);
  const readShard = (shard: string, maxBytes: number): Uint8Array => {
    const { bytes: shardBytes, realPath } = readReferencedFile(file, shard, maxBytes);
    const earlier = read.get(realPath);
    if (earlier !== undefined) {
      throw badInput(`weight shard ${quote(shard)} is the same file as ${quote(earlier)}`, file);
    }
    read.set(realPath, shard);
    files.push(path.join(path.dirname(file), shard));
    return shardBytes;
  };
  const { graph, template } = readTfjs(new TextDecoder().decode(bytes), readShard, file);
  return described({ graph, format: 'tfjs', file, files, tfjs: template });
}

export interface SaveOptions extends WriteOptions {
  /** the model this one was derived from: its structure and names are kept when the output has its format */
  readonly like?: LoadedModel;
  /** key/value metadata stored in the file (ONNX metadata_props, safetensors __metadata__, TF.js userDefinedMetadata, a record in a .pt; not .npz) */
  readonly metadata?: Record<string, string>;
  /** ONNX: store weights as sparse_initializer */
  readonly onnxSparse?: boolean;
}

/**
 * Checks before any work that `file` can be written as a model: not an input, not an existing
 * file unless `force`, a known extension. (`writeOutputAtomic` checks again, thoroughly.)
 */
export async function checkModelOutput(file: string, options: WriteOptions = {}): Promise<void> {
  await checkOutputPath(file, options);
  // a TF.js output is two files: an existing shard is refused now, not after the work
  if (formatFromExtension(file) === 'tfjs') await checkOutputPath(tfjsShardFile(file), options);
}

/** The shard written next to a TF.js `file`: `group1-shard1of1.bin` for a `model.json`, else `<name>.weights.bin`. */
function tfjsShardFile(file: string): string {
  const name = path.basename(file);
  const shard =
    name === 'model.json' ? TFJS_SHARD_NAME : `${name.slice(0, -path.extname(name).length)}.weights.bin`;
  return path.join(path.dirname(file), shard);
}

/**
 * Writes `mlp` in the format of `file`'s extension, creating its folder. The files `like` was read
 * from count as inputs (never overwritten). TF.js: the shard is written next to the model.json and
 * before it (each file atomically), named `group1-shard1of1.bin` for a `model.json` and
 * `<name>.weights.bin` otherwise, so that several models can share a folder.
 */
export async function saveModel(file: string, model: Model, options: SaveOptions = {}): Promise<void> {
  const format = formatFromExtension(file);
  const graph = asGraph(model);
  const problem = await unwritable(file, graph, options.like);
  if (problem) throw problem;
  // safetensors, .pt and .npz hold a chain's weights only (checked above)
  const chain = () => chainOf(graph)!;
  const like = options.like?.format === format ? options.like : undefined;
  // every model ecprune writes names the version that wrote it (pruneMetadata adds how it was pruned)
  const metadata = { ecprune_version: VERSION, ...options.metadata };
  const write: WriteOptions = {
    force: options.force,
    inputs: [...(options.inputs ?? []), ...(options.like?.files ?? [])],
  };
  return withParentDir(file, async () => {
    switch (format) {
      case 'onnx':
        return writeOutputAtomic(
          file,
          writeOnnx(graph, like?.onnx, metadata, { sparse: options.onnxSparse }),
          write,
        );
      case 'safetensors': {
        const fileMetadata = {
          ...like?.safetensors?.metadata,
          ...metadata,
          [ARCH_METADATA_KEY]: formatArch(chain()),
        };
        return writeOutputAtomic(
          file,
          writeSafetensors(stateDictFromMlp(chain(), like?.safetensors?.keys), fileMetadata),
          write,
        );
      }
      case 'pytorch': {
        // each tensor in the dtype it was read in (a bias added by compensation in its weight's);
        // converted from ONNX, in the type of the ONNX weights
        const dtypes = like?.pytorch?.dtypes;
        const converted = options.like && storedDtype(options.like);
        const stateDict = new Map(
          [...stateDictFromMlp(chain(), like?.pytorch?.keys)].map(([name, tensor]) => {
            const dtype = dtypes?.get(name) ?? dtypes?.get(name.replace(/bias$/, 'weight')) ?? converted;
            return [name, { ...tensor, dtype }];
          }),
        );
        const fileMetadata = {
          ...like?.pytorch?.metadata,
          ...metadata,
          [ARCH_METADATA_KEY]: formatArch(chain()),
        };
        return writeOutputAtomic(file, writeTorch(stateDict, fileMetadata), write);
      }
      case 'npz':
        return writeOutputAtomic(file, writeNpzModel(chain()), write);
      case 'tfjs': {
        const shardName = path.basename(tfjsShardFile(file));
        const tfjsOptions = { metadata, shardName };
        const { modelJson, shards } = like?.tfjs
          ? writeTfjs(graph, like.tfjs, tfjsOptions)
          : await writeTfjsGraph(graph, tfjsOptions);
        // refused up front: a model.json refused after its shards were written would leave them behind
        await checkModelOutput(file, write);
        // the shards are written first (a model.json never refers to a missing shard) and removed
        // again when the model.json cannot be written, so a failure leaves neither
        const written: string[] = [];
        try {
          for (const [shard, bytes] of shards) {
            const shardFile = path.join(path.dirname(file), shard);
            await writeOutputAtomic(shardFile, bytes, write);
            written.push(shardFile);
          }
          return await writeOutputAtomic(file, modelJson, write);
        } catch (error) {
          for (const shardFile of written) await unlink(shardFile).catch(() => undefined);
          throw error;
        }
      }
    }
  });
}
