/**
 * safetensors (Hugging Face's tensor file format), bytes in and bytes out, and PyTorch state_dicts.
 *
 * Layout: an 8-byte little-endian header length n, n bytes of JSON
 * `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`,
 * then the raw little-endian tensor bytes; offsets are relative to the end of the header and the
 * tensors tile the data section exactly (no gaps, no overlap).
 *
 * A state_dict of an `nn.Sequential` of `nn.Linear` layers (`0.weight`, `0.bias`, `2.weight`, ...,
 * or with a prefix such as `layers.0.weight`) holds weights only: the activations come from the
 * architecture string (`--arch`, see arch.ts) or from the file's `__metadata__.ecprune_arch`.
 */
import { badInput, EcpruneError, quote } from '../errors.js';
import type { Activation } from '../model/activations.js';
import { type FloatArray, zerosLike } from '../model/matrix.js';
import { type Mlp, validateMlp } from '../model/mlp.js';
import { type Arch, archActivations, checkArchSizes } from './arch.js';
import { decodeElements, elementType, floatValues } from './npy.js';

export interface SafetensorsTensor {
  /** the dtype it was stored as (F32, F16, BF16, F64); `data` is float64 for F64, else float32 */
  readonly dtype: string;
  readonly shape: number[];
  readonly data: FloatArray;
}

/** The `__metadata__` key that holds the architecture string of a model ecprune wrote. */
export const ARCH_METADATA_KEY = 'ecprune_arch';

/** The Rust reference implementation refuses headers over 100 MB; so does ecprune. */
const MAX_HEADER_BYTES = 100_000_000;
/**
 * An MLP's state_dict has two tensors per layer; a header with room for more than this many is
 * refused before JSON.parse, which needs ~15 µs and ~1.8 KB per key of one object (1.4 million
 * empty tensors took 22 s and 2.6 GB to parse).
 */
const MAX_TENSORS = 100_000;

/** How each accepted dtype is decoded. */
const DTYPES: Record<string, { size: number; decode(bytes: Uint8Array, count: number): FloatArray }> = {
  F32: { size: 4, decode: (bytes, n) => floatValues(decodeElements(bytes, elementType('<f4'), n)) },
  F16: { size: 2, decode: (bytes, n) => floatValues(decodeElements(bytes, elementType('<f2'), n)) },
  F64: { size: 8, decode: (bytes, n) => floatValues(decodeElements(bytes, elementType('<f8'), n)) },
  BF16: { size: 2, decode: decodeBfloat16 },
};

/** bfloat16 is the upper half of a float32: shifting the 16 bits up gives the value exactly. */
export function decodeBfloat16(bytes: Uint8Array, count: number): Float32Array {
  const bits = new Uint32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, count * 2);
  for (let i = 0; i < count; i++) bits[i] = view.getUint16(2 * i, true) << 16;
  return new Float32Array(bits.buffer);
}

interface HeaderEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  readonly entries: readonly HeaderEntry[];
  readonly metadata: Record<string, string>;
  /** where the data section starts (8 + header length) */
  readonly dataOffset: number;
}

/**
 * Parses and checks the header: its size against the file before it is decoded, every tensor's
 * shape against its byte range, and the byte ranges against each other and the data section.
 */
