/**
 * Good and bad input files for the reliability tests, built in a temp folder from the committed
 * fixtures: a model, calibration data and labels that work, and one file per way of being wrong.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import onnxProto from 'onnx-proto';
import { createRandom } from '../../src/data/random.js';
import { writeNpy } from '../../src/io/npy.js';
import { writeNpz } from '../../src/io/npz.js';
import { FIXTURES } from '../cli/run.js';

const { onnx } = onnxProto;

/** The model every command is run with: 12 inputs, 8 layers, 3 outputs (see test/fixtures/onnx). */
export const MODEL_FIXTURE = path.join(FIXTURES, 'onnx', 'mlp_activations.onnx');
export const FEATURES = 12;
export const OUTPUTS = 3;
export const SAMPLES = 64;

/** One ONNX edit: decode the fixture, change the graph, encode. */
function editOnnx(edit: (model: ReturnType<typeof onnx.ModelProto.decode>) => void): Uint8Array {
  const model = onnx.ModelProto.decode(readFileSync(MODEL_FIXTURE));
  edit(model);
  return onnx.ModelProto.encode(model).finish();
}

/** The header of a .npy file, padded to 64 bytes as NumPy writes it, for hand-made headers. */
export function npyHeader(dict: string): Uint8Array {
  const length = Math.ceil((10 + dict.length + 1) / 64) * 64 - 10;
  const out = new Uint8Array(10 + length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, length, true);
  out.set(new TextEncoder().encode(`${dict.padEnd(length - 1, ' ')}\n`), 10);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A JSON array nested 100,000 deep (JSON.parse copes; any recursive walk of it overflows the stack). */
const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;

/** A safetensors file: the header text, then `dataBytes` zero bytes. */
function safetensors(header: string, dataBytes: number): Uint8Array {
  const text = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + text.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  return out;
}

/** A copy of a TF.js fixture (`source` under interop/) in `dir/name`, its model.json edited. */
function tfjsEdited(dir: string, name: string, source: string, edit: (json: string) => string): string {
  const folder = path.join(dir, name);
  mkdirSync(folder, { recursive: true });
  const from = path.join(FIXTURES, 'interop', source);
  copyFileSync(path.join(from, 'group1-shard1of1.bin'), path.join(folder, 'group1-shard1of1.bin'));
  writeFileSync(path.join(folder, 'model.json'), edit(readFileSync(path.join(from, 'model.json'), 'utf8')));
  return path.join(folder, 'model.json');
}

/** Writes every input file into `dir`; returns their paths by name. */
export function writeInputs(dir: string) {
  mkdirSync(dir, { recursive: true });
  const file = (name: string) => path.join(dir, name);
  const random = createRandom(11);
  const x = Float32Array.from({ length: SAMPLES * FEATURES }, () => random.normal());
  const y = Int32Array.from({ length: SAMPLES }, () => random.int(OUTPUTS));
  const write = (name: string, content: Uint8Array | string) => {
    writeFileSync(file(name), content);
    return file(name);
  };
  const npy = (name: string, shape: number[], data: Float32Array | Int32Array | Float64Array) =>
    write(name, writeNpy({ shape, data }));

  const modelBytes = readFileSync(MODEL_FIXTURE);
  copyFileSync(MODEL_FIXTURE, file('model.onnx'));

  const withNan = x.slice();
  withNan[5 * FEATURES + 3] = Number.NaN;
  withNan[9 * FEATURES] = Number.POSITIVE_INFINITY;
  const big = Float32Array.from({ length: 3000 * FEATURES }, (_, i) => Math.sin(i));
  big[2500 * FEATURES + 7] = Number.POSITIVE_INFINITY;
  const csvRows = Array.from({ length: 4 }, (_, r) =>
    Array.from({ length: FEATURES }, (_, c) => (r === 2 && c === 4 ? 'abc' : String(r + c / 10))).join(','),
  );
  const idxBad = new Uint8Array(4 + 4 * 2 + SAMPLES * FEATURES);
  idxBad.set([0x01, 0x02, 0x08, 0x02]);

  const paths = {
    model: file('model.onnx'),
    x: npy('x.npy', [SAMPLES, FEATURES], x),
    y: npy('y.npy', [SAMPLES], y),
    xy: write(
      'xy.npz',
      writeNpz({ x: { shape: [SAMPLES, FEATURES], data: x }, y: { shape: [SAMPLES], data: y } }),
    ),
    nan: npy('nan.npy', [SAMPLES, FEATURES], withNan),
    infLate: npy('inf-late.npy', [3000, FEATURES], big),
    wide: npy('wide.npy', [SAMPLES, FEATURES + 1], new Float32Array(SAMPLES * (FEATURES + 1))),
    noSamples: npy('no-samples.npy', [0, FEATURES], new Float32Array(0)),
    yOutOfRange: npy(
      'y-out-of-range.npy',
      [SAMPLES],
      y.map((v, i) => (i === 9 ? OUTPUTS : v)),
    ),
    yFloat: npy(
      'y-float.npy',
      [SAMPLES],
      Float32Array.from(y, (v, i) => v + (i === 4 ? 0.5 : 0)),
    ),
    yShort: npy('y-short.npy', [SAMPLES - 1], y.slice(1)),
    yNan: npy(
      'y-nan.npy',
      [SAMPLES, 1],
      Float32Array.from(y, (v, i) => (i === 6 ? Number.NaN : v + 0.25)),
    ),
    yWide: npy('y-wide.npy', [SAMPLES, 2], new Float32Array(SAMPLES * 2).fill(0.5)),
    terabytes: write(
      'terabytes.npy',
      concat(
        npyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 12), }"),
        new Uint8Array(48),
      ),
    ),
    npyTruncated: write('truncated.npy', readFileSync(file('x.npy')).subarray(0, 400)),
    npyEmpty: write('empty.npy', new Uint8Array(0)),
    npyComplex: write(
      'complex.npy',
      concat(npyHeader("{'descr': '<c8', 'fortran_order': False, 'shape': (4, 3), }"), new Uint8Array(96)),
    ),
    // NumPy reads a repeated key's last value: the first ('<f4') would read these float64 values as garbage
    npyTwoDescr: write(
      'two-descr.npy',
      concat(
        npyHeader("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (64, 12), }"),
        new Uint8Array(Float64Array.from(x).buffer),
      ),
    ),
    // a 900 KB format-2.0 header of unclosed shapes: quadratic for a backtracking regex
    npyLongHeader: (() => {
      const dict = `{'descr': '<f4', 'fortran_order': False, ${"'shape': (".repeat(90_000)}`;
      const header = new Uint8Array(12 + dict.length);
      header.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0]);
      new DataView(header.buffer).setUint32(8, dict.length, true);
      header.set(new TextEncoder().encode(dict), 12);
      return write('long-header.npy', header);
    })(),
    safetensorsDeepShape: write(
      'deep-shape.safetensors',
      safetensors(`{"a":{"dtype":"F32","shape":${deep},"data_offsets":[0,4]}}`, 4),
    ),
    // 150,000 empty tensors: JSON.parse alone would take seconds and gigabytes at a million
    safetensorsManyTensors: write(
      'many-tensors.safetensors',
      safetensors(
        `{${Array.from({ length: 150_000 }, (_, i) => `"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`).join(',')}}`,
        0,
      ),
    ),
    tfjsGood: (() => {
      const folder = file('tfjs-good');
      mkdirSync(folder, { recursive: true });
      for (const name of ['model.json', 'group1-shard1of1.bin'])
        copyFileSync(path.join(FIXTURES, 'interop', 'tfjs_dense', name), path.join(folder, name));
      return path.join(folder, 'model.json');
    })(),
    tfjsGoodCalib: path.join(FIXTURES, 'interop', 'tfjs_dense.input.npy'),
    tfjsDeepShape: tfjsEdited(dir, 'tfjs-deep-shape', 'tfjs_dense', (json) =>
      json.replace(/"shape": ?\[6, ?8\]/, `"shape":${deep}`),
    ),
    yHuge: write(
      'y-huge.npy',
      concat(
        npyHeader(`{'descr': '<i8', 'fortran_order': False, 'shape': (${SAMPLES},), }`),
        new Uint8Array(BigInt64Array.from({ length: SAMPLES }, (_, i) => (i === 7 ? 2n ** 40n : 1n)).buffer),
      ),
    ),
    npzEncrypted: (() => {
      const bytes = writeNpz({ x: { shape: [SAMPLES, FEATURES], data: x } });
      const view = new DataView(bytes.buffer);
      const central = bytes.findIndex((_, i) => view.getUint32(i, true) === 0x02014b50);
      view.setUint16(6, 1, true); // local header flags
      view.setUint16(central + 8, 1, true); // central directory flags
      return write('encrypted.npz', bytes);
    })(),
    npyNotNpy: write('not-really.npy', 'x,y\n1,2\n'),
    csvText: write('text.csv', `${csvRows.join('\n')}\n`),
    csvRagged: write('ragged.csv', '1,2,3\n4,5\n'),
    idxBadMagic: write('bad-images-idx3-ubyte', idxBad),
    idxTruncated: write(
      'short-images-idx3-ubyte',
      new Uint8Array([0, 0, 0x08, 3, 0, 0, 0, 100, 0, 0, 0, 3, 0, 0, 0, 4, 1, 2, 3]),
    ),
    idxGzCorrupt: (() => {
      // a gzipped IDX file cut off in the middle of its deflate stream
      const idx = new Uint8Array(16 + 20 * FEATURES).map(() => random.int(256));
      idx.set([0, 0, 0x08, 3, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, 4]);
      const gz = gzipSync(idx);
      return write('corrupt-images-idx3-ubyte.gz', gz.subarray(0, gz.length >> 1));
    })(),
    npzNoY: write(
      'labels.npz',
      writeNpz({ a: { shape: [SAMPLES], data: y }, b: { shape: [SAMPLES], data: y } }),
    ),
    npzCorrupt: write('corrupt.npz', readFileSync(file('xy.npz')).subarray(0, 300)),
    unknownFormat: write('data.bin', new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9])),
    folder: (() => {
      mkdirSync(file('a-folder.npy'), { recursive: true });
      return file('a-folder.npy');
    })(),
    missing: file('does-not-exist.npy'),
    notAFolder: write('plain-file', 'not a folder'),

    onnxTruncated: write('truncated.onnx', modelBytes.subarray(0, Math.floor(modelBytes.length * 0.6))),
    onnxEmpty: write('empty.onnx', new Uint8Array(0)),
    onnxGarbage: write('garbage.onnx', 'this is not an onnx model\n'),
    onnxUnsupported: write(
      'conv.onnx',
      editOnnx((m) => {
        m.graph!.node!.find((n) => n.opType === 'Relu')!.opType = 'Conv';
      }),
    ),
    onnxCycle: write(
      'cycle.onnx',
      editOnnx((m) => {
        // the first activation writes the graph input: the chain comes back to the first Gemm
        m.graph!.node!.find((n) => n.opType === 'Relu')!.output![0] = 'input';
      }),
    ),
    onnxIdentityLoop: write(
      'identity-loop.onnx',
      editOnnx((m) => {
        // the first bias comes from an Identity node that reads its own output
        m.graph!.node![0].input![2] = 'loop';
        m.graph!.node!.push({ opType: 'Identity', name: 'self', input: ['loop'], output: ['loop'] });
      }),
    ),
    onnxDuplicate: write(
      'duplicate.onnx',
      editOnnx((m) => {
        m.graph!.initializer!.push({ ...m.graph!.initializer![0] });
      }),
    ),
    onnxMissing: write(
      'missing-initializer.onnx',
      editOnnx((m) => {
        m.graph!.node![0].input![1] = 'no.such.weight';
      }),
    ),
    onnxNanWeight: write(
      'nan-weight.onnx',
      editOnnx((m) => {
        const raw = m.graph!.initializer![2].rawData!;
        new DataView(raw.buffer, raw.byteOffset, raw.byteLength).setFloat32(4 * 7, Number.NaN, true);
      }),
    ),
    onnxWidth: write(
      'width-mismatch.onnx',
      editOnnx((m) => {
        const weight = m.graph!.initializer!.find((t) => t.name === '2.weight')!;
        weight.dims = [20, 5];
      }),
    ),
    onnxLeakyNan: write(
      'leaky-nan.onnx',
      editOnnx((m) => {
        const leaky = m.graph!.node!.find((n) => n.opType === 'LeakyRelu')!;
        leaky.attribute = [{ name: 'alpha', type: onnx.AttributeProto.AttributeType.FLOAT, f: Number.NaN }];
      }),
    ),
    // what onnxruntime refuses is refused before any work, not read as something else
    onnxGemmFourInputs: write(
      'gemm-4-inputs.onnx',
      editOnnx((m) => {
        const gemm = m.graph!.node!.find((n) => n.opType === 'Gemm')!;
        gemm.input = [...gemm.input!, gemm.input![2]];
      }),
    ),
    onnxDoubleInput: write(
      'double-input.onnx',
      editOnnx((m) => {
        m.graph!.input![0].type!.tensorType!.elemType = onnx.TensorProto.DataType.DOUBLE;
      }),
    ),
    onnxOpset30: write(
      'opset30.onnx',
      editOnnx((m) => {
        for (const o of m.opsetImport!) if (!o.domain) o.version = 30;
      }),
    ),
    tfjsChannelsFirst: tfjsEdited(dir, 'tfjs-channels-first', 'tfjs_dense', (json) =>
      json.replace('"data_format": "channels_last"', '"data_format": "channels_first"'),
    ),
    tfjsSlopeInfinite: tfjsEdited(dir, 'tfjs-slope-infinite', 'tfjs_activation_layers', (json) =>
      json.replace('"negative_slope": 0.2', '"negative_slope": 1e999'),
    ),
    onnxNoGraph: write('no-graph.onnx', onnx.ModelProto.encode({ irVersion: 8 }).finish()),
    smallModel: (() => {
      copyFileSync(path.join(FIXTURES, 'onnx', 'mlp_matmul_add.onnx'), file('other.onnx'));
      return file('other.onnx');
    })(),
    npzModelGap: write(
      'weights.npz',
      // W1 is missing: W0 and W2 do not make a chain
      writeNpz({
        W0: { shape: [4, FEATURES], data: new Float32Array(4 * FEATURES) },
        b0: { shape: [4], data: new Float32Array(4) },
        W2: { shape: [OUTPUTS, 4], data: new Float32Array(OUTPUTS * 4) },
        arch: { shape: [4], data: new TextEncoder().encode('relu') },
      }),
    ),
    safetensorsTruncated: write(
      'truncated.safetensors',
      readFileSync(path.join(FIXTURES, 'interop', 'torch_relu_f32.safetensors')).subarray(0, 300),
    ),
    // a torch.save-shaped zip whose data.pkl calls os.system (GLOBAL + REDUCE), made by Python's pickle
    torchMalicious: write('malicious.pt', readFileSync(path.join(FIXTURES, 'torch', 'malicious.pt'))),
    torchLegacy: write('legacy.pt', readFileSync(path.join(FIXTURES, 'torch', 'legacy.pt'))),
    tfjsTruncated: (() => {
      const folder = file('tfjs');
      mkdirSync(folder, { recursive: true });
      const source = path.join(FIXTURES, 'interop', 'tfjs_dense');
      copyFileSync(path.join(source, 'group1-shard1of1.bin'), path.join(folder, 'group1-shard1of1.bin'));
      const json = readFileSync(path.join(source, 'model.json'));
      writeFileSync(path.join(folder, 'model.json'), json.subarray(0, json.length >> 1));
      return path.join(folder, 'model.json');
    })(),
    tfjsShortShard: (() => {
      const folder = file('tfjs-short-shard');
      mkdirSync(folder, { recursive: true });
      const source = path.join(FIXTURES, 'interop', 'tfjs_dense');
      copyFileSync(path.join(source, 'model.json'), path.join(folder, 'model.json'));
      const shard = readFileSync(path.join(source, 'group1-shard1of1.bin'));
      writeFileSync(path.join(folder, 'group1-shard1of1.bin'), shard.subarray(0, shard.length - 10));
      return path.join(folder, 'model.json');
    })(),
    ...hostileTfjs(dir),
  };
  return paths;
}

