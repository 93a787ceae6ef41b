/**
 * IDX files, the format of MNIST and Fashion-MNIST: two zero bytes, a type code, the number of
 * dimensions, one big-endian uint32 per dimension, then big-endian elements. Gzipped files
 * (`*-ubyte.gz`) are recognized by their content and inflated.
 */
import { gunzipSync } from 'fflate';
import { badInput, EcpruneError } from '../errors.js';
import {
  checkDataPresent,
  dataByteLength,
  decodeElements,
  elementType,
  type NpyArray,
  shapeSize,
} from './npy.js';

/** IDX type codes as NumPy dtypes. */
const IDX_DTYPES: Record<number, string> = {
  8: '|u1',
  9: '|i1',
  11: '>i2',
  12: '>i4',
  13: '>f4',
  14: '>f8',
};

export interface IdxHeader {
  readonly dtype: string;
  readonly shape: number[];
  readonly dataOffset: number;
  readonly dataBytes: number;
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Whether `bytes` start like an (uncompressed) IDX file. */
export function looksLikeIdx(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0 && bytes[2] in IDX_DTYPES && bytes[3] > 0;
}

/** Bytes needed to parse the header, from its first 4 bytes. */
export function idxHeaderLength(prefix: Uint8Array): number {
  return 4 + 4 * (prefix[3] ?? 0);
}

/** Parses the header; `bytes` must hold at least `idxHeaderLength` bytes (not necessarily the data). */
export function parseIdxHeader(bytes: Uint8Array, file?: string): IdxHeader {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw badInput('not an IDX file (it does not start with two zero bytes)', file);
  }
  const dtype = IDX_DTYPES[bytes[2]];
  if (dtype === undefined) {
    const code = `0x${bytes[2].toString(16).padStart(2, '0')}`;
    throw new EcpruneError('unsupported', `IDX type code ${code} is not supported`, file);
  }
  const dataOffset = idxHeaderLength(bytes);
  if (bytes.length < dataOffset) throw badInput('truncated IDX header', file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, dataOffset);
  const shape = Array.from({ length: bytes[3] }, (_, axis) => view.getUint32(4 + 4 * axis, false));
  return { dtype, shape, dataOffset, dataBytes: dataByteLength(shape, elementType(dtype), file) };
}

/** Reads a whole IDX file, gzipped or not. */
export function readIdx(bytes: Uint8Array, file?: string): NpyArray {
  const raw = isGzip(bytes) ? gunzip(bytes, file) : bytes;
  const header = parseIdxHeader(raw, file);
  checkDataPresent(header.dataBytes, raw.length - header.dataOffset, file);
  const data = decodeElements(
    raw.subarray(header.dataOffset),
    elementType(header.dtype),
    shapeSize(header.shape),
  );
  return { shape: header.shape, dtype: header.dtype, data };
}

/** Deflate cannot expand data by more than about 1032:1; a trailer claiming more is corrupt. */
const DEFLATE_MAX_RATIO = 1032;

function gunzip(bytes: Uint8Array, file: string | undefined): Uint8Array {
  // fflate sizes its output from the gzip trailer (the last 4 bytes): check the claim before it is
  // allocated, against what the compressed bytes could possibly inflate to
  const n = bytes.length;
  const claimed =
    n < 18 ? 0 : (bytes[n - 4] | (bytes[n - 3] << 8) | (bytes[n - 2] << 16) | (bytes[n - 1] << 24)) >>> 0;
  if (n < 18 || claimed > DEFLATE_MAX_RATIO * n + 1024) {
    throw badInput(
      n < 18
        ? 'corrupt gzip data: too short'
        : `corrupt gzip data: the trailer claims ${claimed} bytes from ${n} compressed bytes`,
      file,
    );
  }
  try {
    return gunzipSync(bytes);
  } catch (error) {
    if (error instanceof RangeError)
      throw new EcpruneError('limit', `too large to inflate: ${error.message}`, file);
    throw badInput(`corrupt gzip data: ${(error as Error).message}`, file);
  }
}
