import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inMemoryDataset } from '../../src/data/dataset.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { matrix } from '../../src/model/matrix.js';
import type { Mlp } from '../../src/model/mlp.js';
import { compress } from '../../src/pipeline/compress.js';
import { loadEcsr } from '../../src/runtime/index.js';
import { randomMatrix, randomMlp } from '../helpers/random.js';

/** Samples labelled by the arg-max of a seeded teacher network: the teacher is 100 % accurate on them. */
function teacherTask(samples: number, seed: number) {
  const teacher = randomMlp([16, 32, 32, 4], { kind: 'relu' }, seed);
  const labelled = async (n: number, dataSeed: number, name: string) => {
    const x = randomMatrix(n, 16, dataSeed);
    const y = await forward(teacher, x, tsGemm);
    const labels = Int32Array.from({ length: n }, (_, r) => argMax(y.data.subarray(4 * r, 4 * r + 4)));
    return inMemoryDataset(x, { kind: 'classes', values: labels }, name);
  };
  return { teacher, labelled, samples };
}

function argMax(row: ArrayLike<number>): number {
  let best = 0;
  for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
  return best;
}

/** Top-1 accuracy of the `.ecsr` file as the runtime runs it: independent of the pipeline's evaluation. */
function runtimeAccuracy(file: Uint8Array, x: { rows: number; cols: number; data: Float32Array }, labels: Int32Array) {
  const model = loadEcsr(file);
  const out = model.run(x.data, x.rows);
  let right = 0;
  for (let r = 0; r < x.rows; r++) right += +(argMax(out.subarray(4 * r, 4 * r + 4)) === labels[r]);
  return right / x.rows;
}

describe('compress', () => {
  it('smoke', async () => {
    const task = teacherTask(600, 1);
    const train = await task.labelled(800, 2, 'train');
    const validation = await task.labelled(400, 3, 'validation');
    const t0 = performance.now();
    const result = await compress(task.teacher, train, {
      validation,
      maxAccuracyDrop: 3,
      finetuneEpochs: 2,
      centroidEpochs: 1,
      sparsityProbes: 3,
      gemm: tsGemm,
      onStep: (s, n, what) => console.log(s, n, what),
      onProbe: (p) => console.log(p),
    });
    console.log(performance.now() - t0, result.stages, result.sparsity, result.bits);
  });
});
