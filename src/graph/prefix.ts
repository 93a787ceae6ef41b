/**
 * A frozen prefix: the ops before the first fully-connected layer that the graph does not
 * differentiate (convolutions, pooling, embeddings ...). They only produce the layers' input, so
 * they run forward-only in onnxruntime as a feature extractor, and every data set given to the
 * pruned part is seen through them. The written model keeps the prefix as it was.
 */
import type { Batch, Dataset } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import type { Gemm, GraphSession } from '../gemm/gemm.js';
import { sizeOf } from './tensor.js';

export interface FrozenPrefix {
  /** an ONNX model from the model's input to the fully-connected part's input */
  readonly onnx: Uint8Array;
  readonly inputName: string;
  /** the model input's per-sample shape (the data set's rows are reshaped to it) */
  readonly inputShape: readonly number[];
  readonly outputName: string;
}

/** `data` as the fully-connected part sees it: every batch run through the prefix. */
export function throughPrefix(data: Dataset, prefix: FrozenPrefix, gemm: Gemm, features: number): Dataset {
  const inputFeatures = sizeOf(prefix.inputShape);
  if (data.features !== inputFeatures) {
    throw new EcpruneError(
      'input',
      `the data has ${data.features} features per sample, the model takes ${inputFeatures} ([${prefix.inputShape}])`,
      data.name,
    );
  }
  const createSession = gemm.createSession?.bind(gemm);
  if (createSession === undefined) {
    throw new EcpruneError(
      'unsupported',
      `the model has a frozen prefix (ops before its first fully-connected layer) that needs onnxruntime, and the '${gemm.name}' backend has none`,
    );
  }
  let session: Promise<GraphSession> | undefined;
  return {
    ...data,
    features,
    batches(batchSize, options) {
      const source = data.batches(batchSize, options);
      return (async function* () {
        session ??= createSession(prefix.onnx);
        const run = await session;
        for await (const batch of source) {
          const dims = [batch.x.rows, ...prefix.inputShape];
          const out = await run.run({ [prefix.inputName]: { data: batch.x.data, dims } }, [
            prefix.outputName,
          ]);
          const x = { rows: batch.x.rows, cols: features, data: out[prefix.outputName] };
          yield { x, y: batch.y } satisfies Batch;
        }
      })();
    },
  };
}
