/**
 * Per-layer control (src/select/layers.ts, selectMasks' targets): layers by name or index, kept
 * dense or at their own sparsity, the rest ranked as before; thin layers reported. On plain score
 * arrays, on the zoo's residual graph (names as torch.onnx.export wrote them) through the library,
 * and through the CLI with the written file read back.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { EcpruneError } from '../../src/errors.js';
import { readNpy } from '../../src/io/npy.js';
import { loadModel } from '../../src/node/models.js';
import { prune } from '../../src/pipeline/prune.js';
import { layerTargets, MIN_KEPT_PER_NEURON, resolveLayer, thinLayers } from '../../src/select/layers.js';
import { pruneCount, selectMasks } from '../../src/select/select.js';
import { cli, tempDir } from '../cli/run.js';
import { ZOO } from '../helpers/zoo.js';

const pruned = (mask: Uint8Array) => mask.reduce((n, keep) => n + (1 - keep), 0);

/** Every pruned score of `layers` is at most every kept one: one ranking across them. */
function assertOneRanking(scores: Float64Array[], masks: Uint8Array[], layers: number[]): void {
  let maxPruned = Number.NEGATIVE_INFINITY;
  let minKept = Number.POSITIVE_INFINITY;
  for (const l of layers) {
    scores[l].forEach((s, p) => {
      if (masks[l][p]) minKept = Math.min(minKept, s);
      else maxPruned = Math.max(maxPruned, s);
    });
  }
  assert.ok(maxPruned <= minKept, `pruned up to ${maxPruned}, kept from ${minKept}`);
}

describe('selectMasks with per-layer targets', () => {
  const sizes = [60, 40, 20, 10];
  const scores = sizes.map((n, l) =>
    Float64Array.from({ length: n }, (_, p) => Math.sin(7 * p + l) + l * 0.1),
  );
  const targets = [undefined, 0, 0.5, undefined];

  it('global: excluded layer dense, own-target layer at its count, the rest one ranking at the sparsity of their weights', () => {
    const masks = selectMasks(scores, 0.8, 'global', targets);
    assert.equal(pruned(masks[1]), 0, 'excluded');
    assert.equal(pruned(masks[2]), pruneCount(0.5, 20), 'own target');
    assert.equal(pruned(masks[0]) + pruned(masks[3]), pruneCount(0.8, 70), 'the rest');
    assertOneRanking(scores, masks, [0, 3]);
    assertOneRanking(scores, masks, [2]);
  });

  it('layer scope: each free layer at the sparsity on its own', () => {
    const masks = selectMasks(scores, 0.8, 'layer', targets);
    assert.deepEqual(masks.map(pruned), [pruneCount(0.8, 60), 0, 10, pruneCount(0.8, 10)]);
    for (const l of [0, 2, 3]) assertOneRanking(scores, masks, [l]);
  });

  it('no targets: as before', () => {
    assert.deepEqual(
      selectMasks(scores, 0.8, 'global', [undefined, undefined, undefined, undefined]),
      selectMasks(scores, 0.8, 'global'),
    );
  });
});

describe('layer names', () => {
  const names = ['0', '3', '5'];

  it('a name from the file first, then an index', () => {
    assert.equal(resolveLayer(names, '3'), 1, "the layer named '3'");
    assert.equal(resolveLayer(names, '2'), 2, 'index 2');
    assert.equal(resolveLayer(names, 0), 0);
  });

  it('an unknown name: one line listing the layers', () => {
    assert.throws(
      () => resolveLayer(['stem', 'head'], 'fc9'),
      (error: unknown) =>
        error instanceof EcpruneError &&
        error.code === 'usage' &&
        error.message === "no layer 'fc9' in the model (its layers: 0 stem, 1 head)",
    );
  });

  it('a layer named twice, or a sparsity out of range, is a usage error', () => {
    assert.throws(() => layerTargets(names, { exclude: ['5'], layerSparsity: { '2': 0.5 } }), /named twice/);
    assert.throws(() => layerTargets(names, { layerSparsity: { '3': 1 } }), /sparsity must be in \[0, 1\)/);
    assert.equal(layerTargets(names, {}), undefined);
    assert.deepEqual(layerTargets(names, { exclude: [0], layerSparsity: { '5': 0.25 } }), [
      0,
      undefined,
      0.25,
    ]);
  });
});

describe('thin layers', () => {
  /** A keep-mask of `rows` x `cols` keeping the first `perRow[i]` weights of row i. */
  const keeping = (cols: number, perRow: number[]) =>
    Uint8Array.from({ length: perRow.length * cols }, (_, p) =>
      p % cols < perRow[Math.floor(p / cols)] ? 1 : 0,
    );

  it(`fewer than ${MIN_KEPT_PER_NEURON} kept weights per output neuron on average, or a quarter of fewer than ${4 * MIN_KEPT_PER_NEURON} inputs`, () => {
    const layers = [
      { name: 'head', weight: { rows: 2, cols: 128 } },
      { name: 'narrow', weight: { rows: 2, cols: 10 } },
    ];
    // head: 16 per neuron on average is enough, however unevenly; 15.5 is not
    assert.deepEqual(thinLayers(layers, [keeping(128, [32, 0]), keeping(10, [3, 2])]), []);
    assert.deepEqual(thinLayers(layers, [keeping(128, [31, 0]), keeping(10, [3, 2])]), [
      { layer: 0, name: 'head', kept: 31, neurons: 2, threshold: 16, empty: 1 },
    ]);
    // narrow: 10 inputs, so 2.5 per neuron
    assert.deepEqual(thinLayers(layers, [keeping(128, [16, 16]), keeping(10, [2, 2])]), [
      { layer: 1, name: 'narrow', kept: 4, neurons: 2, threshold: 2.5, empty: 0 },
    ]);
  });
});

