/**
 * The parsers the fuzz tests run, one row each: how to parse bytes, which valid files to mutate,
 * and what a successful parse must look like. Adding a parser = adding a row. A row whose module
 * cannot be loaded (a format still being written) is skipped with a note, not failed.
 *
 * Every parse gets the bytes of one file and must either return a well-formed result or throw an
 * EcpruneError (never another exception, never a hang, never an allocation beyond
 * `allocationFactor` × the input size + 1 MiB, see alloc-guard.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

// not imported from ../cli/run.js: that loads the whole CLI, and the fuzz worker must load the
// parsers only after its allocation guard is installed
const FIXTURES = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures');

export interface FuzzTarget {
  /** also the prefix of its regression fixtures: test/fixtures/regressions/<name>-<what>.<ext> */
  readonly name: string;
  readonly ext: string;
  /** valid files to mutate */
  seeds(): Promise<Uint8Array[]>;
  /** parses the bytes (throws EcpruneError on bad input); returns a description of the result */
  load(): Promise<((bytes: Uint8Array) => unknown) | undefined>;
  /** checks a successful parse's result (throws a plain Error if it is malformed) */
  check?(result: unknown): void;
  /**
   * Bytes a parse may allocate per input byte (plus 1 MiB). 64 for plain formats; compressed ones
   * may legitimately inflate up to deflate's 1032:1 (then decode to float32: x4), and sparse ones
   * expand to dense (a 99.9 %-sparse layer is ~700x its stored size): COMPRESSED_OR_SPARSE.
   */
  readonly allocationFactor?: number;
}

/** See `allocationFactor`. */
const COMPRESSED_OR_SPARSE = 1032 * 4;

const fixture = (...parts: string[]) => path.join(FIXTURES, ...parts);
/** TF.js seeds: Sequential chains, and the zoo's functional residual model and BatchNormalization model */
const TFJS_SEEDS = [
  ['interop', 'tfjs_dense'],
  ['interop', 'tfjs_activation_layers'],
  ['zoo', 'tfjs_residual'],
  ['zoo', 'tfjs_batchnorm_swish'],
];
const read = (...parts: string[]) => new Uint8Array(readFileSync(fixture(...parts)));
const filesIn = (folder: string, pattern: RegExp) =>
  readdirSync(fixture(folder))
    .filter((name) => pattern.test(name))
    .sort()
    .map((name) => read(folder, name));

/** Imports a module that may not exist yet (another engineer's format in progress). */
async function optional<T>(load: () => Promise<T>): Promise<T | undefined> {
  try {
    return await load();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw error;
  }
}

interface ArrayLikeResult {
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
}

function checkArray(array: ArrayLikeResult, what = 'array'): void {
  const size = array.shape.reduce((n, d) => n * d, 1);
  if (!array.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new Error(`${what}: bad shape [${array.shape}]`);
  if (array.data.length !== size)
    throw new Error(`${what}: ${array.data.length} values for shape [${array.shape}]`);
}

interface MlpLike {
  readonly layers: readonly {
    readonly weight: { readonly rows: number; readonly cols: number; readonly data: ArrayLike<number> };
    readonly bias: ArrayLike<number>;
  }[];
}

/** A model must be a chain of layers of matching widths with finite parameters. */
function checkMlp(mlp: MlpLike): void {
  if (mlp.layers.length === 0) throw new Error('a model without layers');
  mlp.layers.forEach((layer, l) => {
    const { rows, cols, data } = layer.weight;
    if (!(rows >= 1 && cols >= 1) || data.length !== rows * cols)
      throw new Error(`layer ${l}: bad weight ${rows}x${cols}`);
    if (layer.bias.length !== rows)
      throw new Error(`layer ${l}: bias of ${layer.bias.length} for ${rows} rows`);
    if (l > 0 && cols !== mlp.layers[l - 1].weight.rows) throw new Error(`layer ${l}: takes ${cols} inputs`);
    for (const values of [data, layer.bias]) {
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i])) throw new Error(`layer ${l}: non-finite parameter accepted`);
      }
    }
  });
}

async function exampleMlp() {
  const { readOnnxMlp } = await import('../helpers/onnx-chain.js');
  return readOnnxMlp(read('onnx', 'mlp_relu_gemm.onnx'));
}

