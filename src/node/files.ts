/**
 * Reading inputs and writing outputs safely.
 *
 * Outputs are written to a temp file in the target's folder, flushed to disk, then renamed into
 * place, so that a crash or Ctrl-C never leaves a half-written file under the output's name. An
 * existing file is only replaced with `force`, and an input is never replaced at all.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, unlinkSync } from 'node:fs';
import {
  access,
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  unlink,
} from 'node:fs/promises';
import path from 'node:path';
import { EcpruneError, option, quote } from '../errors.js';

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a folder',
  ENOTDIR: 'a parent is not a folder',
  EEXIST: 'it already exists',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
};

/** Whether `error` comes from the file system (carries an errno code such as `ENOENT`). */
export function isFsError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string';
}

/** A file-system failure as a one-line EcpruneError: `out.npy: cannot write: permission denied`. */
export function ioError(error: NodeJS.ErrnoException, file: string, action = 'read'): EcpruneError {
  return new EcpruneError('io', `cannot ${action}: ${REASONS[error.code!] ?? error.message}`, file);
}

export async function readInputFile(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (error) {
    throw isFsError(error) ? ioError(error, file) : error;
  }
}

/** A file a model refers to, as read by `readReferencedFile`. */
export interface ReferencedFile {
  readonly bytes: Uint8Array;
  /** the path after following links, the same for every name of the file */
  readonly realPath: string;
}

/**
 * Reads `relative`, a file that `referrer` (a model file) names relative to its own folder: after
 * following links it must be a regular file inside that folder (so a model cannot make ecprune
 * read `/proc/self/environ`, a device or a FIFO), and at most `maxBytes + 1` bytes are read, so a
 * caller that knows how long the file should be can refuse a longer one without reading it all.
 */
export function readReferencedFile(referrer: string, relative: string, maxBytes: number): ReferencedFile {
  const folder = path.dirname(referrer);
  const target = path.resolve(folder, relative);
  const outside = (why: string) =>
    new EcpruneError('input', `refers to ${quote(relative)}, which ${why}: refusing to read it`, referrer);
  let realPath: string;
  let descriptor: number;
  try {
    const realFolder = realpathSync(folder);
    realPath = realpathSync(target);
    const inside = path.relative(realFolder, realPath);
    if (inside === '' || inside.startsWith(`..${path.sep}`) || inside === '..' || path.isAbsolute(inside)) {
      throw outside(`resolves to ${quote(realPath)}, outside the model's folder`);
    }
    // non-blocking, so that opening a FIFO does not wait for a writer; no link at the last step
    descriptor = openSync(realPath, constants.O_RDONLY | constants.O_NONBLOCK | (constants.O_NOFOLLOW ?? 0));
  } catch (error) {
    throw isFsError(error) ? ioError(error, target) : error;
  }
  try {
    const info = fstatSync(descriptor);
    if (!info.isFile()) throw outside('is not a regular file');
    const bytes = new Uint8Array(Math.min(info.size, maxBytes + 1));
    let filled = 0;
    while (filled < bytes.length) {
      const count = readSync(descriptor, bytes, filled, bytes.length - filled, null);
      if (count === 0) break;
      filled += count;
    }
    return { bytes: bytes.subarray(0, filled), realPath };
  } catch (error) {
    throw isFsError(error) ? ioError(error, target) : error;
  } finally {
    closeSync(descriptor);
  }
}

/** Creates the missing folders of `file`'s path; returns the first one it created, if any. */
export async function ensureParentDir(file: string): Promise<string | undefined> {
  const folder = path.dirname(path.resolve(file));
  try {
    return await mkdir(folder, { recursive: true });
  } catch (error) {
    throw isFsError(error) ? ioError(error, folder, 'create folder') : error;
  }
}

/**
 * Runs `write` (which writes `file`, and for a multi-file output its companions) after creating
 * the missing folders of `file`'s path, and removes those folders again if it fails: a failed run
 * (a full disk) leaves no folder behind either.
 */
export async function withParentDir<T>(file: string, write: () => Promise<T>): Promise<T> {
  const created = await ensureParentDir(file);
  try {
    return await write();
  } catch (error) {
    if (created !== undefined) await rm(created, { recursive: true, force: true });
    throw error;
  }
}