describe('per-layer control on a graph (the zoo residual model)', () => {
  const file = path.join(ZOO, 'residual', 'model.onnx');
  const calib = path.join(ZOO, 'residual', 'calib.npy');
  const dir = tempDir();
  /** `prune` on the residual model into `dir/out` with these flags. */
  const pruneResidual = (out: string, ...flags: string[]) =>
    cli('prune', file, '--calib', calib, '--quiet', '-o', path.join(dir, out), ...flags);

  it('library: head excluded, blocks.0.fc1 at 0.5, the rest at 0.8 of their weights', async () => {
    const model = await loadModel(file);
    const x = readNpy(readFileSync(calib));
    const rows = x.shape[0];
    const data = inMemoryDataset(
      { rows, cols: x.data.length / rows, data: Float32Array.from(x.data as ArrayLike<number>) },
      undefined,
      'calib',
    );
    const result = await prune(model.graph, data, {
      method: 'ec', // one ranking across the free layers (the default recipe takes magnitude's budgets)
      sparsity: 0.8,
      exclude: ['head'],
      layerSparsity: { 'blocks.0.fc1': 0.5 },
    });
    const names = model.graph.layers.map((layer) => layer.name);
    const counts = result.keepMasks.map(pruned);
    assert.equal(counts[names.indexOf('head')], 0);
    assert.deepEqual(
      result.model.layers[names.indexOf('head')].weight,
      model.graph.layers[names.indexOf('head')].weight,
      'head weights unchanged',
    );
    assert.equal(counts[names.indexOf('blocks.0.fc1')], pruneCount(0.5, 384));
    const rest = names.flatMap((name, l) => (name === 'head' || name === 'blocks.0.fc1' ? [] : [l]));
    const restWeights = rest.reduce((n, l) => n + result.keepMasks[l].length, 0);
    assert.equal(
      rest.reduce((n, l) => n + counts[l], 0),
      pruneCount(0.8, restWeights),
    );
    assertOneRanking(result.importance, result.keepMasks, rest);
  });

  it('CLI: names and indices, the written file has the zeros; an unknown name lists the layers', async () => {
    const out = path.join(dir, 'out.onnx');
    const run = await pruneResidual(
      'out.onnx',
      '--sparsity',
      '0.7',
      '--exclude',
      '5,stem',
      '--layer-sparsity',
      'blocks.1.fc2:0.25',
    );
    assert.equal(run.code, 0, run.stderr);
    const written = await loadModel(out);
    const zeros = written.graph.layers.map((layer) => layer.weight.data.filter((w) => w === 0).length);
    const names = written.graph.layers.map((layer) => layer.name);
    assert.equal(zeros[names.indexOf('head')], 0, 'index 5 is head');
    assert.equal(zeros[names.indexOf('stem')], 0);
    assert.equal(zeros[names.indexOf('blocks.1.fc2')], pruneCount(0.25, 384));
    assert.equal(
      zeros[names.indexOf('blocks.0.fc1')] +
        zeros[names.indexOf('blocks.0.fc2')] +
        zeros[names.indexOf('blocks.1.fc1')],
      pruneCount(0.7, 3 * 384),
    );

    const bad = await pruneResidual('bad.onnx', '--exclude', 'fc9');
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr.trim(),
      "ecprune: no layer 'fc9' in the model (its layers: 0 stem, 1 blocks.0.fc1, 2 blocks.0.fc2, 3 blocks.1.fc1, 4 blocks.1.fc2, 5 head)",
    );
  });

  it('--scope layer at 0.95 warns, naming the thin layers; --exclude head leaves head out of it', async () => {
    const run = await pruneResidual('a.onnx', '--scope', 'layer', '--sparsity', '0.95');
    assert.equal(run.code, 0, run.stderr);
    // head is 4 x 16: 95 % keeps 3 weights for 4 outputs (threshold 16 / 4); stem 16 x 10 keeps 8 for 16
    assert.match(
      run.stderr,
      /^ecprune: warning: layer 5 'head' keeps 3 weights for 4 output neurons \(0\.8 per neuron, fewer than 4; \d+ with none\): keep it denser with --layer-sparsity or --exclude$/m,
    );
    assert.match(run.stderr, /warning: layer 0 'stem' keeps 8 weights/);
    const excluded = await pruneResidual(
      'b.onnx',
      '--scope',
      'layer',
      '--sparsity',
      '0.95',
      '--exclude',
      'head',
    );
    assert.equal(excluded.code, 0, excluded.stderr);
    assert.doesNotMatch(excluded.stderr, /'head'/);
    const mild = await pruneResidual('c.onnx', '--scope', 'layer', '--sparsity', '0.5');
    assert.doesNotMatch(mild.stderr, /warning/);
  });
});
