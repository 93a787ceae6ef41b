/** The real consumers of written models: onnxruntime-node for .onnx, tfjs-layers' loadLayersModel for model.json. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as ort from 'onnxruntime-node';
import type { Matrix } from '../../src/model/matrix.js';

tf.env().set('IS_TEST', true);

/** The consumer's outputs for a written `file` on the rows of `x`, each of the per-sample `inputShape`. */
export async function consumerOutputs(
  file: string,
  x: Matrix,
  inputShape: readonly number[],
  ioDtype: 'float32' | 'float64' = 'float32',
): Promise<Float64Array> {
  if (!file.endsWith('.json')) {
    const session = await ort.InferenceSession.create(file);
    const data = ioDtype === 'float64' ? Float64Array.from(x.data) : x.data;
    const input = new ort.Tensor(ioDtype, data, [x.rows, ...inputShape]);
    const out = await session.run({ [session.inputNames[0]]: input });
    const y = Float64Array.from(out[session.outputNames[0]].data as Float32Array);
    await session.release();
    return y;
  }
  const json = JSON.parse(readFileSync(file, 'utf8'));
  const weights = json.weightsManifest.flatMap((group: { paths: string[] }) =>
    group.paths.map((p) => readFileSync(path.join(path.dirname(file), p))),
  );
  const buffer = Buffer.concat(weights);
  const model = await tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights),
      weightData: buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength),
    }),
  );
  const prediction = model.predict(tf.tensor(x.data, [x.rows, ...inputShape])) as tf.Tensor;
  const y = Float64Array.from(await prediction.data());
  prediction.dispose();
  for (const layer of model.layers) layer.dispose?.();
  return y;
}
