import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { VERSION } from '../src/version.js';

it('the version written into model metadata is the package version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(VERSION, pkg.version);
});

it('the core entry point imports no Node built-ins (it must bundle for browsers)', async () => {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [new URL('../src/core.ts', import.meta.url).pathname],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    logLevel: 'silent',
  });
  assert.equal(result.errors.length, 0);
  assert.ok(result.outputFiles[0].contents.length > 10_000);
});
