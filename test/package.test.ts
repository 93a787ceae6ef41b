import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { VERSION } from '../src/version.js';

it('the version written into model metadata is the package version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(VERSION, pkg.version);
});

// the core entry point and the demo page (which adds onnxruntime-web, vega and the TF.js reader)
for (const entry of ['src/core.ts', 'web/app.ts']) {
  it(`${entry} bundles for browsers with no Node built-in imported`, async () => {
    const { bundleForBrowser, nodeBuiltinImports } = await import('../scripts/build-web.js');
    const result = await bundleForBrowser(new URL(`../${entry}`, import.meta.url).pathname, {
      minify: false,
    });
    assert.equal(result.errors.length, 0);
    assert.deepEqual(nodeBuiltinImports(result.metafile), []);
    assert.ok(result.outputFiles![0].contents.length > 10_000);
  });
}

it('the bundle check finds Node built-ins in a metafile, with or without the node: prefix', async () => {
  const { nodeBuiltinImports } = await import('../scripts/build-web.js');
  const imports = ['node:fs', 'path', './local.js', 'onnx-proto'].map((path) => ({
    path,
    kind: 'import-statement' as const,
  }));
  assert.deepEqual(nodeBuiltinImports({ inputs: { 'a.ts': { bytes: 1, imports } }, outputs: {} }), [
    'a.ts -> node:fs',
    'a.ts -> path',
  ]);
});
