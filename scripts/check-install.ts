/**
 * Installs ecprune as a new user would and checks that it works there: packs this repository,
 * installs the tarball into a fresh project with npm's default settings (no flags, no project
 * config, nothing but the npm registry on the network), compiles a strict TypeScript consumer
 * against the published types (no skipLibCheck), then runs `npx ecprune --help` and a prune.
 * Prints the size of the installed node_modules. Run by .ci/run; about a minute with a warm npm
 * cache.
 *
 *   npx tsx scripts/check-install.ts [--keep]
 */
import { execFileSync, type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values: flags } = parseArgs({ options: { keep: { type: 'boolean', default: false } } });

/** npm's defaults: none of the npm_config_* a parent `npm run` exports, no onnxruntime install flag. */
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([name]) => !name.toLowerCase().startsWith('npm_') && !name.startsWith('ONNXRUNTIME_NODE_INSTALL'),
  ),
);

function run(command: string, args: string[], cwd: string): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, env: cleanEnv, encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited ${result.status}\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result;
}

/** The consumer: every entry point, its main functions called with their documented types. */
const CONSUMER = `import { readFile } from 'node:fs/promises';
import { dataForModel, evaluate, loadModel, openDataFile, prune, saveModel } from 'ecprune';
import { type Model, readNpz } from 'ecprune/core';
import { loadEcsr } from 'ecprune/runtime';

const model = await loadModel('model.onnx');
const calibration = dataForModel(model, await openDataFile('calib.npy'));
const { model: pruned } = await prune(model.graph, calibration, { method: 'ec', sparsity: 0.5 });
const layers: Model['layers'] = pruned.layers;
await saveModel('pruned-lib.onnx', pruned, { like: model });
console.log(JSON.stringify({ layers: layers.length, evaluation: await evaluate(pruned, calibration) }));
export const unused = [readNpz, loadEcsr, readFile];
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    skipLibCheck: false,
    noEmit: false,
    outDir: 'out',
    types: ['node'],
  },
  files: ['consumer.ts'],
};

const work = mkdtempSync(path.join(tmpdir(), 'ecprune-install-'));
try {
  console.log(`packing into ${work}`);
  run('npm', ['pack', '--pack-destination', work], ROOT);
  const tarball = readdirSync(work).find((name) => name.endsWith('.tgz'));
  if (tarball === undefined) throw new Error('npm pack wrote no .tgz');

  const project = path.join(work, 'project');
  execFileSync('mkdir', [project]);
  writeFileSync(
    path.join(project, 'package.json'),
    `${JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2)}\n`,
  );
  const devPackage = (name: string) =>
    `${name}@${JSON.parse(execFileSync('npm', ['pkg', 'get', `devDependencies.${name}`], { cwd: ROOT, encoding: 'utf8' }))}`;
  const install = run(
    'npm',
    ['install', path.join(work, tarball), devPackage('typescript'), devPackage('@types/node')],
    project,
  );
  console.log(`npm install:\n${install.stdout}${install.stderr}`);
  const size = execFileSync('du', ['-sm', 'node_modules'], { cwd: project, encoding: 'utf8' }).split('\t')[0];
  const installed = (name: string) => readdirSync(path.join(project, 'node_modules')).includes(name);
  console.log(
    `installed: node_modules ${size} MB (with typescript and @types/node); ` +
      `onnxruntime-node ${installed('onnxruntime-node') ? 'installed' : 'left out'}, ` +
      `onnxruntime-web ${installed('onnxruntime-web') ? 'installed' : 'left out'}, ` +
      `mnist ${installed('mnist') ? 'installed (it should not be)' : 'not installed'}`,
  );
  if (installed('mnist')) throw new Error('the demo data (mnist) was installed for a user');

  for (const file of ['model.onnx', 'calib.npy']) {
    copyFileSync(path.join(ROOT, 'web', 'demo', file), path.join(project, file));
  }
  writeFileSync(path.join(project, 'consumer.ts'), CONSUMER);
  writeFileSync(path.join(project, 'tsconfig.json'), `${JSON.stringify(TSCONFIG, null, 2)}\n`);
  run('npx', ['tsc', '-p', '.'], project);
  console.log('tsc --strict (no skipLibCheck): the consumer compiles');
  const library = run('node', ['out/consumer.js'], project);
  console.log(
    `the consumer runs: ${library.stdout.trim()}${library.stderr ? `\n  stderr: ${library.stderr.trim()}` : ''}`,
  );

  const help = run('npx', ['ecprune', '--help'], project);
  if (!help.stdout.includes('prune'))
    throw new Error(`npx ecprune --help printed no commands:\n${help.stdout}`);
  console.log('npx ecprune --help: ok');
  const pruned = run(
    'npx',
    [
      'ecprune',
      'prune',
      'model.onnx',
      '--calib',
      'calib.npy',
      '--sparsity',
      '0.9',
      '-o',
      'pruned.onnx',
      '--quiet',
    ],
    project,
  );
  console.log(`npx ecprune prune: ok${pruned.stderr ? `; stderr: ${pruned.stderr.trim()}` : ''}`);
  const inspect = run('npx', ['ecprune', 'inspect', 'pruned.onnx', '--json'], project);
  const sparsity = JSON.parse(inspect.stdout).sparsity;
  if (!(Math.abs(sparsity - 0.9) < 0.01))
    throw new Error(`the pruned model's sparsity is ${sparsity}, not 0.9`);
  console.log(`npx ecprune inspect pruned.onnx: sparsity ${sparsity}`);

  // a PyTorch checkpoint, as torch.save wrote it (test/fixtures/torch)
  for (const file of ['relu_f32.pt', 'relu_f32.input.npy']) {
    copyFileSync(path.join(ROOT, 'test', 'fixtures', 'torch', file), path.join(project, file));
  }
  const args = [
    '--arch',
    'relu',
    '--calib',
    'relu_f32.input.npy',
    '--sparsity',
    '0.5',
    '-o',
    'pruned.pt',
    '--quiet',
  ];
  run('npx', ['ecprune', 'prune', 'relu_f32.pt', ...args], project);
  const pt = JSON.parse(run('npx', ['ecprune', 'inspect', 'pruned.pt', '--json'], project).stdout);
  if (!(Math.abs(pt.sparsity - 0.5) < 0.02))
    throw new Error(`pruned.pt has sparsity ${pt.sparsity}, not 0.5`);
  console.log(`npx ecprune prune relu_f32.pt --arch relu ...: pruned.pt at sparsity ${pt.sparsity}`);
} finally {
  if (flags.keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
