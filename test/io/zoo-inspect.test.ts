/**
 * `ecprune inspect` on every model of the producer zoo (issue #11: "inspect shows the graph: prefix,
 * the fully-connected layers EC will prune (with their names from the file), head"), against the
 * manifest the producer scripts wrote beside the files (zoo.json): its frozen prefix, its
 * fully-connected layers in graph order with their names in the file, and its head.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { cli } from '../cli/run.js';
import { layerNameInFile, manifest, ZOO } from '../helpers/zoo.js';

interface Inspected {
  prefix: string[];
  head: string[];
  layers: { name: string; shape: [number, number] }[];
}

describe('inspect on the producer zoo: prefix, layers named as in the file, head', () => {
  for (const fixture of manifest.fixtures) {
    it(fixture.name, async () => {
      const run = await cli('inspect', path.join(ZOO, fixture.file), '--json');
      assert.equal(run.code, 0, run.stderr);
      const inspected: Inspected = JSON.parse(run.stdout);
      assert.deepEqual(
        inspected.prefix.slice(0, fixture.prefix.length),
        fixture.prefix,
        `${fixture.name}: prefix ${inspected.prefix}`,
      );
      assert.equal(
        inspected.prefix.length > 0,
        fixture.prefix.length > 0,
        `${fixture.name}: a prefix or none`,
      );
      assert.deepEqual(
        inspected.layers.map((l) => l.name),
        fixture.fcLayers.map((layer) => layerNameInFile(fixture.name, layer)),
        `${fixture.name}: layer names`,
      );
      const head =
        fixture.head === null ? [] : [{ softmax: 'Softmax', logsoftmax: 'LogSoftmax' }[fixture.head]];
      for (const op of head)
        assert.ok(inspected.head.includes(op), `${fixture.name}: head ${inspected.head}`);
      if (fixture.head === null) {
        assert.ok(
          !inspected.head.some((op) => /Softmax/.test(op)),
          `${fixture.name}: no softmax head, inspect says ${inspected.head}`,
        );
      }
    });
  }
});

describe('inspect as text', () => {
  it('layer names and the ops after each layer are printed in full, never cut', async () => {
    const bn = await cli('inspect', path.join(ZOO, 'batchnorm_nobias', 'model.onnx'));
    assert.equal(bn.code, 0, bn.stderr);
    assert.match(bn.stdout, /^ {2}0 +0 +16 x 10 +BatchNormalization +160 /m);
    const residual = await cli('inspect', path.join(ZOO, 'residual', 'model.onnx'));
    assert.match(residual.stdout, /^ {2}0 +stem +16 x 10 +ReduceMean, Sub, Add +160 /m);
    const tfjs = await cli('inspect', path.join(ZOO, 'tfjs_dense_activations_a', 'model.json'));
    assert.match(tfjs.stdout, /^ {2}head: Softmax$/m);
  });
});
