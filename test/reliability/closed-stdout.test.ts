/**
 * `ecprune inspect model.onnx | head -1`: the real CLI, its stdout a pipe whose reader has gone
 * before it prints, runs to its end and exits 0, not with Node's EPIPE stack trace.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';

const ROOT = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const MODEL = path.join(ROOT, 'test', 'fixtures', 'zoo', 'residual', 'model.onnx');

describe('a closed stdout', () => {
  it('inspect into a pipe closed before it prints: exit 0, nothing on stderr', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'inspect', MODEL], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // the reader goes away at once: the CLI (seconds to start under tsx) writes into a closed pipe
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(stderr, '', 'no EPIPE trace');
    assert.equal(code, 0, `exit code ${code}`);
  });
});