export const FUZZ_TARGETS: readonly FuzzTarget[] = [
  {
    name: 'npy',
    ext: 'npy',
    seeds: async () => filesIn('data', /\.npy$/),
    load: async () => {
      const { readNpy } = await import('../../src/io/npy.js');
      return (bytes) => readNpy(bytes, 'fuzz.npy');
    },
    check: (result) => checkArray(result as ArrayLikeResult),
  },
  {
    name: 'npz',
    ext: 'npz',
    seeds: async () => [...filesIn('data', /\.npz$/), ...filesIn('interop', /\.npz$/)],
    load: async () => {
      const { readNpz } = await import('../../src/io/npz.js');
      return (bytes) => readNpz(bytes, 'fuzz.npz');
    },
    check: (result) => {
      for (const [name, array] of result as Map<string, ArrayLikeResult>) checkArray(array, name);
    },
    allocationFactor: COMPRESSED_OR_SPARSE,
  },
  {
    name: 'csv',
    ext: 'csv',
    seeds: async () => filesIn('data', /\.csv$/),
    load: async () => {
      const { readCsv } = await import('../../src/io/csv.js');
      return (bytes) =>
        readCsv(new TextDecoder().decode(bytes), 'fuzz.csv', {
          labelColumn: bytes.length % 2 === 0 ? -1 : undefined,
        });
    },
    check: (result) => {
      const { x } = result as { x: { rows: number; cols: number; data: Float32Array } };
      if (x.data.length !== x.rows * x.cols) throw new Error('csv: matrix size');
    },
  },
  {
    name: 'idx',
    ext: 'idx',
    seeds: async () => [...filesIn('data', /\.idx$/), ...filesIn('data', /-ubyte(\.gz)?$/)],
    load: async () => {
      const { readIdx } = await import('../../src/io/idx.js');
      return (bytes) => readIdx(bytes, 'fuzz.idx');
    },
    check: (result) => checkArray(result as ArrayLikeResult),
    allocationFactor: COMPRESSED_OR_SPARSE,
  },
  {
    name: 'onnx',
    ext: 'onnx',
    seeds: async () => {
      const { writeOnnx } = await import('../../src/io/onnx.js');
      const { graphFromMlp } = await import('../../src/graph/mlp-graph.js');
      const mlp = await exampleMlp();
      // plus the same model with sparse initializers, which only the writer makes
      return [...filesIn('onnx', /\.onnx$/), writeOnnx(graphFromMlp(mlp), undefined, {}, { sparse: true })];
    },
    load: async () => {
      const { readOnnx } = await import('../../src/io/onnx.js');
      return (bytes) => readOnnx(bytes, 'fuzz.onnx').graph;
    },
    check: (result) => checkMlp(result as MlpLike),
    allocationFactor: COMPRESSED_OR_SPARSE,
  },
  {
    name: 'safetensors',
    ext: 'safetensors',
    seeds: async () => filesIn('interop', /\.safetensors$/),
    load: async () => {
      const io = await optional(() => import('../../src/io/safetensors.js'));
      const arch = await optional(() => import('../../src/io/arch.js'));
      if (!io || !arch) return undefined;
      return (bytes) => {
        const { metadata } = io.parseSafetensorsHeader(bytes, 'fuzz.safetensors');
        const stored = metadata[io.ARCH_METADATA_KEY];
        const chosen =
          stored === undefined ? arch.parseArch('relu') : arch.parseArch(stored, 'fuzz.safetensors');
        return io.mlpFromStateDict(io.readSafetensors(bytes, 'fuzz.safetensors'), chosen, 'fuzz.safetensors')
          .mlp;
      };
    },
    check: (result) => checkMlp(result as MlpLike),
  },
  {
    name: 'pytorch',
    ext: 'pt',
    // the checkpoints torch wrote, and the pickle that would run a command (mutations of a refusal)
    seeds: async () => filesIn('torch', /\.pt$/),
    load: async () => {
      const io = await optional(() => import('../../src/io/torch.js'));
      const safetensors = await optional(() => import('../../src/io/safetensors.js'));
      const arch = await optional(() => import('../../src/io/arch.js'));
      if (!io || !safetensors || !arch) return undefined;
      return (bytes) =>
        safetensors.mlpFromStateDict(
          io.readTorch(bytes, 'fuzz.pt').tensors,
          arch.parseArch('relu'),
          'fuzz.pt',
        ).mlp;
    },
    check: (result) => checkMlp(result as MlpLike),
  },
  {
    name: 'tfjs',
    ext: 'json',
    seeds: async () => TFJS_SEEDS.map((folder) => read(...folder, 'model.json')),
    load: async () => {
      const io = await optional(() => import('../../src/io/tfjs.js'));
      if (!io) return undefined;
      const { ioError } = await import('../../src/node/files.js');
      // the shards of every seed by the path the manifest gives, and the seed's first weight name
      const seeds = TFJS_SEEDS.map((parts) => {
        const folder = parts.join('/');
        const shards = new Map<string, Uint8Array>();
        for (const name of readdirSync(fixture(...parts)).filter((n) => n.endsWith('.bin')))
          shards.set(name, read(...parts, name));
        const json = JSON.parse(new TextDecoder().decode(read(...parts, 'model.json')));
        return { folder, shards, signature: String(json.weightsManifest[0].weights[0].name) };
      });
      return (bytes) => {
        const text = new TextDecoder().decode(bytes);
        // a mutated model.json reads the shards of the seed whose first weight it still names
        const seed = seeds.find((candidate) => text.includes(candidate.signature)) ?? seeds[0];
        const readShard = (shard: string) => {
          // the containment rule: a path out of the folder never reaches a reader (a plain Error fails the fuzz)
          if (shard.startsWith('/') || shard.includes('\\') || shard.split('/').includes('..'))
            throw new Error(`the reader was asked for '${shard}', outside the model's folder`);
          const found = seed.shards.get(shard);
          // what loadModel's reader throws for a shard that is not there
          if (found === undefined)
            throw ioError(Object.assign(new Error('ENOENT'), { code: 'ENOENT' }), shard);
          return found;
        };
        return { layers: io.readTfjs(text, readShard, 'fuzz/model.json').graph.layers };
      };
    },
    check: (result) => checkMlp(result as MlpLike),
  },
  {
    name: 'tfjs-shard',
    ext: 'bin',
    seeds: async () => [read('interop', 'tfjs_dense', 'group1-shard1of1.bin')],
    load: async () => {
      const io = await optional(() => import('../../src/io/tfjs.js'));
      if (!io) return undefined;
      const modelJson = new TextDecoder().decode(read('interop', 'tfjs_dense', 'model.json'));
      return (bytes) => ({ layers: io.readTfjs(modelJson, () => bytes, 'fuzz/model.json').graph.layers });
    },
    check: (result) => checkMlp(result as MlpLike),
  },
  {
    name: 'npz-model',
    ext: 'npz',
    seeds: async () => {
      const io = await optional(() => import('../../src/io/npz-model.js'));
      if (!io) return [];
      return [...filesIn('interop', /\.npz$/), io.writeNpzModel(await exampleMlp())];
    },
    load: async () => {
      const io = await optional(() => import('../../src/io/npz-model.js'));
      if (!io) return undefined;
      return (bytes) => io.readNpzModel(bytes, undefined, 'fuzz.npz');
    },
    check: (result) => checkMlp(result as MlpLike),
    allocationFactor: COMPRESSED_OR_SPARSE,
  },
  {
    name: 'ecsr',
    ext: 'ecsr',
    seeds: async () => {
      const io = await optional(() => import('../../src/io/ecsr.js'));
      if (!io) return [];
      const mlp = await exampleMlp();
      // half the weights zero, so the rows are sparse; once float32 and once float16
      const sparse = {
        layers: mlp.layers.map((l) => ({
          ...l,
          weight: { ...l.weight, data: l.weight.data.map((w, i) => (i % 2 ? 0 : w)) },
        })),
      };
      // version 2: quantised values in entropy-coded streams, int8 and a 3-bit codebook
      const q = await optional(() => import('../../src/quantize/quantize.js'));
      const masks = sparse.layers.map((l) => Uint8Array.from(l.weight.data, (w) => +(w !== 0)));
      const quantized = q
        ? [
            io.writeEcsr(sparse, {
              quantized: sparse.layers.map((l, i) => q.quantizeInt8(l.weight, masks[i])),
            }),
            io.writeEcsr(sparse, {
              quantized: sparse.layers.map((l, i) => q.quantizeCodebook(l.weight, masks[i], { bits: 3 })),
              metadata: { source: 'fuzz' },
            }),
          ]
        : [];
      return [
        io.writeEcsr(sparse),
        io.writeEcsr(sparse, { valueType: 'float16', metadata: { source: 'fuzz' } }),
        ...quantized,
      ];
    },
    load: async () => {
      const io = await optional(() => import('../../src/io/ecsr.js'));
      if (!io) return undefined;
      // the reader's dense budget is the caller's: half of this harness's allocation budget (float32
      // weights), the rest for the sparse form it decodes first
      return (bytes) =>
        io.readEcsrAsMlp(bytes, 'fuzz.ecsr', {
          maxDenseWeights: Math.floor((COMPRESSED_OR_SPARSE * bytes.length) / 8),
        });
    },
    check: (result) => checkMlp(result as MlpLike),
    allocationFactor: COMPRESSED_OR_SPARSE,
  },
];

/** The target a regression fixture belongs to, from its name `<target>-<what>.<ext>` (longest name first). */
export function targetOfFixture(file: string): FuzzTarget | undefined {
  const base = path.basename(file);
  return [...FUZZ_TARGETS]
    .sort((a, b) => b.name.length - a.name.length)
    .find((target) => base.startsWith(`${target.name}-`) && base.endsWith(`.${target.ext}`));
}
