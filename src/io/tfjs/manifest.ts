/**
 * A TF.js `weightsManifest`: groups `{ paths, weights: [{ name, shape, dtype, quantization? }] }`; a
 * group's shards are concatenated and its weights lie back to back in manifest order. float32, or
 * quantised: `{ dtype: 'uint8' | 'uint16', scale, min }` (value = q * scale + min) or
 * `{ dtype: 'float16' }`. Weights are found by layer name and role: `<layer>/kernel` (Keras 2,
 * TF.js, optionally with a `:0` suffix or a path prefix) or `<layer>/vars/<i>` (Keras 3).
 */
import { badInput, EcpruneError } from '../../errors.js';
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

/** Every weight of the manifest, by name (in manifest order), as the bytes it occupies in its group's shards. */
export function manifestWeights(
  json: Json,
  readShard: (path: string) => Uint8Array,
  file?: string,
): Map<string, StoredWeight> {
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest)) throw badInput('has no weightsManifest', file);
  const weights = new Map<string, StoredWeight>();
  manifest.forEach((group: unknown, g) => {
    const where = `weightsManifest group ${g}`;
    if (!isRecord(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw badInput('needs paths and weights', file, where);
    }
    if (!group.paths.every((p) => typeof p === 'string'))
      throw badInput('paths must be strings', file, where);
    const shards = (group.paths as string[]).map(readShard);
    const data = new Uint8Array(shards.reduce((n, shard) => n + shard.length, 0));
    let at = 0;
    for (const shard of shards) {
      data.set(shard, at);
      at += shard.length;
    }
    let offset = 0;
    for (const entry of group.weights as unknown[]) {
      if (!isRecord(entry) || typeof entry.name !== 'string')
        throw badInput('a weight entry has no name', file, where);
      const weightWhere = `weight '${entry.name}'`;
      const { shape, dtype, quantization } = entry;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw badInput(`invalid shape ${JSON.stringify(shape)}`, file, weightWhere);
      }
      if (quantization !== undefined && !isRecord(quantization))
        throw badInput('invalid quantization', file, weightWhere);
      const stored = quantization?.dtype ?? dtype;
      const size = typeof stored === 'string' ? BYTES_PER[stored] : undefined;
      if (size === undefined) {
        throw new EcpruneError(
          'unsupported',
          `dtype ${JSON.stringify(stored)} is not supported`,
          file,
          weightWhere,
        );
      }
      const end = offset + shapeSize(shape) * size;
      if (end > data.length) {
        throw badInput(
          `truncated: the weight ends at byte ${end} of the shards ${group.paths.join(', ')}, which hold ${data.length}`,
          file,
          weightWhere,
        );
      }
      if (!weights.has(entry.name)) {
        weights.set(entry.name, {
          name: entry.name,
          shape,
          dtype: String(dtype),
          quantization,
          bytes: data.subarray(offset, end),
        });
      }
      offset = end;
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
