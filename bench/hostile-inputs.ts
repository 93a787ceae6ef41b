/**
 * Time and peak memory of refusing hostile inputs (docs/RELIABILITY.md, "Cost bounded by input
 * size"): each case is built in memory and parsed in a fresh child process, which prints its
 * parse time and its peak resident memory; an empty case gives the process's own baseline.
 *
 *   npx tsx bench/hostile-inputs.ts
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import { parseNpyHeader } from '../src/io/npy.js';
import { readNpz } from '../src/io/npz.js';
import { parseSafetensorsHeader } from '../src/io/safetensors.js';
import { loadModel } from '../src/node/models.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures');

function npyV2(dict: string): Uint8Array {
  const header = new Uint8Array(12 + dict.length);
  header.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]);
  new DataView(header.buffer).setUint32(8, dict.length, true);
  header.set(new TextEncoder().encode(dict), 12);
  return header;
}
function safetensors(header: string): Uint8Array {
  const text = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + text.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  return out;
}
const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

/** name -> [what, write the case's files into a folder and return the file to parse, the parser] */
const CASES: Record<string, [string, (dir: string) => string, (file: string) => Promise<unknown>]> = {
  baseline: ['nothing parsed (the process itself)', (dir) => path.join(dir, 'none'), async () => undefined],
  'npy-header': [
    '.npy, 1 MB header of unclosed shapes',
    (dir) =>
      write(dir, 'h.npy', npyV2(`{'descr': '<f4', 'fortran_order': False, ${"'shape': (".repeat(104_000)}`)),
    async (file) => parseNpyHeader(readFileSync(file), file),
  ],
  'npz-header': [
    '.npz, 30 members each a deflated 1 MB hostile .npy header',
    (dir) => {
      const member = npyV2(`{'descr': '<f4', 'fortran_order': False, ${"'shape': (".repeat(104_000)}`);
      const members = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`m${i}.npy`, member]));
      return write(dir, 'h.npz', zipSync(members, { level: 9 }));
    },
    async (file) => readNpz(readFileSync(file), file),
  ],
  'safetensors-tensors': [
    'safetensors, 100,000 empty tensors (the most accepted)',
    (dir) =>
      write(
        dir,
        'many.safetensors',
        safetensors(
          `{${Array.from({ length: 100_000 }, (_, i) => `"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`).join(',')}}`,
        ),
      ),
    async (file) => parseSafetensorsHeader(readFileSync(file), file),
  ],
  'safetensors-deep': [
    'safetensors, a shape nested 1,000,000 deep',
    (dir) =>
      write(
        dir,
        'deep.safetensors',
        safetensors(`{"a":{"dtype":"F32","shape":${deep(1_000_000)},"data_offsets":[0,0]}}`),
      ),
    async (file) => parseSafetensorsHeader(readFileSync(file), file),
  ],
  'tfjs-repeated': [
    'TF.js, one shard listed 100,000 times',
    (dir) => tfjs(dir, Array(100_000).fill('group1-shard1of1.bin')),
    (file) => loadModel(file),
  ],
  'tfjs-dotdot': [
    'TF.js, a shard path out of the folder',
    (dir) => tfjs(dir, ['../../../../dev/zero']),
    (file) => loadModel(file),
  ],
};

function write(dir: string, name: string, bytes: Uint8Array): string {
  writeFileSync(path.join(dir, name), bytes);
  return path.join(dir, name);
}
function tfjs(dir: string, paths: string[]): string {
  const source = path.join(FIXTURES, 'interop', 'tfjs_dense');
  const json = JSON.parse(readFileSync(path.join(source, 'model.json'), 'utf8'));
  mkdirSync(path.join(dir, 'm'));
  writeFileSync(
    path.join(dir, 'm', 'group1-shard1of1.bin'),
    readFileSync(path.join(source, 'group1-shard1of1.bin')),
  );
  return write(
    dir,
    'm/model.json',
    new TextEncoder().encode(
      JSON.stringify({ ...json, weightsManifest: [{ ...json.weightsManifest[0], paths }] }),
    ),
  );
}

const [, , only] = process.argv;
if (only !== undefined) {
  // the child: parse one case and print {ms, error, maxRssMiB}
  const [, , parse] = CASES[only];
  const start = performance.now();
  let error = '';
  try {
    await parse(process.argv[3]);
  } catch (caught) {
    error = (caught as Error).message;
  }
  const ms = performance.now() - start;
  console.log(
    JSON.stringify({
      ms,
      error: error.slice(0, 120),
      errorLength: error.length,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    }),
  );
} else {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ecprune-hostile-'));
  console.log('| input | size | time to refuse | peak memory (process) | message length |');
  console.log('|---|---|---|---|---|');
  try {
    for (const [name, [what, make]] of Object.entries(CASES)) {
      const folder = path.join(dir, name);
      mkdirSync(folder);
      const file = make(folder);
      const size = name === 'baseline' ? 0 : readFileSync(file).length;
      const child = spawnSync(
        process.execPath,
        ['--import', 'tsx', fileURLToPath(import.meta.url), name, file],
        { encoding: 'utf8' },
      );
      const result = JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}');
      console.log(
        `| ${what} | ${(size / 1e6).toFixed(2)} MB | ${result.ms.toFixed(0)} ms | ${result.maxRssMiB.toFixed(0)} MiB | ${result.errorLength} |`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
