import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../../src/cli/program.js';

/**
 * Runs the CLI in-process and captures what it prints through console.log / console.error and
 * process.stderr (process.stdout itself is left alone: node:test reports through it).
 */
export async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const { log, error } = console;
  const stderrWrite = process.stderr.write;
  console.log = (...args: unknown[]) => stdout.push(`${args.join(' ')}\n`);
  console.error = (...args: unknown[]) => stderr.push(`${args.join(' ')}\n`);
  process.stderr.write = ((chunk: string) => stderr.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    const code = await runCli(argv);
    return { code, stdout: stdout.join(''), stderr: stderr.join('') };
  } finally {
    Object.assign(console, { log, error });
    process.stderr.write = stderrWrite;
  }
}

export function tempDir(prefix = 'ecprune-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export const FIXTURES = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures');
