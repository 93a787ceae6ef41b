import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import { applyPruning } from '../../src/compensate/apply.js';
import { EcpruneError } from '../../src/errors.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import type { Model } from '../../src/graph/graph.js';
import { graphFromMlp } from '../../src/graph/mlp-graph.js';
import { forward } from '../../src/graph/run.js';
import { formatArch, parseArch } from '../../src/io/arch.js';
import { readNpy } from '../../src/io/npy.js';
import { readNpz, writeNpz } from '../../src/io/npz.js';
import { readNpzModel, writeNpzModel } from '../../src/io/npz-model.js';
import {
  mlpFromStateDict,
  parseSafetensorsHeader,
  readSafetensors,
  stateDictFromMlp,
  writeSafetensors,
} from '../../src/io/safetensors.js';
import { readTfjs, writeTfjsGraph } from '../../src/io/tfjs.js';
import { type Matrix, matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import {
  type LoadedModel,
  loadModel,
  type ModelFormat,
  saveModel,
  sniffFormat,
} from '../../src/node/models.js';

// Written by PyTorch 1.13 / NumPy 1.24 (and TF.js files by hand after the format's documentation):
// test/fixtures/interop/make_interop_fixtures.py
const FIXTURES = new URL('../fixtures/interop/', import.meta.url).pathname;
const ONNX_FIXTURES = new URL('../fixtures/onnx/', import.meta.url).pathname;

interface Fixture {
  readonly name: string;
  readonly file: string;
  readonly format: ModelFormat;
  /** the --arch a weight-only file without ecprune metadata needs */
  readonly arch?: string;
}

const FIXTURE_LIST: Fixture[] = [
  { name: 'torch_relu_f32', file: 'torch_relu_f32.safetensors', format: 'safetensors' },
  { name: 'torch_tanh_f16', file: 'torch_tanh_f16.safetensors', format: 'safetensors', arch: 'tanh' },
  { name: 'torch_layers_bf16', file: 'torch_layers_bf16.safetensors', format: 'safetensors' },
  { name: 'torch_leaky_deep_f32', file: 'torch_leaky_deep_f32.safetensors', format: 'safetensors' },
  { name: 'numpy_elu', file: 'numpy_elu.npz', format: 'npz', arch: 'elu' },
  { name: 'numpy_sigmoid_arch', file: 'numpy_sigmoid_arch.npz', format: 'npz' },
  { name: 'tfjs_dense', file: 'tfjs_dense/model.json', format: 'tfjs' },
  { name: 'tfjs_quantized', file: 'tfjs_quantized/model.json', format: 'tfjs' },
  { name: 'tfjs_activation_layers', file: 'tfjs_activation_layers/model.json', format: 'tfjs' },
];

const fixturePath = (fixture: Fixture) => path.join(FIXTURES, fixture.file);
const EXTENSION: Record<ModelFormat, string> = {
  onnx: '.onnx',
  tfjs: '.json',
  safetensors: '.safetensors',
  pytorch: '.pt',
  npz: '.npz',
};

const tmp = mkdtempSync(path.join(tmpdir(), 'ecprune-interop-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
/** A fresh folder for one test's outputs. */
const scratch = () => path.join(tmp, `case${counter++}`);

/** The reference batch (flattened to rows) and the producer's outputs. */
function reference(name: string): { x: Matrix; y: Float32Array } {
  const input = readNpy(readFileSync(path.join(FIXTURES, `${name}.input.npy`)));
  const output = readNpy(readFileSync(path.join(FIXTURES, `${name}.output.npy`)));
  const rows = input.shape[0];
  return {
    x: matrix(rows, input.data.length / rows, Float32Array.from(input.data)),
    y: Float32Array.from(output.data),
  };
}

async function outputs(model: Model, x: Matrix): Promise<Float32Array> {
  return (await forward(model, x, tsGemm)).data;
}

/** A deterministic batch of `rows` inputs for `mlp`. */
function batch(mlp: Mlp, rows = 6): Matrix {
  const cols = mlp.layers[0].weight.cols;
  return matrix(
    rows,
    cols,
    Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(1.7 * i + 0.3) * 1.5),
  );
}

/** |actual - expected| <= tol * (1 + |expected|) element by element. */
function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  tol: number,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    assert.ok(error <= tol * (1 + Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Half of each layer's weights (the smallest by magnitude) zeroed, and every bias shifted (a compensation stand-in). */
function halfPruned(mlp: Mlp): Mlp {
  const masks = mlp.layers.map((layer) => {
    const w = layer.weight.data;
    const order = [...w.keys()].sort((a, b) => Math.abs(w[a]) - Math.abs(w[b]));
    const keep = new Uint8Array(w.length).fill(1);
    for (const i of order.slice(0, Math.floor(w.length / 2))) keep[i] = 0;
    return keep;
  });
  const shifts = mlp.layers.map((layer) =>
    Float64Array.from(layer.weight.data, (w, i) => 0.5 * w + 0.01 * (i % 3)),
  );
  return applyPruning(mlp, masks, shifts);
}

const activations = (mlp: Mlp) => mlp.layers.map((layer) => JSON.stringify(layer.activation));

/** An assertion for assert.rejects / assert.throws: an EcpruneError whose message names `file`. */
function namesFile(file: string, code?: string) {
  return (error: unknown) => {
    assert.ok(
      error instanceof EcpruneError,
      `expected EcpruneError, got ${(error as Error)?.stack ?? error}`,
    );
    assert.ok(error.message.includes(file), `'${error.message}' should name ${file}`);
    if (code !== undefined) assert.equal(error.code, code, error.message);
    return true;
  };
}

/** Runs the CLI in-process with console output swallowed; returns the exit code. */
async function cli(argv: string[]): Promise<number> {
  const { log, error } = console;
  const messages: string[] = [];
  console.log = () => undefined;
  console.error = (text: string) => messages.push(text);
  try {
    const code = await runCli(argv);
    if (code !== 0) console.warn(messages.join('\n'));
    return code;
  } finally {
    console.log = log;
    console.error = error;
  }
}

describe('interop fixtures', () => {
  for (const fixture of FIXTURE_LIST) {
    it(`${fixture.name} (${fixture.format}) matches the producer's outputs`, async () => {
      const model = await loadModel(fixturePath(fixture), { arch: fixture.arch });
      assert.equal(model.format, fixture.format);
      const { x, y } = reference(fixture.name);
      // quantised and half-precision fixtures: the reference ran on the dequantised / rounded weights
      assertClose(await outputs(model.mlp!, x), y, fixture.name, 1e-5);
    });
  }

  it('reads the layer structure each producer stated', async () => {
    const load = async (name: string, arch?: string) =>
      (await loadModel(fixturePath(FIXTURE_LIST.find((f) => f.name === name)!), { arch })).mlp!;
    const describeMlp = (mlp: Mlp) =>
      mlp.layers.map((l) => `${l.weight.rows}x${l.weight.cols} ${l.activation.kind}`).join(', ');
    assert.equal(describeMlp(await load('tfjs_dense')), '8x6 relu, 5x8 softplus, 3x5 identity');
    assert.deepEqual(activations(await load('tfjs_activation_layers')), [
      '{"kind":"tanh"}',
      '{"kind":"leaky_relu","alpha":0.2}',
      '{"kind":"elu","alpha":0.5}',
      '{"kind":"relu"}',
      '{"kind":"identity"}',
    ]);
    assert.equal(
      describeMlp(await load('torch_leaky_deep_f32')),
      '5x6 leaky_relu, 5x5 leaky_relu, 4x5 leaky_relu, 4x4 leaky_relu, 4x4 leaky_relu, 3x4 identity',
    );
    assert.equal(describeMlp(await load('numpy_sigmoid_arch')), '5x6 sigmoid, 2x5 sigmoid');
    // bias=False in PyTorch: zeros
    assert.ok((await load('torch_layers_bf16')).layers[1].bias.every((b) => b === 0));
  });

  it('--arch overrides the stored architecture and is checked against the weights', async () => {
    const file = path.join(FIXTURES, 'torch_relu_f32.safetensors');
    const tanh = await loadModel(file, { arch: '6,16,8,3:tanh' });
    assert.deepEqual(activations(tanh.mlp!), ['{"kind":"tanh"}', '{"kind":"tanh"}', '{"kind":"identity"}']);
    await assert.rejects(loadModel(file, { arch: '6,16,9,3:relu' }), namesFile(file, 'input'));
    const bare = path.join(FIXTURES, 'torch_tanh_f16.safetensors');
    await assert.rejects(
      loadModel(bare),
      (e) => namesFile(bare, 'usage')(e) && /the `arch` option/.test((e as Error).message),
    );
    const onnx = path.join(ONNX_FIXTURES, 'mlp_relu_gemm.onnx');
    await assert.rejects(loadModel(onnx, { arch: 'relu' }), namesFile(onnx, 'usage'));
  });
});

describe('round trip: read → prune → write → read', () => {
  for (const fixture of FIXTURE_LIST) {
    it(`${fixture.name} keeps the pruned values and its names`, async () => {
      const model = await loadModel(fixturePath(fixture), { arch: fixture.arch });
      const pruned = halfPruned(model.mlp!);
      const folder = scratch();
      const out = path.join(
        folder,
        fixture.format === 'tfjs' ? 'model.json' : `pruned${EXTENSION[fixture.format]}`,
      );
      await saveModel(out, pruned, { like: model, metadata: { ecprune_method: 'test' } });
      const again = await loadModel(out); // no --arch: ecprune writes the architecture into the file
      assert.equal(again.format, fixture.format);
      assert.deepEqual(activations(again.mlp!), activations(pruned));
      const x = batch(pruned);
      assertClose(await outputs(again.mlp!, x), await outputs(pruned, x), fixture.name, 1e-6);
      assertSameNames(model, again, out);
    });
  }

  it('keeps the dense model when nothing changed (byte-identical values)', async () => {
    const fixture = FIXTURE_LIST[0];
    const model = await loadModel(fixturePath(fixture));
    const out = path.join(scratch(), 'same.safetensors');
    await saveModel(out, model.mlp!, { like: model });
    const a = readSafetensors(readFileSync(fixturePath(fixture)));
    const b = readSafetensors(readFileSync(out));
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    for (const [name, tensor] of a) assert.deepEqual(b.get(name)!.data, tensor.data, name);
  });

  it('TF.js output next to another model.json gets its own shard; inputs are never overwritten', async () => {
    const folder = scratch();
    cpSync(path.join(FIXTURES, 'tfjs_dense'), folder, { recursive: true });
    const model = await loadModel(path.join(folder, 'model.json'));
    await saveModel(path.join(folder, 'pruned.json'), halfPruned(model.mlp!), { like: model });
    const json = JSON.parse(readFileSync(path.join(folder, 'pruned.json'), 'utf8'));
    assert.deepEqual(json.weightsManifest[0].paths, ['pruned.weights.bin']);
    assert.deepEqual(
      readFileSync(path.join(folder, 'group1-shard1of1.bin')),
      readFileSync(path.join(FIXTURES, 'tfjs_dense/group1-shard1of1.bin')),
    );
    const input = path.join(folder, 'model.json');
    await assert.rejects(
      saveModel(input, model.mlp!, { like: model, force: true }),
      namesFile(input, 'usage'),
    );
  });
});

/** The names a format keeps: state_dict keys, TF.js layer classes/names and weight names, .npz members. */
function assertSameNames(before: LoadedModel, after: LoadedModel, out: string): void {
  if (before.format === 'safetensors') {
    const keysBefore = before.safetensors!.keys;
    const keysAfter = after.safetensors!.keys;
    assert.deepEqual(
      keysAfter.map((k) => k.weight),
      keysBefore.map((k) => k.weight),
    );
    // a bias=False layer whose bias the compensation moved gets '<module>.bias'
    assert.deepEqual(
      keysAfter.map((k) => k.bias),
      keysBefore.map((k) => k.bias ?? k.weight.replace(/weight$/, 'bias')),
    );
    for (const [key, value] of Object.entries(before.safetensors!.metadata)) {
      if (key !== 'ecprune_arch') assert.equal(after.safetensors!.metadata[key], value, key);
    }
    assert.equal(after.safetensors!.metadata.ecprune_method, 'test');
  } else if (before.format === 'tfjs') {
    const summary = (json: Record<string, unknown>) => {
      const topology = json.modelTopology as Record<string, Record<string, Record<string, unknown>>>;
      const layers = (topology.model_config ?? topology).config.layers as {
        class_name: string;
        config: { name: string };
      }[];
      return layers.map((layer) => `${layer.class_name}:${layer.config.name}`);
    };
    const original = JSON.parse(readFileSync(before.file, 'utf8'));
    const written = JSON.parse(readFileSync(out, 'utf8'));
    assert.deepEqual(summary(written), summary(original));
    assert.deepEqual(
      written.weightsManifest[0].weights.map((w: { name: string }) => w.name),
      original.weightsManifest.flatMap((g: { weights: { name: string }[] }) => g.weights.map((w) => w.name)),
    );
    assert.equal(written.userDefinedMetadata.ecprune_method, 'test');
    if (original.userDefinedMetadata)
      assert.equal(written.userDefinedMetadata.origin, original.userDefinedMetadata.origin);
  } else {
    const names = [...readNpz(readFileSync(out)).keys()].sort();
    const layers = before.mlp!.layers.length;
    assert.deepEqual(
      names,
      [...Array.from({ length: layers }, (_, l) => [`W${l}`, `b${l}`]).flat(), 'arch'].sort(),
    );
  }
}

describe('ecprune convert', () => {
  /** One source per format; the ONNX one has every activation ecprune knows. */
  const SOURCES: { format: ModelFormat; file: string; arch?: string }[] = [
    { format: 'onnx', file: path.join(ONNX_FIXTURES, 'mlp_activations.onnx') },
    { format: 'tfjs', file: path.join(FIXTURES, 'tfjs_activation_layers/model.json') },
    { format: 'safetensors', file: path.join(FIXTURES, 'torch_layers_bf16.safetensors') },
    { format: 'pytorch', file: path.join(FIXTURES, '..', 'torch', 'relu_f32.pt'), arch: '6,8,8,3:relu' },
    { format: 'npz', file: path.join(FIXTURES, 'numpy_elu.npz'), arch: '6,9,7,3:elu' },
  ];
  for (const source of SOURCES) {
    for (const target of SOURCES) {
      it(`${source.format} → ${target.format} preserves the outputs`, async () => {
        const out = path.join(scratch(), `converted${EXTENSION[target.format]}`);
        const arch = source.arch ? ['--arch', source.arch] : [];
        assert.equal(await cli(['convert', source.file, '-o', out, ...arch]), 0);
        const original = await loadModel(source.file, { arch: source.arch });
        const converted = await loadModel(out);
        assert.equal(converted.format, target.format);
        // TF.js has no ELU with alpha 0.5 (the ONNX source's): it is written as elu and relu layers
        // (the same function, no longer a chain)
        if (source.format !== 'onnx' || target.format !== 'tfjs')
          assert.deepEqual(activations(converted.mlp!), activations(original.mlp!));
        const x = batch(original.mlp!);
        assertClose(
          await outputs(converted.graph, x),
          await outputs(original.mlp!, x),
          `${source.format}→${target.format}`,
          1e-6,
        );
      });
    }
  }

  it('refuses bad usage with exit code 2 and writes nothing', async () => {
    const folder = scratch();
    const npz = path.join(FIXTURES, 'numpy_elu.npz');
    assert.equal(await cli(['convert', npz, '-o', path.join(folder, 'a.onnx')]), 2); // needs --arch
    assert.equal(await cli(['convert', npz, '--arch', 'relu:x', '-o', path.join(folder, 'a.onnx')]), 2);
    assert.equal(await cli(['convert', npz, '--arch', 'elu', '-o', path.join(folder, 'a.h5')]), 2);
    assert.ok(!existsSync(path.join(folder, 'a.onnx')) && !existsSync(path.join(folder, 'a.h5')));
    const out = path.join(folder, 'b.onnx');
    assert.equal(await cli(['convert', npz, '--arch', 'elu', '-o', out]), 0);
    assert.equal(await cli(['convert', npz, '--arch', 'elu', '-o', out]), 2); // exists
    assert.equal(await cli(['convert', npz, '--arch', 'elu', '-o', out, '--force']), 0);
  });
});

describe('corrupt and truncated files', () => {
  /** Writes `bytes` as `name` in a fresh folder and expects loadModel to throw an EcpruneError naming it. */
  async function rejects(name: string, bytes: Uint8Array, arch?: string): Promise<void> {
    const file = path.join(scratch(), name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, bytes);
    await assert.rejects(loadModel(file, { arch }), namesFile(file));
  }

  const cuts = (length: number) => [0, 1, 4, 8, 9, 16, 40, Math.floor(length / 2), length - 5, length - 1];

  for (const [name, arch] of [
    ['torch_relu_f32.safetensors', undefined],
    ['numpy_elu.npz', 'elu'],
    ['numpy_sigmoid_arch.npz', undefined],
  ] as const) {
    it(`${name}: every truncation and flipped bytes throw EcpruneError naming the file`, async () => {
      const bytes = readFileSync(path.join(FIXTURES, name));
      for (const cut of cuts(bytes.length))
        await rejects(`cut${cut}${path.extname(name)}`, bytes.subarray(0, cut), arch);
      const flipped = new Uint8Array(bytes);
      for (let i = 20; i < 60; i++) flipped[i] ^= 0x5a;
      await rejects(`flipped${path.extname(name)}`, flipped, arch);
    });
  }

  it('ONNX: truncations throw EcpruneError naming the file', async () => {
    const bytes = readFileSync(path.join(ONNX_FIXTURES, 'mlp_relu_gemm.onnx'));
    for (const cut of cuts(bytes.length)) await rejects(`cut${cut}.onnx`, bytes.subarray(0, cut));
  });

  it('TF.js: a cut model.json, a cut, missing or absolute shard, a broken manifest', async () => {
    const source = path.join(FIXTURES, 'tfjs_quantized');
    const text = readFileSync(path.join(source, 'model.json'));
    for (const cut of [1, 100, text.length - 2]) await rejects(`cut${cut}/model.json`, text.subarray(0, cut));
    const json = JSON.parse(text.toString());
    const variant = async (label: string, edit: (copy: typeof json, folder: string) => void) => {
      const folder = scratch();
      cpSync(source, folder, { recursive: true });
      const copy = structuredClone(json);
      edit(copy, folder);
      const file = path.join(folder, 'model.json');
      writeFileSync(file, JSON.stringify(copy));
      await assert.rejects(loadModel(file), (error) => {
        assert.ok(error instanceof EcpruneError, `${label}: ${error}`);
        assert.ok(
          error.message.includes(folder),
          `${label}: '${error.message}' should name a file in ${folder}`,
        );
        return true;
      });
    };
    await variant('cut shard', (_, folder) => {
      const shard = path.join(folder, 'group1-shard2of2.bin');
      writeFileSync(shard, readFileSync(shard).subarray(0, 50));
    });
    await variant('missing shard', (_, folder) => rmSync(path.join(folder, 'group1-shard1of2.bin')));
    await variant('absolute shard', (copy) => (copy.weightsManifest[0].paths[0] = '/etc/hostname'));
    await variant('no manifest', (copy) => delete copy.weightsManifest);
    await variant('no topology', (copy) => (copy.modelTopology = 3));
    await variant('missing kernel', (copy) => (copy.weightsManifest[0].weights[0].name = 'other/kernel'));
    await variant('wrong kernel shape', (copy) => (copy.weightsManifest[0].weights[0].shape = [5, 8]));
    await variant('functional', (copy) => (copy.modelTopology.model_config.class_name = 'Functional'));
    await variant('graph model', (copy) => (copy.modelTopology = { node: [] }));
    await variant('no Flatten', (copy) => copy.modelTopology.model_config.config.layers.splice(1, 1));
    await variant('bad quantization', (copy) => delete copy.weightsManifest[0].weights[0].quantization.scale);
  });

  it('safetensors headers that lie are refused before anything is allocated', () => {
    const encode = (header: object, dataBytes: number, declared?: bigint) => {
      const text = new TextEncoder().encode(JSON.stringify(header));
      const out = new Uint8Array(8 + text.length + dataBytes);
      new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(text.length), true);
      out.set(text, 8);
      return out;
    };
    const entry = (begin: number, end: number, shape = [(end - begin) / 4]) => ({
      dtype: 'F32',
      shape,
      data_offsets: [begin, end],
    });
    const cases: [string, Uint8Array, RegExp][] = [
      ['huge header', encode({}, 0, 2n ** 62n), /header claims/],
      ['header past the end', encode({}, 0, 1000n), /header claims/],
      ['offsets past the end', encode({ a: entry(0, 4000) }, 16), /outside/],
      ['overlap', encode({ a: entry(0, 8), b: entry(4, 12) }, 12), /overlaps/],
      ['gap', encode({ a: entry(0, 4), b: entry(8, 12) }, 12), /gap/],
      ['uncovered tail', encode({ a: entry(0, 4) }, 12), /cover 4 of the 12/],
      ['shape vs bytes', encode({ a: entry(0, 8, [3]) }, 8), /needs 12 bytes/],
      ['dtype', encode({ a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, 8), /I64/],
      ['not JSON', new Uint8Array([3, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7b, 0x7b]), /JSON/],
    ];
    for (const [label, bytes, message] of cases) {
      assert.throws(
        () => readSafetensors(bytes, 'x.safetensors'),
        (error) => {
          assert.ok(error instanceof EcpruneError, label);
          assert.match(error.message, /^x\.safetensors/, label);
          assert.match(error.message, message, label);
          return true;
        },
      );
    }
  });
});

describe('format pieces', () => {
  it('parses and formats architecture strings', () => {
    assert.deepEqual(parseArch('784,300,100,10:relu'), {
      sizes: [784, 300, 100, 10],
      activation: { kind: 'relu' },
    });
    assert.deepEqual(parseArch('leaky_relu:0.1'), {
      sizes: undefined,
      activation: { kind: 'leaky_relu', alpha: 0.1 },
    });
    assert.deepEqual(parseArch('6,4,1:relu/sigmoid').lastActivation, { kind: 'sigmoid' });
    assert.equal(parseArch('6,4,4,2:relu,tanh,identity').activations?.length, 3);
    for (const bad of [
      '',
      '784,10',
      '784,0,10:relu',
      'swish',
      'relu:x',
      '6,4,2:relu,tanh,relu',
      'relu,tanh/sigmoid',
      'a/b/c',
    ]) {
      assert.throws(() => parseArch(bad), EcpruneError, bad);
    }
    const mlp = (acts: string[]) => ({
      layers: acts.map((a, l) => ({
        weight: matrix(2, l === 0 ? 3 : 2),
        bias: new Float32Array(2),
        activation: parseArch(a).activation,
      })),
    });
    assert.equal(formatArch(mlp(['relu', 'relu', 'identity'])), '3,2,2,2:relu');
    assert.equal(formatArch(mlp(['leaky_relu:0.1', 'sigmoid'])), '3,2,2:leaky_relu:0.1/sigmoid');
    assert.equal(formatArch(mlp(['sigmoid'])), '3,2:identity/sigmoid');
    assert.equal(formatArch(mlp(['relu', 'tanh', 'identity'])), '3,2,2,2:relu,tanh,identity');
    for (const acts of [['sigmoid'], ['relu', 'tanh', 'identity'], ['elu:0.5', 'elu:0.5', 'gelu']]) {
      const arch = parseArch(formatArch(mlp(acts)));
      const again = mlpFromStateDict(stateDictFromMlp(mlp(acts)), arch).mlp;
      assert.deepEqual(activations(again), activations(mlp(acts)), acts.join());
    }
  });

  it('sniffs the format from the content', () => {
    const safetensors = writeSafetensors(
      new Map([['0.weight', { shape: [1, 1], data: new Float32Array([1]) }]]),
    );
    assert.equal(sniffFormat(safetensors), 'safetensors');
    assert.equal(
      sniffFormat(
        writeNpzModel({
          layers: [{ weight: matrix(1, 1), bias: new Float32Array(1), activation: { kind: 'identity' } }],
        }),
      ),
      'npz',
    );
    assert.equal(sniffFormat(new TextEncoder().encode('  \n{"modelTopology": {}}')), 'tfjs');
    assert.equal(sniffFormat(readFileSync(path.join(ONNX_FIXTURES, 'mlp_relu_gemm.onnx'))), 'onnx');
    assert.equal(sniffFormat(new Uint8Array([1, 2, 3])), undefined);
  });

  it('safetensors: F64 input and output with metadata, key names kept', () => {
    const header = JSON.stringify({
      __metadata__: { ecprune_arch: '2,1:identity' },
      'fc.weight': { dtype: 'F64', shape: [1, 2], data_offsets: [0, 16] },
      'fc.bias': { dtype: 'F64', shape: [1], data_offsets: [16, 24] },
    });
    const text = new TextEncoder().encode(header);
    const bytes = new Uint8Array(8 + text.length + 24);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(text.length), true);
    bytes.set(text, 8);
    for (const [i, v] of [0.5, -2, 0.25].entries()) view.setFloat64(8 + text.length + 8 * i, v, true);
    const tensors = readSafetensors(bytes);
    assert.deepEqual(tensors.get('fc.weight'), {
      dtype: 'F64',
      shape: [1, 2],
      data: new Float64Array([0.5, -2]),
    });
    const { mlp, keys } = mlpFromStateDict(
      tensors,
      parseArch(parseSafetensorsHeader(bytes).metadata.ecprune_arch),
    );
    const written = writeSafetensors(stateDictFromMlp(mlp, keys), { note: 'ü' });
    assert.equal(new DataView(written.buffer).getBigUint64(0, true) % 8n, 0n); // data 8-byte aligned
    assert.deepEqual(parseSafetensorsHeader(written).metadata, { note: 'ü' });
    assert.deepEqual([...readSafetensors(written).keys()], ['fc.weight', 'fc.bias']);
    // the F64 bytes are written back as they were
    assert.deepEqual(written.subarray(written.length - 24), bytes.subarray(bytes.length - 24));
  });

  it('.npz: W stored n_in x n_out gets a hint; members outside W/b/arch are refused', () => {
    const keras = writeNpz({
      W0: { shape: [6, 4], data: new Float32Array(24) },
      W1: { shape: [4, 2], data: new Float32Array(8) },
    });
    assert.throws(() => readNpzModel(keras, parseArch('relu'), 'k.npz'), /n_out x n_in/);
    const extra = writeNpz({
      W0: { shape: [2, 3], data: new Float32Array(6) },
      mean: { shape: [3], data: new Float32Array(3) },
    });
    assert.throws(() => readNpzModel(extra, parseArch('relu'), 'e.npz'), /unexpected array 'mean'/);
  });

  it('TF.js: a fresh write reads back as the same function, in TF.js layer forms for every activation', async () => {
    const acts = ['relu', 'leaky_relu:0.3', 'elu:0.5', 'elu', 'gelu', 'identity'];
    const mlp: Mlp = {
      layers: acts.map((a, l) => ({
        weight: matrix(
          3,
          l === 0 ? 4 : 3,
          Float32Array.from({ length: l === 0 ? 12 : 9 }, (_, i) => i / 7 - 0.5),
        ),
        bias: new Float32Array(3).fill(0.1 * l),
        activation: parseArch(a).activation,
      })),
    };
    const { modelJson, shards } = await writeTfjsGraph(graphFromMlp(mlp));
    const json = JSON.parse(modelJson);
    const classes = json.modelTopology.config.layers.map((layer: { class_name: string }) => layer.class_name);
    // elu with alpha 0.5 is 0.5 elu(x) + 0.5 relu(x): tfjs-layers' ELU layer takes only alpha 1
    assert.deepEqual(classes, [
      'InputLayer',
      'Dense',
      'Dense',
      'LeakyReLU',
      'Dense',
      'Activation',
      'Rescaling',
      'Activation',
      'Rescaling',
      'Add',
      'Dense',
      'Dense',
      'Dense',
    ]);
    const again = readTfjs(modelJson, (p) => shards.get(p)!).graph;
    assert.deepEqual(
      again.layers.map((l) => l.weight.data),
      mlp.layers.map((l) => l.weight.data),
    );
    const x: Matrix = { rows: 5, cols: 4, data: Float32Array.from({ length: 20 }, (_, i) => i / 3 - 3) };
    const [ours, back] = [await forward(mlp, x, tsGemm), await forward(again, x, tsGemm)];
    for (let i = 0; i < ours.data.length; i++)
      assert.ok(Math.abs(back.data[i] - ours.data[i]) <= 1e-6 * (1 + Math.abs(ours.data[i])), `output ${i}`);
  });
});
