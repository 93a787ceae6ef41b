// Which step loses precision? ecprune's statistics with the ORT GEMM vs the TS GEMM, against torch float64.
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { openDataFile } from '../../src/node/datasets.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
import { score } from '../../src/prune.js';
import { agreement, readModelDir, readNpyLayers } from '../lib.js';

const [modelDir, dataFile, f64Dir] = process.argv.slice(2);
const mlp = await readModelDir(modelDir);
const ref = await readNpyLayers(f64Dir, 'I', mlp.layers.length);
for (const [name, gemm] of [
  ['ort', await createOrtGemm()],
  ['ts', tsGemm],
] as const) {
  const r = await score(mlp, await openDataFile(dataFile), { method: 'ec', gemm, batchSize: 1000 });
  const per = r.importance.map((l, i) => agreement([l], [ref[i]]).normRelative.toExponential(1));
  console.log(name, 'I vs f64', agreement(r.importance, ref), 'per-layer norm rel', per);
}
