/** NumPy `.npz` archives: a zip of `.npy` members, stored (`np.savez`) or deflated (`np.savez_compressed`). */
import { type UnzipOptions, type Unzipped, unzipSync, type Zippable, zipSync } from 'fflate';
import { badInput, EcpruneError } from '../errors.js';
import { type NpyArray, type NpyData, readNpy, writeNpy } from './npy.js';

/** Refuse archives whose members would inflate to more than this (typed arrays stop near 4 GiB anyway). */
export const NPZ_MAX_BYTES = 4 * 2 ** 30;

/**
 * Reads every `.npy` member, keyed by its name without `.npy` (other members are skipped, as NumPy
 * does not read them as arrays either). The total inflated size is checked against `maxBytes` from
 * the zip's central directory before anything is inflated.
 */
export function readNpz(bytes: Uint8Array, file?: string, maxBytes = NPZ_MAX_BYTES): Map<string, NpyArray> {
  let total = 0;
  unzip(bytes, file, {
    filter: (member) => {
      total += member.originalSize;
      return false; // sizes only: nothing is inflated in this pass
    },
  });
  if (total > maxBytes) {
    throw new EcpruneError(
      'limit',
      `the arrays would take ${total} bytes once inflated (limit ${maxBytes})`,
      file,
    );
  }
  const arrays = new Map<string, NpyArray>();
  for (const [member, data] of Object.entries(unzip(bytes, file))) {
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

function unzip(bytes: Uint8Array, file: string | undefined, options?: UnzipOptions): Unzipped {
  try {
    return unzipSync(bytes, options);
  } catch (error) {
    throw badInput(`not a readable .npz (zip) archive: ${(error as Error).message}`, file);
  }
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