/** Bytes, text (written as UTF-8), or a function that writes the content in chunks. */
export type OutputContent =
  | Uint8Array
  | string
  | ((write: (chunk: Uint8Array | string) => Promise<void>) => Promise<void>);

export interface WriteOptions {
  /** replace an existing file (never one of `inputs`) */
  force?: boolean;
  /** the files this run reads: refused as outputs, through any symlink or hard link */
  inputs?: readonly string[];
}

/**
 * Refuses an output path that is one of the inputs, that exists (unless `force`), that is a
 * folder, or whose folder cannot be written or created (the nearest existing ancestor must be a
 * writable folder: missing folders are created when the output is written, see `ensureParentDir`).
 * Commands call it before their work, so a run is not wasted on an output that cannot be written;
 * the write itself checks again.
 */
export async function checkOutputPath(file: string, options: WriteOptions = {}): Promise<void> {
  for (const input of options.inputs ?? []) {
    if (await sameFile(file, input)) {
      throw new EcpruneError('usage', `is also an input (${input}): refusing to overwrite it`, file);
    }
  }
  const nameBytes = Buffer.byteLength(path.basename(file));
  if (nameBytes > MAX_NAME_BYTES) {
    throw new EcpruneError(
      'usage',
      `the name is ${nameBytes} bytes, over the ${MAX_NAME_BYTES} a file name may have`,
      file,
    );
  }
  const existing = await lstat(file).catch(() => undefined);
  if (existing?.isDirectory()) throw new EcpruneError('io', 'cannot write: it is a folder', file);
  if (!options.force && existing !== undefined) {
    throw new EcpruneError('usage', `already exists (use ${option('force')} to overwrite)`, file);
  }
  // a symlink, device or FIFO would be replaced by a regular file (as root, even /dev/null)
  if (existing !== undefined && !existing.isFile()) {
    throw new EcpruneError(
      'usage',
      `is not a regular file: refusing to replace it, even with ${option('force')}`,
      file,
    );
  }
  await checkWritableFolder(file);
}

/** The nearest existing ancestor of `file` must be a folder this process may write in. */
async function checkWritableFolder(file: string): Promise<void> {
  let folder = path.dirname(path.resolve(file));
  for (;;) {
    const info = await stat(folder).catch(() => undefined);
    if (info !== undefined) {
      if (!info.isDirectory()) {
        throw new EcpruneError('io', `cannot write: '${folder}' is not a folder`, file);
      }
      try {
        await access(folder, constants.W_OK);
      } catch (error) {
        throw isFsError(error) ? ioError(error, file, 'write') : error;
      }
      return;
    }
    const parent = path.dirname(folder);
    if (parent === folder) return; // no ancestor at all: let the write report it
    folder = parent;
  }
}

/** The longest file name (in bytes) of the common file systems (ext4, XFS, btrfs, APFS, NTFS in UTF-16 units). */
const MAX_NAME_BYTES = 255;

/**
 * The temp file for `file`: `.<name>.tmp-<pid>-<random>` in the same folder, the name shortened
 * (by whole characters) so that the temp name fits in `MAX_NAME_BYTES` too.
 */
