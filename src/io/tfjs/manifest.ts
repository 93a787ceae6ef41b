/**
 * A TF.js `weightsManifest`: groups `{ paths, weights: [{ name, shape, dtype, quantization? }] }`; a
 * group's shards are concatenated and its weights lie back to back in manifest order. float32, or
 * quantised: `{ dtype: 'uint8' | 'uint16', scale, min }` (value = q * scale + min) or
 * `{ dtype: 'float16' }`. Weights are found by layer name and role: `<layer>/kernel` (Keras 2,
 * TF.js, optionally with a `:0` suffix or a path prefix) or `<layer>/vars/<i>` (Keras 3).
 */
import { badInput, EcpruneError, quote } from '../../errors.js';
import { decodeElements, elementType, shapeSize } from '../npy.js';
import { isRecord } from '../safetensors.js';

export type Json = Record<string, unknown>;

export interface StoredWeight {
  readonly name: string;
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
export function manifestWeights(
  json: Json,
  readShard: ShardReader,
  file?: string,
): Map<string, StoredWeight> {
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
          name,
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
export function decodeWeight(weight: StoredWeight, file: string | undefined, where: string): Float32Array {
  const count = shapeSize(weight.shape);
  const q = weight.quantization;
  if (weight.dtype !== 'float32') {
    throw new EcpruneError('unsupported', `has dtype ${weight.dtype}; weights must be float32`, file, where);
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

/**
 * The manifest entry of a layer's weight: `<layer>/<role>` (Keras 2, TF.js) or `<layer>/vars/<index>`
 * (Keras 3, which numbers a layer's weights in creation order).
 */
export function findWeight(
  weights: Map<string, StoredWeight>,
  layer: string,
  role: string,
  keras3Index: number,
): StoredWeight | undefined {
  const escaped = layer.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`(^|/)${escaped}/(${role}|vars/${keras3Index})(:0)?$`);
  for (const [name, weight] of weights) if (pattern.test(name)) return weight;
  return undefined;
}
