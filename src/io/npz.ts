/** NumPy `.npz` archives: a zip of `.npy` members, stored (`np.savez`) or deflated (`np.savez_compressed`). */
import { type Unzipped, unzipSync, type Zippable, zipSync } from 'fflate';
import { badInput, EcpruneError, quote } from '../errors.js';
import { type NpyArray, type NpyData, readNpy, writeNpy } from './npy.js';

/** Refuse archives whose members would inflate to more than this (typed arrays stop near 4 GiB anyway). */
export const NPZ_MAX_BYTES = 4 * 2 ** 30;

/**
 * Reads every `.npy` member, keyed by its name without `.npy` (other members are skipped, as NumPy
 * does not read them as arrays either). The zip's structure is checked before anything is
 * inflated (see `zipMembers`), and the total inflated size against `maxBytes`.
 */
export function readNpz(bytes: Uint8Array, file?: string, maxBytes = NPZ_MAX_BYTES): Map<string, NpyArray> {
  const arrays = new Map<string, NpyArray>();
  for (const [member, data] of Object.entries(unzipChecked(bytes, file, '.npz', maxBytes))) {
    if (!member.endsWith('.npy')) continue;
    const name = member.slice(0, -'.npy'.length);
    try {
      arrays.set(name, readNpy(data));
    } catch (error) {
      if (!(error instanceof EcpruneError)) throw error;
      throw new EcpruneError(error.code, error.detail, file, `array '${name}'`);
    }
  }
  return arrays;
}

/**
 * Every member of a zip (`kind` names the format in errors: '.npz', 'torch.save'), its structure
 * checked before anything is inflated (see `zipMembers`) and the total inflated size against
 * `maxBytes`: fflate's unzipSync trusts the directory's counts and sizes.
 */
export function unzipChecked(
  bytes: Uint8Array,
  file: string | undefined,
  kind: string,
  maxBytes = NPZ_MAX_BYTES,
): Unzipped {
  const members = zipMembers(bytes, file, kind);
  const total = members.reduce((sum, member) => sum + member.originalSize, 0);
  if (total > maxBytes) {
    throw new EcpruneError(
      'limit',
      `the arrays would take ${total} bytes once inflated (limit ${maxBytes})`,
      file,
    );
  }
  for (const { name, compression, size, originalSize } of members) {
    if (compression === 0 ? originalSize !== size : !(originalSize <= DEFLATE_MAX_RATIO * size + 1024)) {
      const how = compression === 0 ? 'stored' : 'compressed';
      throw badInput(
        `not a readable ${kind} (zip) archive: member ${quote(name)} claims ${originalSize} bytes from ${size} ${how} bytes`,
        file,
      );
    }
  }
  try {
    return unzipSync(bytes);
  } catch (error) {
    throw badInput(`not a readable ${kind} (zip) archive: ${(error as Error).message}`, file);
  }
}

/** The members' names from the zip's central directory (nothing inflated), or undefined when it is not a readable zip. */
export function zipMemberNames(bytes: Uint8Array): string[] | undefined {
  try {
    return zipMembers(bytes, undefined, 'zip').map((member) => member.name);
  } catch (error) {
    if (error instanceof EcpruneError) return undefined;
    throw error;
  }
}

/** What the central directory says about a member. */
interface ZipMember {
  readonly name: string;
  readonly compression: number;
  readonly size: number;
  readonly originalSize: number;
}

/** Deflate cannot expand data by more than about 1032:1; a larger claim is a forged size. */
const DEFLATE_MAX_RATIO = 1032;
const CENTRAL_ENTRY_BYTES = 46;
const LOCAL_HEADER_BYTES = 30;

/**
 * Walks the zip's central directory the way fflate's `unzipSync` does (same end-record search,
 * same zip64 handling) and checks every number it will use: the entry count against the bytes
 * that could hold that many entries (a forged count would otherwise loop billions of times), each
 * entry and its data inside the file, and each size against what its compression can produce (a
 * forged size would otherwise be allocated). Compression other than stored or deflate is refused.
 */