function tempName(file: string): string {
  const suffix = `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  let name = path.basename(file);
  while (Buffer.byteLength(`.${name}${suffix}`) > MAX_NAME_BYTES) name = name.slice(0, -1);
  return path.join(path.dirname(file), `.${name}${suffix}`);
}

/**
 * Removes the temp files a killed run (SIGKILL, power loss: nothing can catch those) left for
 * `file`: same name pattern, a process id that no longer runs.
 */
async function removeStaleTemps(file: string): Promise<void> {
  const folder = path.dirname(file);
  const prefix = `.${path.basename(file)}`.slice(0, 40);
  const entries = await readdir(folder).catch(() => [] as string[]);
  for (const entry of entries) {
    const match = /\.tmp-(\d+)-[0-9a-f]{8}$/.exec(entry);
    if (match === null || !entry.startsWith(prefix) || isRunning(Number(match[1]))) continue;
    await unlink(path.join(folder, entry)).catch(() => undefined);
  }
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

export async function writeOutputAtomic(
  file: string,
  content: OutputContent,
  options: WriteOptions = {},
): Promise<void> {
  await checkOutputPath(file, options);
  await removeStaleTemps(file);
  const temp = tempName(file);
  installCleanupHandlers();
  pendingTemps.add(temp);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx');
    const target = handle;
    const write = (chunk: Uint8Array | string) => target.writeFile(chunk); // writeFile loops over short writes
    if (typeof content === 'function') await content(write);
    else await write(content);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await moveIntoPlace(temp, file, options.force === true);
    pendingTemps.delete(temp);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    pendingTemps.delete(temp);
    if (isFsError(error) && error.code === 'EEXIST' && !options.force) {
      throw new EcpruneError(
        'usage',
        `already exists (use ${option('force')} to overwrite): another run wrote it meanwhile`,
        file,
      );
    }
    throw isFsError(error) ? ioError(error, file, 'write') : error;
  }
  await syncFolder(path.dirname(file));
}

/**
 * Without `force`, a hard link to the final name, which fails if anything appeared there since
 * the check (two runs writing one output: the second is refused, never silently replaces the
 * first); then the temp name is removed. With `force`, a rename (atomic replace), after checking
 * again that what it replaces is a regular file. File systems without hard links get the rename.
 */
async function moveIntoPlace(temp: string, file: string, force: boolean): Promise<void> {
  if (force) {
    const existing = await lstat(file).catch(() => undefined);
    if (existing !== undefined && !existing.isFile()) {
      throw new EcpruneError(
        'usage',
        `is not a regular file: refusing to replace it, even with ${option('force')}`,
        file,
      );
    }
    return rename(temp, file);
  }
  try {
    await link(temp, file);
  } catch (error) {
    if (!isFsError(error) || !['EPERM', 'ENOTSUP', 'ENOSYS', 'EXDEV'].includes(error.code!)) throw error;
    return rename(temp, file);
  }
  await unlink(temp);
}

/** Same file by identity (device + inode), or by resolved real path where inodes are not reported. */
async function sameFile(a: string, b: string): Promise<boolean> {
  const [statA, statB] = await Promise.all([stat(a).catch(() => undefined), stat(b).catch(() => undefined)]);
  if (!statA || !statB) return false; // a missing file cannot be overwritten
  if (statA.ino !== 0 && statA.dev === statB.dev && statA.ino === statB.ino) return true;
  return (await realpath(a)) === (await realpath(b));
}

/** Makes the rename itself durable; folders cannot be opened for sync on every platform, hence best effort. */
async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, 'r').catch(() => undefined);
  await handle?.sync().catch(() => undefined);
  await handle?.close().catch(() => undefined);
}

/** Temp files being written right now, removed if the process is interrupted. */
const pendingTemps = new Set<string>();
let handlersInstalled = false;

/** Removes the temp files of writes still in flight (synchronous: it runs in exit and signal handlers). */
export function removePendingTempFiles(): string[] {
  const removed: string[] = [];
  for (const temp of pendingTemps) {
    try {
      unlinkSync(temp);
      removed.push(temp);
    } catch {
      // already gone or never created
    }
  }
  pendingTemps.clear();
  return removed;
}

/**
 * Installed on the first write, not on import, so that merely loading the library changes no
 * signal behaviour; commands that will write an output install it when they start, so that an
 * interrupted run exits with the same code whenever the signal comes. On SIGINT/SIGTERM the temp
 * files are removed and the process exits with 128 + signal number (130, 143), as a shell reports
 * a process killed by the signal, unless the program listens for the signal itself (then exiting
 * is its decision).
 */
export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', removePendingTempFiles);
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.on(signal, () => {
      removePendingTempFiles();
      if (process.listenerCount(signal) === 1) {
        // one line, so that the exit code is not the only trace (outputs are renamed into place whole)
        process.stderr.write(`ecprune: interrupted (${signal}); no partial output written\n`);
        process.exit(code);
      }
    });
  }
}