export function parseSafetensorsHeader(bytes: Uint8Array, file?: string): SafetensorsHeader {
  if (bytes.length < 8)
    throw badInput(`truncated: ${bytes.length} bytes, not even the 8-byte header length`, file);
  const length = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    throw badInput(
      `the header claims ${length} bytes, the file holds ${bytes.length - 8} after the length`,
      file,
    );
  }
  const dataOffset = 8 + Number(length);
  const header = bytes.subarray(8, dataOffset);
  // every tensor is an object, so its '{' bounds the count from above (one linear scan)
  let objects = 0;
  for (let at = header.indexOf(0x7b); at >= 0; at = header.indexOf(0x7b, at + 1)) objects++;
  if (objects - 1 > MAX_TENSORS) {
    throw badInput(
      `the header has room for ${objects - 1} tensors, over the ${MAX_TENSORS} ecprune reads`,
      file,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(header));
  } catch (error) {
    throw badInput(`the header is not valid JSON: ${(error as Error).message}`, file);
  }
  if (!isRecord(json)) throw badInput('the header is not a JSON object', file);
  const dataBytes = bytes.length - dataOffset;
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isRecord(value)) throw badInput('__metadata__ is not an object', file);
      for (const [key, text] of Object.entries(value)) {
        if (typeof text !== 'string')
          throw badInput(`__metadata__ value ${quote(key)} is not a string`, file);
        metadata[key] = text;
      }
      continue;
    }
    const where = `tensor ${quote(name)}`;
    if (!isRecord(value)) throw badInput('is not an object', file, where);
    const { dtype, shape, data_offsets: offsets } = value;
    if (typeof dtype !== 'string') throw badInput('has no dtype', file, where);
    const type = DTYPES[dtype];
    if (type === undefined) {
      throw new EcpruneError(
        'unsupported',
        `dtype ${dtype} is not supported (${Object.keys(DTYPES).join(', ')})`,
        file,
        where,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw badInput(`invalid shape ${quote(shape)}`, file, where);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      throw badInput(`invalid data_offsets ${quote(offsets)}`, file, where);
    }
    const [begin, end] = offsets as number[];
    if (begin > end || end > dataBytes) {
      throw badInput(
        `data_offsets [${begin}, ${end}] lie outside the ${dataBytes} bytes of data`,
        file,
        where,
      );
    }
    const expected = shape.reduce((n: number, d: number) => n * d, 1) * type.size;
    if (end - begin !== expected) {
      throw badInput(
        `shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes, data_offsets give ${end - begin}`,
        file,
        where,
      );
    }
    entries.push({ name, dtype, shape, begin, end });
  }
  // the byte ranges must tile the data section: sorted by start, each starts where the previous ended
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const entry of sorted) {
    if (entry.begin !== covered) {
      const problem =
        entry.begin < covered ? 'overlaps the previous tensor' : `leaves a gap after byte ${covered}`;
      throw badInput(
        `data_offsets [${entry.begin}, ${entry.end}] ${problem}`,
        file,
        `tensor ${quote(entry.name)}`,
      );
    }
    covered = entry.end;
  }
  if (covered !== dataBytes)
    throw badInput(`the tensors cover ${covered} of the ${dataBytes} data bytes`, file);
  return { entries, metadata, dataOffset };
}

/** Every tensor of a safetensors file, decoded to float32, in the header's order. */
export function readSafetensors(bytes: Uint8Array, file?: string): Map<string, SafetensorsTensor> {
  const { entries, dataOffset } = parseSafetensorsHeader(bytes, file);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const { name, dtype, shape, begin, end } of entries) {
    const count = (end - begin) / DTYPES[dtype].size;
    const data = DTYPES[dtype].decode(bytes.subarray(dataOffset + begin, dataOffset + end), count);
    tensors.set(name, { dtype, shape, data });
  }
  return tensors;
}

