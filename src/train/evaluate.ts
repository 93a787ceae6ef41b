import type { Dataset } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import { defaultGemm } from '../gemm/default.js';
import type { Gemm } from '../gemm/gemm.js';
import { inputSize, type Model } from '../graph/graph.js';
import { type LossKind, lossFor, sampleLosses } from '../graph/loss.js';
import { asGraph, logitsGraph } from '../graph/mlp-graph.js';
import { asMatrix, forward, forwardTrace } from '../graph/run.js';
import { DEFAULT_BATCH_SIZE } from '../score/statistics.js';

export interface EvaluateOptions {
  /** the dense model: report the mean squared difference of the outputs */
  readonly reference?: Model;
  /** default from the labels: class ids → ce, values → mse */
  readonly loss?: LossKind;
  readonly batchSize?: number;
  readonly gemm?: Gemm;
}

/** Each measure is present only when it applies: loss and meanLoss with targets, accuracy with class labels, outputMse with a reference. */
export interface Evaluation {
  readonly samples: number;
  readonly loss?: LossKind;
  /** mean loss over the samples (cross-entropy or MSE) */
  readonly meanLoss?: number;
  /** fraction of samples whose arg-max output is the label (class labels only) */
  readonly accuracy?: number;
  /** mean over samples and outputs of (y - y_reference)² */
  readonly outputMse?: number;
}

function argMax(row: Float32Array): number {
  let best = 0;
  for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
  return best;
}

/** Accuracy and loss on labelled data, and the output error against a reference network. */
export async function evaluate(
  model: Model,
  data: Dataset,
  options: EvaluateOptions = {},
): Promise<Evaluation> {
  const gemm = options.gemm ?? defaultGemm();
  const graph = asGraph(model);
  // cross-entropy is defined on logits: behind a softmax head, the head's input
  const logits = logitsGraph(graph).output;
  if (data.features !== inputSize(graph)) {
    throw new EcpruneError(
      'input',
      `the data has ${data.features} features per sample, the model takes ${inputSize(graph)}`,
      data.name,
    );
  }
  const loss = options.loss ?? (data.targetKind && lossFor(data.targetKind));
  let lossSum = 0;
  let correct = 0;
  let outputErrorSum = 0;
  let samples = 0;
  let outputsPerSample = 0;
  for await (const batch of data.batches(options.batchSize ?? DEFAULT_BATCH_SIZE)) {
    const trace = await forwardTrace(graph, batch.x, gemm);
    const y = trace.output;
    if (batch.y && loss) {
      const scored = loss === 'ce' ? asMatrix(trace.values.get(logits)!) : y;
      for (const l of sampleLosses(scored, batch.y, loss)) lossSum += l;
      if (batch.y.kind === 'classes') {
        for (let n = 0; n < y.rows; n++) {
          if (argMax(y.data.subarray(n * y.cols, (n + 1) * y.cols)) === batch.y.values[n]) correct++;
        }
      }
    }
    if (options.reference) {
      const reference = await forward(options.reference, batch.x, gemm);
      for (let i = 0; i < y.data.length; i++) outputErrorSum += (y.data[i] - reference.data[i]) ** 2;
    }
    samples += batch.x.rows;
    outputsPerSample = y.cols;
  }
  // only the measures that apply, so a printed result shows no `undefined` fields
  return {
    samples,
    ...(data.targetKind && { loss, meanLoss: lossSum / samples }),
    ...(data.targetKind === 'classes' && { accuracy: correct / samples }),
    ...(options.reference && { outputMse: outputErrorSum / Math.max(1, samples * outputsPerSample) }),
  };
}
