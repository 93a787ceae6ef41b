/**
 * One method list (src/pipeline/variant-name.ts METHOD_LIST): the README's table, `prune --help`
 * and `sweep --help` name the same methods and modifiers; every name, and a variant for every
 * modifier, runs in `prune` and in `sweep` on the same small chain, and both record it by the
 * same name; dense-small, not a pruning of the given model, is refused by prune saying so.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createRandom } from '../../src/data/random.js';
import { writeNpy } from '../../src/io/npy.js';
import { METHOD_LIST, MODIFIER_NAMES, MODIFIERS } from '../../src/pipeline/variant-name.js';
import { cli, FIXTURES, tempDir } from './run.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const MODEL = path.join(FIXTURES, 'onnx', 'mlp_activations.onnx');
const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const NAMES = METHOD_LIST.map((m) => m.name);
const PRUNING = NAMES.filter((name) => name !== 'dense-small');
/** One name per modifier (in MODIFIER_NAMES' order), each on a base it combines with. */
const VARIANTS = [
  'ec+loss',
  'ec+probes2',
  'ec+sequential',
  'magnitude+steps2',
  'ec+refit2',
  'ec+2:4',
  'obd+neuron',
  'ec+alpha',
  'ec+alpha0',
  'ec+magbudget',
  'nonlinear+refit2',
];

/** Calibration inputs and class labels for the fixture chain (12 features, 3 outputs). */
function writeData(dir: string) {
  const random = createRandom(11);
  const samples = 24;
  const x = Float32Array.from({ length: samples * 12 }, () => random.normal());
  const y = Int32Array.from({ length: samples }, () => random.int(3));
  const files = { x: path.join(dir, 'x.npy'), y: path.join(dir, 'y.npy') };
  writeFileSync(files.x, writeNpy({ shape: [samples, 12], data: x }));
  writeFileSync(files.y, writeNpy({ shape: [samples], data: y }));
  return files;
}

describe('one method list', () => {
  it("the README's table lists the methods of the list, in its order, with its words", () => {
    const section = README.slice(README.indexOf('**Methods.**'), README.indexOf('**Per layer**'));
    const rows = [...section.matchAll(/^\| `([^`]+)` \| (.+) \|$/gm)];
    assert.deepEqual(
      rows.map((row) => row[1]),
      NAMES,
      'README methods',
    );
    rows.forEach((row, k) => {
      assert.equal(row[2].replaceAll('\\|', '|'), METHOD_LIST[k].summary, `README: ${row[1]}`);
    });
    const modifiers = /takes modifiers after `\+`[^:]*: ([^(]+)\(/s.exec(section);
    assert.deepEqual(
      modifiers?.[1].split(',').map((m) => m.trim().replaceAll('`', '')),
      MODIFIER_NAMES,
      'README modifiers',
    );
  });

  it('MODIFIER_NAMES spells each rule of parseVariant once, and the variants below use each', () => {
    assert.equal(MODIFIER_NAMES.length, MODIFIERS.length, 'one name per rule');
    MODIFIER_NAMES.forEach((modifier, k) => {
      const written = modifier.replace(/<[a-z]>/g, '2').replace('2:2', '2:4');
      assert.deepEqual(
        MODIFIERS.flatMap(([pattern], rule) => (pattern.test(written) ? [rule] : [])),
        [k],
        `${modifier} (${written}) matches its rule only`,
      );
      const spelled = new RegExp(`\\+${modifier.replace(/<[a-z]>/g, '\\d+')}(\\+|$)`);
      assert.match(VARIANTS[k], spelled, `a variant with ${modifier}`);
    });
  });

  it('prune --help and sweep --help name every method and modifier', async () => {
    for (const command of ['prune', 'sweep']) {
      // as a user sees it: commander writes a command's help straight to the process's stdout
      const stdout = execFileSync(process.execPath, ['--import', 'tsx', MAIN, command, '--help'], {
        encoding: 'utf8',
      });
      const text = stdout.replace(/\s+/g, ' ');
      for (const name of command === 'prune' ? PRUNING : NAMES)
        assert.match(text, new RegExp(`[ (]${name.replace('+', '\\+')}[,;) ]`), `${command} --help: ${name}`);
      for (const modifier of MODIFIER_NAMES)
        assert.ok(text.includes(modifier), `${command} --help: ${modifier}`);
    }
  });

  it('prune takes every name and variant, and records it by that name', async () => {
    const dir = tempDir();
    const data = writeData(dir);
    for (const name of [...PRUNING, ...VARIANTS]) {
      const out = path.join(dir, `${name.replaceAll(/[+:]/g, '_')}.onnx`);
      const run = await cli(
        'prune',
        MODEL,
        '--method',
        name,
        '--calib',
        data.x,
        '--calib-labels',
        data.y,
        '--sparsity',
        '0.5',
        '--quiet',
        '-o',
        out,
      );
      assert.equal(run.code, 0, `${name}: ${run.stderr}`);
      // neuron removal counts units, weight pruning weights
      const counted = name.endsWith('+neuron') ? 'removed' : 'pruned';
      assert.ok(run.stdout.startsWith(`${name}, global scope: ${counted}`), `${name}: ${run.stdout}`);
      // ONNX metadata_props: key (field 1), then value (field 2: 0x12, its length, its bytes)
      const stored = readFileSync(out).toString('latin1');
      assert.ok(
        stored.includes(`ecprune_method\x12${String.fromCharCode(name.length)}${name}`),
        `${name}: metadata`,
      );
    }
    const refused = await cli(
      'prune',
      MODEL,
      '--calib',
      data.x,
      '--method',
      'dense-small',
      '-o',
      path.join(dir, 'd.onnx'),
    );
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr.trim(),
      /^ecprune: .*'dense-small' is not a pruning of the given model: it trains a new dense network/,
    );
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  });

  it('sweep takes every name and the same variants, one row each by that name', async () => {
    const dir = tempDir();
    const data = writeData(dir);
    const report = path.join(dir, 'report');
    const methods = [...NAMES, ...VARIANTS];
    const flags = {
      '--calib': data.x,
      '--calib-labels': data.y,
      '--data': data.x,
      '--labels': data.y,
      '--methods': methods.join(','),
      '--sparsities': '0.5',
      '--seeds': '1',
      '--epochs': '1',
      '-o': report,
    };
    const run = await cli('sweep', MODEL, '--quiet', ...Object.entries(flags).flat());
    assert.equal(run.code, 0, run.stderr);
    const { rows } = JSON.parse(readFileSync(path.join(report, 'results.json'), 'utf8')) as {
      rows: { method: string }[];
    };
    assert.deepEqual(
      rows.map((row) => row.method).filter((m) => m !== 'dense'),
      methods,
    );
  });
});