/** Encodes tensors (in the map's order; float64 as F64, float32 as F32) with optional string metadata. */
export function writeSafetensors(
  tensors: ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: FloatArray }>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, { shape, data }] of tensors) {
    const dtype = data instanceof Float64Array ? 'F64' : 'F32';
    header[name] = { dtype, shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  // padded with spaces so that the data starts 8-byte aligned, as the reference writer does
  const text = new TextEncoder().encode(JSON.stringify(header));
  const json = new Uint8Array(Math.ceil(text.length / 8) * 8).fill(0x20);
  json.set(text);
  const data = littleEndian([...tensors.values()].map((tensor) => tensor.data));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/**
 * Arrays back to back as little-endian bytes, each in its own type (safetensors F32 and F64), or
 * all as float32 with `asFloat32` (TF.js shards).
 */
function littleEndian(arrays: readonly FloatArray[], asFloat32 = false): Uint8Array {
  const width = (values: FloatArray) => (asFloat32 ? 4 : values.BYTES_PER_ELEMENT);
  const out = new Uint8Array(arrays.reduce((n, values) => n + width(values) * values.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const values of arrays) {
    const size = width(values);
    for (let i = 0; i < values.length; i++) {
      if (size === 4) view.setFloat32(at + 4 * i, values[i], true);
      else view.setFloat64(at + 8 * i, values[i], true);
    }
    at += size * values.length;
  }
  return out;
}

/** Arrays back to back as little-endian float32 (the layout of TF.js shards). */
export function float32LittleEndian(arrays: readonly FloatArray[]): Uint8Array {
  return littleEndian(arrays, true);
}

// ---------------------------------------------------------------------------------------------
// PyTorch state_dicts

/** The key names of one layer's parameters, to write a model back under the names it was read with. */
export interface StateDictLayerKeys {
  readonly weight: string;
  /** undefined when the Linear had `bias=False` */
  readonly bias?: string;
}

/** Module path with numbers compared as numbers: `layers.2` before `layers.10`, `fc1` before `fc2`. */
function naturalOrder(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/**
 * An MLP from a state_dict: every `<module>.weight` (2-D, n_out x n_in as nn.Linear stores it) with
 * its `<module>.bias`, the modules in natural order of their names (`0`, `2`, `4` or `layers.0`,
 * `layers.2` ...). The activations come from `arch`; its sizes, when given, are checked.
 */
export function mlpFromStateDict(
  tensors: ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: FloatArray }>,
  arch: Arch,
  file?: string,
): { mlp: Mlp; keys: StateDictLayerKeys[] } {
  const modules = new Map<string, { weight?: string; bias?: string }>();
  for (const name of tensors.keys()) {
    const match = /^(.*)\.(weight|bias)$/.exec(name);
    if (!match) {
      throw new EcpruneError(
        'unsupported',
        `'${name}' is not a Linear layer's weight or bias (ecprune reads nn.Sequential MLPs)`,
        file,
      );
    }
    const entry = modules.get(match[1]) ?? {};
    entry[match[2] as 'weight' | 'bias'] = name;
    modules.set(match[1], entry);
  }
  if (modules.size === 0) throw badInput('holds no tensors', file);
  const paths = [...modules.keys()].sort(naturalOrder);
  const keys: StateDictLayerKeys[] = [];
  const shapes = paths.map((path) => {
    const { weight, bias } = modules.get(path)!;
    const where = `module '${path}'`;
    if (weight === undefined) throw badInput('has a bias but no weight', file, where);
    const shape = tensors.get(weight)!.shape;
    if (shape.length !== 2) {
      throw new EcpruneError(
        'unsupported',
        `weight has shape [${shape.join(', ')}]; only Linear layers (2-D weights) are supported`,
        file,
        where,
      );
    }
    keys.push(bias === undefined ? { weight } : { weight, bias });
    return shape;
  });
  const sizes = [shapes[0][1], ...shapes.map((shape) => shape[0])];
  checkArchSizes(arch, sizes, file);
  const activations: Activation[] = archActivations(arch, paths.length, file);
  const mlp: Mlp = {
    layers: keys.map(({ weight, bias }, l) => {
      const [rows, cols] = shapes[l];
      const weightData = tensors.get(weight)!.data;
      const biasData = bias === undefined ? zerosLike(weightData, rows) : tensors.get(bias)!.data;
      return {
        weight: { rows, cols, data: weightData },
        bias: biasData,
        activation: activations[l],
      };
    }),
  };
  return { mlp: validateMlp(mlp, file), keys };
}

/**
 * The state_dict of `mlp` under `keys` (those it was read with), or under nn.Sequential's names
 * for Linear / activation pairs (`0.weight`, `0.bias`, `2.weight`, ...) when `keys` is undefined
 * or does not fit. A layer read without a bias gets `<module>.bias` if its bias is no longer zero.
 */
export function stateDictFromMlp(
  mlp: Mlp,
  keys?: readonly StateDictLayerKeys[],
): Map<string, { shape: number[]; data: FloatArray }> {
  const names =
    keys?.length === mlp.layers.length
      ? keys
      : mlp.layers.map((_, l) => ({ weight: `${2 * l}.weight`, bias: `${2 * l}.bias` }));
  const tensors = new Map<string, { shape: number[]; data: FloatArray }>();
  mlp.layers.forEach((layer, l) => {
    const { weight, bias } = names[l];
    tensors.set(weight, { shape: [layer.weight.rows, layer.weight.cols], data: layer.weight.data });
    if (bias !== undefined || layer.bias.some((b) => b !== 0)) {
      tensors.set(bias ?? weight.replace(/weight$/, 'bias'), {
        shape: [layer.bias.length],
        data: layer.bias,
      });
    }
  });
  return tensors;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
