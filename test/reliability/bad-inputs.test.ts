/**
 * Bad input never crashes and never loses data: every row runs one command line through the CLI
 * (in-process) and checks the exit code (2), that stderr is one line naming the file (and the place)
 * and the problem, with no stack trace, that every input file is byte-identical afterwards, and
 * that nothing (no output, no temp file) appeared in the output folder.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cli, tempDir } from '../cli/run.js';
import { commandLine } from '../helpers/command-line.js';
import { type Inputs, writeInputs } from './inputs.js';

const root = tempDir('ecprune-bad-inputs-');
after(() => rmSync(root, { recursive: true, force: true }));
const inputsDir = path.join(root, 'inputs');
const inputs = writeInputs(inputsDir);

/**
 * Every file under `dir` with a hash of its bytes (folders listed too, so new files show up;
 * symlinks by their target and FIFOs by their kind, as the hostile inputs hold both).
 */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const file = path.join(folder, entry.name);
      if (entry.isDirectory()) {
        out.set(`${file}/`, 'folder');
        walk(file);
      } else if (entry.isSymbolicLink()) out.set(file, `link to ${readlinkSync(file)}`);
      else if (!entry.isFile()) out.set(file, 'special');
      else out.set(file, createHash('sha256').update(readFileSync(file)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A regex of the parts in order, anything between them. */
const says = (...parts: string[]) => new RegExp(parts.map(escapeRegex).join('.*'));

interface Row {
  readonly command: string;
  readonly what: string;
  readonly argv: (i: Inputs, out: string) => string[];
  readonly message: (i: Inputs, out: string) => RegExp;
  readonly env?: Record<string, string>;
  /** files that are in the output folder before the run (and must be unchanged after) */
  readonly existing?: readonly string[];
  /** a known gap, in a file this suite's owner does not maintain: reported, not failed */
  readonly todo?: string;
}

const train = (i: Inputs, out: string, ...more: string[]) => [
  ...commandLine('train', [], { data: i.x, labels: i.y, quiet: true, o: path.join(out, 't.onnx') }),
  ...more,
];
const shardOf = (modelJson: string) => path.join(path.dirname(modelJson), 'group1-shard1of1.bin');
const prune = (i: Inputs, out: string, ...more: string[]) => [
  ...commandLine('prune', [i.model], { calib: i.x, quiet: true, o: path.join(out, 'pruned.onnx') }),
  ...more,
];
const score = (i: Inputs, out: string, ...more: string[]) => [
  ...commandLine('score', [i.model], { calib: i.x, quiet: true, o: path.join(out, 'scores.npz') }),
  ...more,
];
/** The prune command line with another calibration file. */
const pruneCalib =
  (calib: (i: Inputs) => string, ...more: string[]) =>
  (i: Inputs, out: string) => [
    ...commandLine('prune', [i.model], { calib: calib(i), quiet: true, o: path.join(out, 'pruned.onnx') }),
    ...more,
  ];
const pruneModel = (model: (i: Inputs) => string) => (i: Inputs, out: string) =>
  commandLine('prune', [model(i)], { calib: i.x, quiet: true, o: path.join(out, 'pruned.onnx') });
const evalData =
  (data: (i: Inputs) => string, ...more: string[]) =>
  (i: Inputs) => ['eval', i.model, '--data', data(i), ...more];

/** Rows whose message holds fixed parts in order (most rows): [what, argv, ...parts]. */
const rowsOf = (command: string, table: readonly (readonly [string, Row['argv'], ...string[]])[]): Row[] =>
  table.map(([what, argv, ...parts]) => ({ command, what, argv, message: () => says(...parts) }));

const ROWS: Row[] = [
  // ---- prune: the model
  ...rowsOf('prune', [
    ['truncated .onnx', pruneModel((i) => i.onnxTruncated), 'truncated.onnx', 'not a valid ONNX file'],
    ['empty model file', pruneModel((i) => i.onnxEmpty), 'empty.onnx', 'is empty'],
    [
      'unsupported ONNX op',
      pruneModel((i) => i.onnxUnsupported),
      'conv.onnx',
      "node '/1/Relu'",
      "op 'Conv'",
      'not supported',
      'ecprune inspect --help',
    ],
    ['ONNX graph with a cycle', pruneModel((i) => i.onnxCycle), 'cycle.onnx', "node '/0/Gemm'", 'cycle'],
    [
      'ONNX Identity node reading its own output',
      pruneModel((i) => i.onnxIdentityLoop),
      'identity-loop.onnx',
      "node '/0/Gemm'",
      "'loop'",
      'cycle',
    ],
    [
      'duplicate initializer',
      pruneModel((i) => i.onnxDuplicate),
      'duplicate.onnx',
      "two initializers named '0.weight'",
    ],
    [
      'missing initializer',
      pruneModel((i) => i.onnxMissing),
      'missing-initializer.onnx',
      "node '/0/Gemm'",
      "'no.such.weight' is missing",
    ],
    [
      'NaN in the weights',
      pruneModel((i) => i.onnxNanWeight),
      'nan-weight.onnx',
      'layer 1',
      'weight has 1 non-finite',
    ],
    [
      'nonexistent model',
      pruneModel((i) => path.join(path.dirname(i.model), 'nope.onnx')),
      'nope.onnx',
      'cannot read: no such file',
    ],
  ]),
  // ---- prune: the calibration data
  ...rowsOf('prune', [
    [
      '.npy with NaN',
      pruneCalib((i) => i.nan),
      'nan.npy',
      'sample 5, feature 3',
      'NaN',
      '2 non-finite values',
    ],
    [
      'Infinity in a later batch of a streamed .npy',
      pruneCalib((i) => i.infLate, '--batch-size', '1000'),
      'inf-late.npy',
      'sample 2500, feature 7',
      'Infinity',
      'samples 2000 to 2999',
    ],
    [
      'wrong feature count',
      pruneCalib((i) => i.wide),
      'wide.npy',
      '13 features per sample',
      'model.onnx',
      'takes 12 inputs',
    ],
    ['no samples', pruneCalib((i) => i.noSamples), 'no-samples.npy', 'has no samples'],
    [
      'labels out of range',
      pruneCalib((i) => i.x, '--calib-labels', inputs.yOutOfRange),
      'y-out-of-range.npy',
      'row 9',
      'class id 3 is out of range',
      '3 outputs',
    ],
    [
      'float labels for ce',
      pruneCalib((i) => i.x, '--calib-labels', inputs.yFloat, '--method', 'gradmag', '--loss', 'ce'),
      'y-float.npy',
      'row 4',
      'cross-entropy',
      'class ids',
      '0.5',
    ],
    [
      'fewer labels than samples',
      pruneCalib((i) => i.x, '--labels', inputs.yShort),
      'x.npy',
      '63 targets for 64 samples',
      'y-short.npy',
    ],
    [
      'NaN in float targets',
      pruneCalib((i) => i.x, '--labels', inputs.yNan),
      'y-nan.npy',
      'sample 6',
      'NaN in the targets',
    ],
    [
      'targets with the wrong column count',
      pruneCalib((i) => i.x, '--labels', inputs.yWide),
      'y-wide.npy',
      'targets have 2 columns',
      '3 outputs',
    ],
    [
      '.npy header claiming terabytes',
      pruneCalib((i) => i.terabytes),
      'terabytes.npy',
      'truncated',
      '48000000000000 bytes',
      'holds 48',
    ],
    [
      '.npy header with two descr keys',
      pruneCalib((i) => i.npyTwoDescr),
      'two-descr.npy',
      'unreadable .npy header',
      'key "descr" is given twice',
    ],
    [
      '900 KB .npy header (short error, no backtracking)',
      pruneCalib((i) => i.npyLongHeader),
      'long-header.npy',
      'unreadable .npy header',
      'bad shape dimension',
    ],
    [
      'an encrypted .npz member',
      pruneCalib((i) => i.npzEncrypted),
      'encrypted.npz',
      'member "x.npy" is encrypted',
    ],
    [
      'class id 2^40',
      (i, out) => [...prune(i, out), '--labels', i.yHuge],
      'y-huge.npy',
      'row 7',
      'class id 1099511627776 is too large',
    ],
    ['truncated .npy', pruneCalib((i) => i.npyTruncated), 'truncated.npy', 'truncated'],
    ['empty .npy', pruneCalib((i) => i.npyEmpty), 'empty.npy', 'not a .npy file'],
    ['unsupported dtype', pruneCalib((i) => i.npyComplex), 'complex.npy', "dtype '<c8' is not supported"],
    ['text named .npy', pruneCalib((i) => i.npyNotNpy), 'not-really.npy', 'not a .npy file'],
    [
      'CSV with a text cell',
      pruneCalib((i) => i.csvText),
      'text.csv',
      'row 3, column 5',
      "not a number: 'abc'",
    ],
    ['IDX with a bad magic', pruneCalib((i) => i.idxBadMagic), 'bad-images-idx3-ubyte', 'not an IDX file'],
    ['a folder given as a file', pruneCalib((i) => i.folder), 'a-folder.npy', 'it is a folder'],
    ['nonexistent calibration file', pruneCalib((i) => i.missing), 'does-not-exist.npy', 'no such file'],
    ['unknown data format', pruneCalib((i) => i.unknownFormat), 'data.bin', 'unknown data format'],
  ]),
  // ---- prune: options and the output
  ...rowsOf('prune', [
    [
      'sparsity 1',
      (i, out) => prune(i, out, '--sparsity', '1'),
      '--sparsity',
      'expected a number in [0, 1)',
      "'1'",
    ],
    ['sparsity NaN', (i, out) => prune(i, out, '--sparsity', 'NaN'), '--sparsity', "'NaN'"],
    ["method 'foo'", (i, out) => prune(i, out, '--method', 'foo'), '--method', "unknown method 'foo'"],
    ["scope 'x'", (i, out) => prune(i, out, '--scope', 'x'), '--scope', "unknown scope 'x'"],
    [
      'batch size 0',
      (i, out) => prune(i, out, '--batch-size', '0'),
      '--batch-size',
      'positive integer',
      "'0'",
    ],
    ['calibration samples 0', (i, out) => prune(i, out, '--calib-samples', '0'), '--calib-samples', "'0'"],
    [
      'gradmag without labels',
      (i, out) => prune(i, out, '--method', 'gradmag'),
      'x.npy',
      'needs labels',
      '--calib-labels',
    ],
    [
      'output equal to the model',
      (i) => commandLine('prune', [i.model], { calib: i.x, quiet: true, force: true, o: i.model }),
      'model.onnx',
      'is also an input',
      'refusing to overwrite',
    ],
    [
      'output equal to the calibration data',
      (i) => commandLine('prune', [i.model], { calib: i.x, quiet: true, force: true, o: i.x }),
      'x.npy',
      'is also an input',
    ],
  ]),
  {
    command: 'prune',
    what: 'existing output without --force',
    argv: (i, out) => prune(i, out),
    existing: ['pruned.onnx'],
    message: () => says('pruned.onnx', 'already exists (use --force'),
  },
  ...rowsOf('prune', [
    [
      'output under a file',
      (i) =>
        commandLine('prune', [i.model], {
          calib: i.x,
          quiet: true,
          o: path.join(i.notAFolder, 'pruned.onnx'),
        }),
      'plain-file/pruned.onnx',
      'cannot write',
      'plain-file',
      'is not a folder',
    ],
  ]),
  {
    command: 'prune',
    what: 'output that is a folder',
    argv: (i, out) =>
      commandLine('prune', [i.model], {
        calib: i.x,
        quiet: true,
        force: true,
        o: path.join(out, 'sub.onnx'),
      }),
    existing: ['sub.onnx/'],
    message: () => says('sub.onnx', 'it is a folder'),
  },
  ...rowsOf('prune', [
    [
      'output with an unknown extension',
      (i, out) =>
        commandLine('prune', [i.model], { calib: i.x, quiet: true, o: path.join(out, 'pruned.txt') }),
      'pruned.txt',
      "extension '.txt'",
    ],
  ]),
  {
    command: 'prune',
    what: 'more memory than there is',
    argv: (i, out) => prune(i, out),
    env: { ECPRUNE_MEMORY_LIMIT: '16KiB' },
    message: () =>
      says(
        'model.onnx',
        'pruning 12-10-10-10-10-10-10-10-3',
        'needs about',
        'KiB of memory',
        'have 16.0 KiB',
      ),
  },
  {
    command: 'prune',
    what: 'a bad ECPRUNE_MEMORY_LIMIT',
    argv: (i, out) => prune(i, out),
    env: { ECPRUNE_MEMORY_LIMIT: 'lots' },
    message: () => says('ECPRUNE_MEMORY_LIMIT', "'lots'"),
  },
  ...rowsOf('prune', [
    [
      'unknown data set',
      (i, out) =>
        commandLine('prune', [i.model], { dataset: 'imagenet', quiet: true, o: path.join(out, 'p.onnx') }),
      "unknown data set 'imagenet'",
    ],
  ]),
  // ---- score
  ...rowsOf('score', [
    [
      'labels in an .npz without y',
      (i, out) => score(i, out, '--labels', i.npzNoY),
      'labels.npz',
      "no array 'y'",
    ],
    [
      'corrupt gzipped IDX',
      (i, out) =>
        commandLine('score', [i.model], { calib: i.idxGzCorrupt, quiet: true, o: path.join(out, 's.npz') }),
      'corrupt-images-idx3-ubyte.gz',
      'corrupt gzip data',
    ],
    [
      'truncated IDX data',
      (i, out) =>
        commandLine('score', [i.model], { calib: i.idxTruncated, quiet: true, o: path.join(out, 's.npz') }),
      'short-images-idx3-ubyte',
      'truncated',
      'promises 1200 bytes',
      'holds 3',
    ],
    [
      'corrupt .npz',
      (i, out) =>
        commandLine('score', [i.model], { calib: i.npzCorrupt, quiet: true, o: path.join(out, 's.npz') }),
      'corrupt.npz',
      'not a readable .npz',
    ],
  ]),
  {
    command: 'score',
    what: 'existing output without --force',
    argv: (i, out) => score(i, out),
    existing: ['scores.npz'],
    message: () => says('scores.npz', 'already exists'),
  },
  ...rowsOf('score', [
    [
      'NaN calibration data',
      (i, out) => commandLine('score', [i.model], { calib: i.nan, quiet: true, o: path.join(out, 's.npz') }),
      'nan.npy',
      'sample 5, feature 3',
    ],
    ['method foo', (i, out) => score(i, out, '--method', 'foo'), '--method', "unknown method 'foo'"],
  ]),
  {
    command: 'score',
    what: 'more memory than there is',
    argv: (i, out) => score(i, out),
    env: { ECPRUNE_MEMORY_LIMIT: '1000' },
    message: () => says('model.onnx', 'scoring', 'needs about'),
  },
  // ---- eval
  ...rowsOf('eval', [
    ['NaN data', evalData((i) => i.nan), 'nan.npy', 'sample 5, feature 3'],
    ['wrong feature count', evalData((i) => i.wide), 'wide.npy', '13 features per sample', 'takes 12'],
    [
      'labels out of range',
      evalData((i) => i.x, '--labels', inputs.yOutOfRange),
      'y-out-of-range.npy',
      'row 9',
      'out of range',
    ],
    [
      'float labels with --loss ce',
      evalData((i) => i.x, '--labels', inputs.yFloat, '--loss', 'ce'),
      'y-float.npy',
      'row 4',
      'cross-entropy',
    ],
    [
      'CSV with ragged rows',
      evalData((i) => i.csvRagged),
      'ragged.csv',
      'row 2',
      '2 values where the first row has 3',
    ],
    [
      'reference with other outputs',
      (i) => ['eval', i.model, '--data', i.x, '--reference', i.smallModel],
      'other.onnx',
      'reference maps 7 inputs to 4 outputs',
    ],
    [
      'label column on a .npy',
      evalData((i) => i.x, '--label-column', '0'),
      'x.npy',
      'label column only applies to CSV',
    ],
    ['no data at all', (i) => ['eval', i.model], 'give the evaluation data as a file or as --dataset'],
    ['batch size 0', evalData((i) => i.x, '--batch-size', '0'), '--batch-size', "'0'"],
  ]),
  // ---- inspect
  ...rowsOf('inspect', [
    ['truncated .onnx', (i) => ['inspect', i.onnxTruncated], 'truncated.onnx', 'not a valid ONNX file'],
    ['garbage .onnx', (i) => ['inspect', i.onnxGarbage], 'garbage.onnx', 'not a valid ONNX file'],
    ['ONNX without a graph', (i) => ['inspect', i.onnxNoGraph], 'no-graph.onnx', 'graph'],
    [
      'inconsistent layer widths',
      (i) => ['inspect', i.onnxWidth],
      'width-mismatch.onnx',
      "node '/2/Gemm'",
      "bias '2.bias' has shape [10], expected [20]",
    ],
    ['a folder', (i) => ['inspect', i.folder], 'a-folder.npy', 'it is a folder'],
    ['.npz model with a gap', (i) => ['inspect', i.npzModelGap], 'weights.npz', "'W2'"],
    [
      'truncated .safetensors',
      (i) => ['inspect', i.safetensorsTruncated],
      'truncated.safetensors',
      'header claims',
    ],
    [
      '.pt whose pickle calls os.system (GLOBAL + REDUCE)',
      (i) => ['inspect', i.torchMalicious, '--arch', 'relu'],
      'malicious.pt',
      'data.pkl, byte',
      'imports posix.system',
      'refused (nothing in the file is run)',
    ],
  ]),
  ...rowsOf('prune', [
    [
      '.pt whose pickle calls os.system (GLOBAL + REDUCE)',
      (i, out) =>
        commandLine('prune', [i.torchMalicious], {
          arch: 'relu',
          calib: i.x,
          quiet: true,
          o: path.join(out, 'p.pt'),
        }),
      'malicious.pt',
      'imports posix.system',
    ],
  ]),
  ...rowsOf('inspect', [
    [
      'legacy (torch < 1.6) .pt',
      (i) => ['inspect', i.torchLegacy, '--arch', 'tanh'],
      'legacy.pt',
      'torch 1.6 or later',
    ],
    [
      'ONNX Gemm with 4 inputs (onnxruntime refuses it)',
      (i) => ['inspect', i.onnxGemmFourInputs],
      'gemm-4-inputs.onnx',
      'Gemm takes 2 or 3 inputs, this node has 4',
    ],
    [
      'ONNX float64 input with float32 weights (onnxruntime refuses it)',
      (i) => ['inspect', i.onnxDoubleInput],
      'double-input.onnx',
      'is DOUBLE but the weight',
      'is FLOAT',
      'one float type',
    ],
    [
      'ONNX opset 30',
      (i) => ['inspect', i.onnxOpset30],
      'opset30.onnx',
      'opset 30 is newer than ecprune knows (9 to 21)',
    ],
    [
      'ONNX LeakyRelu with alpha NaN',
      (i) => ['inspect', i.onnxLeakyNan],
      'leaky-nan.onnx',
      'activation leaky_relu has alpha NaN',
      'finite',
    ],
    [
      'TF.js LeakyReLU with negative_slope 1e999',
      (i) => ['inspect', i.tfjsSlopeInfinite],
      'tfjs-slope-infinite/model.json',
      'activation leaky_relu has alpha Infinity',
    ],
    [
      "TF.js Flatten with data_format 'channels_first' over a 2 x 3 input",
      (i) => ['inspect', i.tfjsChannelsFirst],
      'tfjs-channels-first/model.json',
      "layer 'flatten'",
      'channels_first',
      'channels_last only',
    ],
    [
      'a safetensors shape nested 100,000 deep',
      (i) => ['inspect', i.safetensorsDeepShape, '--arch', '4,3:relu'],
      'deep-shape.safetensors',
      'tensor "a"',
      'invalid shape [[[[',
    ],
    [
      'a safetensors header of 150,000 empty tensors',
      (i) => ['inspect', i.safetensorsManyTensors, '--arch', '4,3:relu'],
      'many-tensors.safetensors',
      'room for 150000 tensors',
      'over the 100000',
    ],
    [
      'a TF.js shape nested 100,000 deep',
      (i) => ['inspect', i.tfjsDeepShape],
      'tfjs-deep-shape/model.json',
      'invalid shape [[[[',
    ],
    ['truncated TF.js model.json', (i) => ['inspect', i.tfjsTruncated], 'tfjs/model.json', 'not valid JSON'],
    [
      'TF.js shard shorter than its manifest',
      (i) => ['inspect', i.tfjsShortShard],
      'tfjs-short-shard/model.json',
      'truncated',
    ],
  ]),
  // ---- TF.js shards stay inside the model's folder (docs/RELIABILITY.md, containment)
  ...(
    [
      [
        'a shard path with .. (reaching a valid shard outside)',
        'tfjsDotDot',
        'tfjs-dotdot',
        "not a file inside the model's folder",
      ],
      ['an absolute shard path', 'tfjsAbsolute', 'tfjs-absolute', "not a file inside the model's folder"],
      [
        'a shard that is a symlink to a file outside',
        'tfjsLinkOut',
        'tfjs-link-out',
        "outside the model's folder",
      ],
      [
        'a shard that is a symlink to /dev/zero',
        'tfjsDevZero',
        'tfjs-dev-zero',
        "outside the model's folder",
      ],
      ['a shard that is a FIFO', 'tfjsFifo', 'tfjs-fifo', 'is not a regular file'],
      ['one shard listed 1,500 times', 'tfjsRepeated', 'tfjs-repeated', 'listed more than once'],
      ['one shard spelled two ways', 'tfjsSpelledTwice', 'tfjs-spelled-twice', 'listed more than once'],
      ['a shard that is a symlink to another shard', 'tfjsAlias', 'tfjs-alias', 'is the same file as'],
      ['the model.json as its own shard', 'tfjsSelf', 'tfjs-self', 'is the same file as'],
      [
        'a shard longer than its manifest',
        'tfjsLongShard',
        'tfjs-long-shard',
        'longer than the manifest declares',
      ],
    ] as const
  ).map(
    ([what, input, folder, problem]): Row => ({
      command: 'inspect',
      what: `TF.js: ${what}`,
      argv: (i) => ['inspect', i[input]],
      message: () => says(`${folder}/model.json`, problem),
    }),
  ),
  ...rowsOf('inspect', [
    ['unknown option', (i) => ['inspect', i.model, '--frobnicate'], "unknown option '--frobnicate'"],
  ]),
  ...rowsOf('prune', [
    [
      'an option value with a line break',
      (i, out) => [...prune(i, out), '--sparsity', '0.5\nx'],
      "'--sparsity <s>' argument '0.5\\nx' is invalid",
    ],
    [
      'an option value with terminal escape bytes',
      (i, out) => [...prune(i, out), '--method', '\u001b[31mred\u0007'],
      "unknown method '\\u001b[31mred\\u0007'",
    ],
    [
      'a misspelt option (commander suggests on a second line)',
      (i, out) => [...prune(i, out), '--methd', 'ec'],
      "unknown option '--methd' (Did you mean --method?)",
    ],
  ]),
  {
    command: 'prune',
    what: 'a TF.js output whose shard exists (refused before pruning)',
    argv: (i, out) =>
      commandLine('prune', [i.model], { calib: i.nan, quiet: true, o: path.join(out, 'model.json') }),
    // the calibration data is bad too: the shard is refused first, so the check comes before the data
    message: (_, out) => says(path.join(out, 'group1-shard1of1.bin'), 'already exists'),
    existing: ['group1-shard1of1.bin'],
  },
  // ---- an input (a TF.js model's shard included) is never an output, not even with --force
  {
    command: 'export',
    what: "--force -o the model's own TF.js shard",
    argv: (i) => ['export', i.tfjsGood, '--force', '-o', shardOf(i.tfjsGood)],
    message: (i) => says(shardOf(i.tfjsGood), 'is also an input'),
  },
  {
    command: 'score',
    what: "--force -o the model's own TF.js shard",
    argv: (i) =>
      commandLine('score', [i.tfjsGood], {
        calib: i.tfjsGoodCalib,
        quiet: true,
        force: true,
        o: shardOf(i.tfjsGood),
      }),
    message: (i) => says(shardOf(i.tfjsGood), 'is also an input'),
  },
  // ---- convert
  ...rowsOf('convert', [
    [
      'truncated .onnx',
      (i, out) => ['convert', i.onnxTruncated, '-o', path.join(out, 'm.safetensors')],
      'truncated.onnx',
      'not a valid ONNX file',
    ],
    [
      'output with an unknown extension',
      (i, out) => ['convert', i.model, '-o', path.join(out, 'm.txt')],
      'm.txt',
      "extension '.txt'",
    ],
    [
      'output equal to the input',
      (i) => ['convert', i.model, '--force', '-o', i.model],
      'model.onnx',
      'is also an input',
    ],
  ]),
  // ---- train, finetune, sweep, demo
  ...rowsOf('train', [
    [
      'no labels',
      (i, out) => ['train', '--data', i.x, '--quiet', '-o', path.join(out, 't.onnx')],
      'x.npy',
      'training needs labels',
    ],
    [
      'unknown activation',
      (i, out) =>
        commandLine('train', [], { data: i.x, labels: i.y, activation: 'foo', o: path.join(out, 't.onnx') }),
      '--activation',
      "unknown activation 'foo'",
    ],
    [
      'NaN data',
      (i, out) =>
        commandLine('train', [], { data: i.nan, labels: i.y, quiet: true, o: path.join(out, 't.onnx') }),
      'nan.npy',
      'sample 5, feature 3',
    ],
    [
      '--layers not starting at the feature count',
      (i, out) => train(i, out, '--layers', '5,3'),
      'x.npy',
      '--layers starts with 5 inputs',
      '12 features',
    ],
    [
      '--layers 12,200000000,3 (memory estimate, not an allocation failure)',
      (i, out) => train(i, out, '--layers', '12,200000000,3'),
      'x.npy',
      'training 12-200000000-3 needs about',
      'GiB of memory (have',
    ],
  ]),
  {
    command: 'finetune',
    what: 'more memory than ECPRUNE_MEMORY_LIMIT',
    argv: (i, out) =>
      commandLine('finetune', [i.model], {
        data: i.x,
        labels: i.y,
        quiet: true,
        o: path.join(out, 'f.onnx'),
      }),
    env: { ECPRUNE_MEMORY_LIMIT: '1000' },
    message: () => says('model.onnx', 'fine-tuning 12-', 'needs about', 'ECPRUNE_MEMORY_LIMIT'),
  },
  ...rowsOf('finetune', [
    [
      'wrong feature count',
      (i, out) =>
        commandLine('finetune', [i.model], {
          data: i.wide,
          labels: i.y,
          quiet: true,
          o: path.join(out, 'f.onnx'),
        }),
      'wide.npy',
      '13',
      '12',
    ],
    [
      'labels out of range',
      (i, out) =>
        commandLine('finetune', [i.model], {
          data: i.x,
          labels: i.yOutOfRange,
          quiet: true,
          o: path.join(out, 'f.onnx'),
        }),
      'y-out-of-range.npy',
      'row 9',
      'out of range',
    ],
  ]),
  ...rowsOf('sweep', [
    [
      'test labels out of range',
      (i, out) =>
        commandLine('sweep', [i.model], {
          calib: i.x,
          data: i.x,
          labels: i.yOutOfRange,
          methods: 'magnitude',
          sparsities: '0.5',
          quiet: true,
          o: path.join(out, 'report'),
        }),
      'y-out-of-range.npy',
      'row 9',
      'out of range',
    ],
    [
      'NaN calibration data',
      (i, out) =>
        commandLine('sweep', [i.model], {
          calib: i.nan,
          data: i.x,
          labels: i.y,
          quiet: true,
          o: path.join(out, 'report'),
        }),
      'nan.npy',
      'sample 5, feature 3',
    ],
    [
      'sparsities out of range',
      (i, out) =>
        commandLine('sweep', [i.model], {
          calib: i.x,
          data: i.x,
          sparsities: '0.5,1.5',
          o: path.join(out, 'report'),
        }),
      '--sparsities',
      "'1.5'",
    ],
    [
      'wrong feature count',
      (i, out) =>
        commandLine('sweep', [i.model], {
          calib: i.wide,
          data: i.x,
          labels: i.y,
          quiet: true,
          o: path.join(out, 'report'),
        }),
      'wide.npy',
      '13',
      '12',
    ],
  ]),
  ...rowsOf('demo', [
    [
      'negative epochs',
      (_, out) => ['demo', '--epochs', '-1', '-o', path.join(out, 'demo')],
      '--epochs',
      "'-1'",
    ],
  ]),
];

/** The commands the CLI registers (from its help), so a new command without rows is noticed. */
async function registeredCommands(): Promise<string[]> {
  const { stdout } = await cli('--help');
  const section = stdout.slice(stdout.indexOf('Commands:'));
  return [...section.matchAll(/^ {2}([a-z][\w-]*)/gm)].map((m) => m[1]).filter((name) => name !== 'help');
}

describe('bad input: one line naming the file and the problem, exit 2, inputs untouched, no output', () => {
  const before = snapshot(inputsDir);

  it('has rows for every registered command and at least 40 rows', async () => {
    assert.ok(ROWS.length >= 40, `${ROWS.length} rows`);
    const covered = new Set(ROWS.map((row) => row.command));
    for (const command of await registeredCommands()) {
      assert.ok(covered.has(command), `no bad-input row for the command '${command}'`);
    }
  });

  it('the good inputs work (so that every failure below is the bad input)', async () => {
    const out = path.join(root, 'good');
    mkdirSync(out);
    const run = await cli(
      ...commandLine('prune', [inputs.model], {
        calib: inputs.x,
        labels: inputs.y,
        quiet: true,
        o: path.join(out, 'p.onnx'),
      }),
    );
    assert.equal(run.code, 0, run.stderr);
    const scored = await cli(
      ...commandLine('score', [inputs.model], { calib: inputs.xy, quiet: true, o: path.join(out, 's.npz') }),
    );
    assert.equal(scored.code, 0, scored.stderr);
    const evaluated = await cli(
      ...commandLine('eval', [inputs.model], { data: inputs.x, labels: inputs.y, json: true }),
    );
    assert.equal(evaluated.code, 0, evaluated.stderr);
  });

  ROWS.forEach((row, index) => {
    it(`${row.command}: ${row.what}`, { todo: row.todo }, async () => {
      const out = path.join(root, `out-${index}`);
      mkdirSync(out);
      for (const name of row.existing ?? []) {
        if (name.endsWith('/')) mkdirSync(path.join(out, name));
        else writeFileSync(path.join(out, name), 'precious');
      }
      const outBefore = snapshot(out);
      const saved = { ...process.env };
      Object.assign(process.env, row.env);
      let run: Awaited<ReturnType<typeof cli>>;
      try {
        run = await cli(...row.argv(inputs, out));
      } finally {
        for (const key of Object.keys(row.env ?? {})) {
          if (saved[key] === undefined) delete process.env[key];
          else process.env[key] = saved[key];
        }
      }
      const stderr = run.stderr.trimEnd();
      assert.deepEqual(snapshot(out), outBefore, 'the output folder changed');
      assert.deepEqual(
        snapshot(inputsDir),
        before,
        'an input changed, or a file appeared next to the inputs',
      );
      assert.equal(run.code, 2, `exit code; stderr: ${run.stderr}`);
      assert.ok(!stderr.includes('\n'), `more than one line on stderr:\n${run.stderr}`);
      assert.match(stderr, /^ecprune: /);
      assert.ok(
        stderr.length < 600,
        `a long error line (${stderr.length} characters): ${stderr.slice(0, 600)}`,
      );
      assert.doesNotMatch(stderr, /\n\s+at |internal error/, 'a stack trace or an internal error');
      assert.match(stderr, row.message(inputs, out));
    });
  });

  it('sweep --force refuses a report folder that holds an input (--train), before any work', async () => {
    const report = path.join(root, 'sweep-train', 'report');
    mkdirSync(report, { recursive: true });
    const train = path.join(report, 'results.csv');
    const rows = Array.from({ length: 64 }, (_, r) =>
      Array.from({ length: 12 }, (_, c) => String((r * 7 + c) % 5)).join(','),
    );
    writeFileSync(train, `${rows.join('\n')}\n`);
    const before = snapshot(report);
    const argv = commandLine('sweep', [inputs.model], { calib: inputs.x, data: inputs.x, labels: inputs.y });
    const run = await cli(
      ...argv,
      '--train',
      train,
      '--train-labels',
      inputs.y,
      '--methods',
      'magnitude',
      '--sparsities',
      '0.5',
      '--finetune-epochs',
      '1',
      '--quiet',
      '--force',
      '-o',
      report,
    );
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr.trim(), says('report', 'holds an input', 'results.csv'));
    assert.deepEqual(snapshot(report), before);
  });

  it('--debug adds the stack trace', async () => {
    const run = await cli('--debug', 'inspect', inputs.onnxTruncated);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /\n\s+at /);
  });
});

describe('outputs in folders that do not exist yet', () => {
  it('are created with their folders, for model and score outputs alike', async () => {
    const out = path.join(root, 'nested', 'a', 'b');
    const pruned = await cli(
      ...commandLine('prune', [inputs.model], { calib: inputs.x, quiet: true, o: path.join(out, 'p.onnx') }),
    );
    assert.equal(pruned.code, 0, pruned.stderr);
    const scored = await cli(
      ...commandLine('score', [inputs.model], {
        calib: inputs.x,
        quiet: true,
        o: path.join(out, 'c', 's.npz'),
      }),
    );
    assert.equal(scored.code, 0, scored.stderr);
    assert.ok(statSync(path.join(out, 'p.onnx')).size > 0);
    assert.deepEqual(readdirSync(out).sort(), ['c', 'p.onnx']);
  });

  it('are not created when the run fails', async () => {
    const out = path.join(root, 'never', 'made');
    const run = await cli(
      ...commandLine('prune', [inputs.model], {
        calib: inputs.nan,
        quiet: true,
        o: path.join(out, 'p.onnx'),
      }),
    );
    assert.equal(run.code, 2);
    assert.throws(() => statSync(path.join(root, 'never')), /ENOENT/);
  });
});
