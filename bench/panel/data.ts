/**
 * Writes the panel's data sets as .npy files for the PyTorch trainer (train_panel.py): ecprune's
 * built-in sets exactly as `--dataset` opens them, so the networks are trained on the samples the
 * CLI and the library see. Fashion-MNIST is cut to its first 8,000 training and 2,000 test
 * images (the size of the `mnist` set) to keep the panel's training short. The tabular set is
 * synthesised by the trainer itself.
 * Called by bench/panel/run.ts.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Dataset, firstSamples, materialize } from '../../src/data/dataset.js';
import { writeNpy } from '../../src/io/npy.js';
import { openNamedDataset, type Split } from '../../src/node/datasets.js';

const SETS: Record<string, { train?: number; test?: number }> = {
  mnist: {},
  'fashion-mnist': { train: 8000, test: 2000 },
  'diffusion-sorption': {},
};

async function writeArray(file: string, shape: number[], data: Float32Array | Int32Array): Promise<void> {
  const temporary = `${file}.tmp-${process.pid}`;
  await writeFile(temporary, writeNpy({ shape, data }));
  await rename(temporary, file);
}

async function writeSplit(dir: string, split: Split, data: Dataset): Promise<void> {
  const { x, y } = await materialize(data);
  await writeArray(path.join(dir, `x_${split}.npy`), [x.rows, x.cols], x.data);
  if (!y) throw new Error(`${data.name} has no targets`);
  if (y.kind === 'classes') await writeArray(path.join(dir, `y_${split}.npy`), [y.values.length], y.values);
  else await writeArray(path.join(dir, `y_${split}.npy`), [y.values.rows, y.values.cols], y.values.data);
}

/** Writes <root>/<set>/{x,y}_{train,test}.npy for every built-in set whose files are missing. */
export async function writePanelData(root: string): Promise<void> {
  for (const [name, limits] of Object.entries(SETS)) {
    const dir = path.join(root, name);
    if (existsSync(path.join(dir, 'y_test.npy'))) continue;
    await mkdir(dir, { recursive: true });
    for (const split of ['train', 'test'] as const) {
      const data = await openNamedDataset(name, split);
      const limit = limits[split];
      await writeSplit(dir, split, limit ? firstSamples(data, limit) : data);
    }
  }
}