/**
 * TF.js models whose manifests reach for files they must not read, each in its own folder next to
 * `secret/group1-shard1of1.bin`, a valid shard (so a reader that follows the path succeeds).
 */
function hostileTfjs(dir: string) {
  const source = path.join(FIXTURES, 'interop', 'tfjs_dense');
  const shard = readFileSync(path.join(source, 'group1-shard1of1.bin'));
  const json = JSON.parse(readFileSync(path.join(source, 'model.json'), 'utf8'));
  mkdirSync(path.join(dir, 'secret'), { recursive: true });
  writeFileSync(path.join(dir, 'secret', 'group1-shard1of1.bin'), shard);
  /** A folder with a model.json listing `paths` and the given files (bytes, or a symlink target). */
  const model = (
    name: string,
    paths: string[],
    files: Record<string, Uint8Array | { link: string }> = {},
  ) => {
    const folder = path.join(dir, name);
    mkdirSync(folder, { recursive: true });
    writeFileSync(
      path.join(folder, 'model.json'),
      JSON.stringify({ ...json, weightsManifest: [{ ...json.weightsManifest[0], paths }] }),
    );
    for (const [file, content] of Object.entries(files)) {
      if (content instanceof Uint8Array) writeFileSync(path.join(folder, file), content);
      else symlinkSync(content.link, path.join(folder, file));
    }
    return path.join(folder, 'model.json');
  };
  const half = shard.length / 2;
  return {
    tfjsDotDot: model('tfjs-dotdot', ['../secret/group1-shard1of1.bin']),
    tfjsAbsolute: model('tfjs-absolute', [path.join(dir, 'secret', 'group1-shard1of1.bin')]),
    tfjsLinkOut: model('tfjs-link-out', ['group1-shard1of1.bin'], {
      'group1-shard1of1.bin': { link: path.join('..', 'secret', 'group1-shard1of1.bin') },
    }),
    tfjsDevZero: model('tfjs-dev-zero', ['group1-shard1of1.bin'], {
      'group1-shard1of1.bin': { link: '/dev/zero' },
    }),
    tfjsFifo: (() => {
      const file = model('tfjs-fifo', ['group1-shard1of1.bin']);
      execFileSync('mkfifo', [path.join(path.dirname(file), 'group1-shard1of1.bin')]);
      return file;
    })(),
    tfjsRepeated: model('tfjs-repeated', Array(1500).fill('group1-shard1of1.bin'), {
      'group1-shard1of1.bin': shard,
    }),
    tfjsSpelledTwice: model('tfjs-spelled-twice', ['a.bin', './a.bin'], { 'a.bin': shard.subarray(0, half) }),
    tfjsAlias: model('tfjs-alias', ['a.bin', 'b.bin'], {
      'a.bin': shard.subarray(0, half),
      'b.bin': { link: 'a.bin' },
    }),
    tfjsSelf: model('tfjs-self', ['model.json']),
    tfjsLongShard: model('tfjs-long-shard', ['group1-shard1of1.bin'], {
      'group1-shard1of1.bin': Buffer.concat([shard, Buffer.alloc(10)]),
    }),
  };
}

export type Inputs = ReturnType<typeof writeInputs>;
