/**
 * Ctrl-C in the middle of a real run: the CLI (`node --import tsx src/cli/main.ts prune ...`, with
 * the onnxruntime GEMM as users get it) is interrupted while it streams a calibration set, and must
 * exit 130 leaving neither the output nor a temp file behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRandom } from '../../src/data/random.js';
import { graphFromMlp } from '../../src/graph/mlp-graph.js';
import { writeNpy } from '../../src/io/npy.js';
import { writeOnnx } from '../../src/io/onnx.js';
import type { Mlp } from '../../src/model/mlp.js';

const ROOT = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const dir = mkdtempSync(path.join(tmpdir(), 'ecprune-interrupt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A 256-512-512-10 ReLU network: its statistics over 8,000 samples take seconds. */
function mediumModel(): Mlp {
  const random = createRandom(3);
  const sizes = [256, 512, 512, 10];
  return {
    layers: sizes.slice(1).map((rows, l) => ({
      weight: {
        rows,
        cols: sizes[l],
        data: Float32Array.from({ length: rows * sizes[l] }, () => random.normal() / Math.sqrt(sizes[l])),
      },
      bias: new Float32Array(rows),
      activation: { kind: l === sizes.length - 2 ? 'identity' : 'relu' },
    })),
  };
}

/** Whether process `pid` has `file` open (Linux /proc); undefined where that cannot be seen. */
function hasOpen(pid: number, file: string): boolean | undefined {
  const fds = `/proc/${pid}/fd`;
  if (!existsSync('/proc/self/fd')) return undefined;
  try {
    return readdirSync(fds).some((fd) => {
      try {
        return readlinkSync(path.join(fds, fd)) === file;
      } catch {
        return false;
      }
    });
  } catch {
    return false; // the process is gone
  }
}

describe('interrupting the CLI', () => {
  it('SIGINT while streaming the calibration set: exit 130, no output, no temp file', async () => {
    const model = path.join(dir, 'model.onnx');
    const calib = path.join(dir, 'calib.npy');
    writeFileSync(model, writeOnnx(graphFromMlp(mediumModel()), undefined, {}));
    const random = createRandom(4);
    const samples = 8000;
    writeFileSync(
      calib,
      writeNpy({
        shape: [samples, 256],
        data: Float32Array.from({ length: samples * 256 }, () => random.normal()),
      }),
    );
    const out = path.join(dir, 'out');
    mkdirSync(out);

    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(ROOT, 'src', 'cli', 'main.ts'),
        'prune',
        model,
        '--calib',
        calib,
        '--batch-size',
        '500',
        '-o',
        path.join(out, 'pruned.onnx'),
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );

    // mid-run = while the calibration file is open (it is streamed batch by batch); where open
    // files cannot be seen, a few seconds after the start
    const started = Date.now();
    for (;;) {
      const open = hasOpen(child.pid!, calib);
      if (open === true || (open === undefined && Date.now() - started > 4000)) break;
      if (child.exitCode !== null) break;
      assert.ok(Date.now() - started < 60_000, 'the calibration file was never opened');
      await sleep(20);
    }
    assert.equal(child.exitCode, null, `the run ended before it could be interrupted: ${stderr}`);
    child.kill('SIGINT');
    const { code, signal } = await exited;

    assert.equal(signal, null, 'killed by the signal instead of exiting');
    assert.equal(code, 130, stderr);
    assert.match(stderr, /^ecprune: interrupted \(SIGINT\); no partial output written\n$/m);
    assert.deepEqual(readdirSync(out), [], 'a file was left in the output folder');
    assert.deepEqual(
      readdirSync(dir).sort(),
      ['calib.npy', 'model.onnx', 'out'],
      'a file was left next to the inputs',
    );
  });
});