function zipMembers(d: Uint8Array, file: string | undefined, kind: string): ZipMember[] {
  const fail = (detail: string) => badInput(`not a readable ${kind} (zip) archive: ${detail}`, file);
  const b2 = (at: number) => (at + 2 <= d.length ? d[at] | (d[at + 1] << 8) : Number.NaN);
  const b4 = (at: number) =>
    at >= 0 && at + 4 <= d.length
      ? (d[at] | (d[at + 1] << 8) | (d[at + 2] << 16) | (d[at + 3] << 24)) >>> 0
      : Number.NaN;
  let e = d.length - 22;
  while (e >= 0 && b4(e) !== 0x6054b50) {
    if (e === 0 || d.length - e > 65558) break;
    e--;
  }
  if (e < 0 || b4(e) !== 0x6054b50) throw fail('no end of central directory record');
  let count = b2(e + 8);
  if (count === 0) return [];
  let offset = b4(e + 16);
  let zip64 = b4(e - 20) === 0x7064b50;
  if (zip64) {
    const record = b4(e - 12);
    zip64 = b4(record) === 0x6064b50;
    if (zip64) {
      count = b4(record + 32);
      offset = b4(record + 48);
    }
  }
  if (!(count * CENTRAL_ENTRY_BYTES <= d.length)) throw fail(`the directory claims ${count} entries`);
  const members: ZipMember[] = [];
  for (let i = 0; i < count; i++) {
    if (b4(offset) !== 0x2014b50) throw fail(`entry ${i} of the central directory is not where it should be`);
    const nameLength = b2(offset + 28);
    const extraLength = b2(offset + 30);
    const commentLength = b2(offset + 32);
    const nameStart = offset + CENTRAL_ENTRY_BYTES;
    const extra = nameStart + nameLength;
    if (!(extra + extraLength + commentLength <= d.length))
      throw fail(`entry ${i} runs past the end of the file`);
    let size = b4(offset + 20);
    let originalSize = b4(offset + 24);
    let local = b4(offset + 42);
    if (zip64 && (size === 0xffffffff || originalSize === 0xffffffff || local === 0xffffffff)) {
      // the zip64 extra field holds the 8-byte values in this order, each only when needed
      for (let at = extra; at + 4 < extra + extraLength; at += 4 + b2(at + 2)) {
        if (b2(at) !== 1) continue;
        let field = at + 4;
        const b8 = () => {
          const value = b4(field) + b4(field + 4) * 2 ** 32;
          field += 8;
          return value;
        };
        if (originalSize === 0xffffffff) originalSize = b8();
        if (size === 0xffffffff) size = b8();
        if (local === 0xffffffff) local = b8();
        break;
      }
    }
    const compression = b2(offset + 10);
    const name = new TextDecoder().decode(d.subarray(nameStart, extra));
    const dataStart = local + LOCAL_HEADER_BYTES + b2(local + 26) + b2(local + 28);
    if (b4(local) !== 0x4034b50 || !(dataStart + size <= d.length)) {
      throw fail(`member ${quote(name)} lies outside the file`);
    }
    if (compression !== 0 && compression !== 8) {
      throw new EcpruneError(
        'unsupported',
        `member ${quote(name)} uses zip compression method ${compression} (NumPy writes stored or deflate)`,
        file,
      );
    }
    // bit 0 of the general-purpose flags (central and local header): the member is encrypted, and
    // its bytes would otherwise be read as plaintext garbage (NumPy refuses it too)
    if ((b2(offset + 8) | b2(local + 6)) & 1) {
      throw new EcpruneError(
        'unsupported',
        `member ${quote(name)} is encrypted; save the arrays without a password`,
        file,
      );
    }
    members.push({ name, compression, size, originalSize });
    offset = extra + extraLength + commentLength;
  }
  return members;
}

/** A fixed member date, so that the same arrays always give the same bytes (NumPy does the same). */
const MEMBER_DATE = new Date(1980, 0, 1);

/** Encodes arrays as an `.npz`; `compress` deflates the members like `np.savez_compressed`. */
export function writeNpz(
  arrays: Record<string, { readonly shape: readonly number[]; readonly data: NpyData }>,
  compress = false,
): Uint8Array {
  const members: Zippable = {};
  for (const [name, array] of Object.entries(arrays)) members[`${name}.npy`] = writeNpy(array);
  return zipSync(members, { level: compress ? 6 : 0, mtime: MEMBER_DATE });
}
