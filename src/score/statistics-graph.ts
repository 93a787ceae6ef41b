/**
 * The calibration pass of statistics.ts with each batch run as one ONNX graph (emitted from the
 * model's graph by src/graph/emit/calibration.ts) on a
 * backend that runs graphs. The same sums and the same float64 accumulation across batches (about
 * a shift c from the first 256 samples rather than the first batch); only the per-batch float32
 * work moves into the graph. `collectStatistics` picks this path when it applies; its own
 * GEMM-by-GEMM path stays the reference the tests compare against.
 */
import type { Dataset } from '../data/dataset.js';
import type { Gemm, GraphSession, GraphTensor } from '../gemm/gemm.js';
import {
  calibrationGraph,
  GRAPH_INPUT,
  GRAPH_TARGETS,
  graphGradient,
  graphM0,
  graphMean,
  graphMoments,
  graphShift,
} from '../graph/emit/calibration.js';
import type { Graph } from '../graph/graph.js';
import { type LossKind, requireTargets, targetMatrix } from '../graph/loss.js';
import { type Matrix, rowSlice } from '../model/matrix.js';
import { timePhase } from '../timings.js';
import type { CalibrationStatistics, LayerStatistics, StatisticsOptions } from './calibration-statistics.js';

/**
 * Largest B·K·n (floats) of a graph run's (B x K x n) cotangent tensor, 20 MiB: batches are run in
 * row slices below it. Measured on 784-1024-1024-10 (bench/ANALYSIS.md, P1): slices of 500 rows
 * (20 MB) ran faster than 1000 (41 MB). 20 MiB rather than 5·10⁶ floats lets that network's
 * batches of 1,000 run as 512 + 488 rows: two runs, where 488 + 488 + 24 took three.
 */
const COTANGENT_FLOATS = 5 * 2 ** 20;

/** What the graph pass accumulates into (the caller allocated it). */
export interface GraphAccumulators {
  readonly layers: readonly LayerStatistics[];
  readonly moments: boolean;
  readonly lossGradient?: LossKind;
  /** accumulate these layers only */
  readonly wanted: (l: number) => boolean;
}

/** Runs the calibration pass as one graph per batch slice; returns the number of samples. */
export async function collectWithGraph(
  model: Graph,
  calibration: Dataset,
  createSession: (model: Uint8Array) => Promise<GraphSession>,
  /** for the one-sample forward pass the emission reads shapes and constants from */
  gemm: Gemm,
  accumulators: GraphAccumulators,
  options: Pick<StatisticsOptions, 'onProgress' | 'timings'> & { batchSize: number },
): Promise<CalibrationStatistics['samples']> {
  // building and compiling the graph (onnxruntime prepacks the weights) is booked as `compile`
  const { graph, session } = await timePhase(options.timings, 'compile', async () => {
    const options = { moments: accumulators.moments, lossGradient: accumulators.lossGradient };
    const graph = await calibrationGraph(model, options, gemm);
    return { graph, session: await createSession(graph.model) };
  });
  try {
    const sliceRows = Math.max(1, Math.floor(COTANGENT_FLOATS / (graph.outputs * graph.cotangentWidth)));
    const shifts: GraphTensor[] = [];
    let done = 0;
    for await (const batch of calibration.batches(options.batchSize, { reuseBuffers: true })) {
      const loss = accumulators.lossGradient;
      const targets =
        loss && targetMatrix(requireTargets(batch.y, loss, calibration.name), graph.classes, loss);
      for (let start = 0; start < batch.x.rows; start += sliceRows) {
        const rows = Math.min(sliceRows, batch.x.rows - start);
        const feeds: Record<string, GraphTensor> = { [GRAPH_INPUT]: rowsTensor(batch.x, start, rows) };
        if (targets) feeds[GRAPH_TARGETS] = rowsTensor(targets, start, rows);
        if (accumulators.moments) {
          if (shifts.length === 0) {
            const first = () => firstShifts(session, feeds, accumulators.layers, graph.momentLayers);
            shifts.push(...(await timePhase(options.timings, 'forward', first)));
          }
          graph.momentLayers.forEach((l, k) => {
            feeds[graphShift(l)] = shifts[k];
          });
        }
        const result = await timePhase(options.timings, 'statistics', () => session.run(feeds, graph.sums));
        accumulate(result, accumulators, calibration.samples);
      }
      done += batch.x.rows;
      options.onProgress?.(done, calibration.samples);
    }
    return done;
  } finally {
    await session.release();
  }
}

/**
 * Samples whose mean is the shift c. c only has to be near the mean for the centred sums to avoid
 * float32 cancellation, but the nearer it is, the smaller the per-run float32 sums Σ s (a - c) and
 * their rounding: against float64 (bench N = 1,000), the worst bias shift δ of 784-300-100-10's
 * middle layer was 3.6e-5 off with 64 samples, 1.5e-5 with 256 or 1,000. A run on 256 rows costs
 * a fraction of one on a whole slice.
 */
const SHIFT_SAMPLES = 256;

/**
 * The shift c of every layer: the mean of its input over the first `SHIFT_SAMPLES` samples, from a
 * graph run with c = 0 whose other outputs are dropped. Stored in the accumulators as the float32
 * value the graph subtracts, since the sums are about exactly that c.
 */
async function firstShifts(
  session: GraphSession,
  feeds: Readonly<Record<string, GraphTensor>>,
  layers: readonly LayerStatistics[],
  momentLayers: readonly number[],
): Promise<GraphTensor[]> {
  const head: Record<string, GraphTensor> = {};
  for (const [name, { data, dims }] of Object.entries(feeds)) {
    const rows = Math.min(SHIFT_SAMPLES, dims[0]);
    head[name] = { data: data.subarray(0, rows * dims[1]), dims: [rows, dims[1]] };
  }
  for (const l of momentLayers) {
    head[graphShift(l)] = { data: new Float32Array(layers[l].shift.length), dims: [layers[l].shift.length] };
  }
  const means = await session.run(head, momentLayers.map(graphMean));
  return momentLayers.map((l) => {
    const mean = means[graphMean(l)];
    layers[l].shift.set(mean);
    return { data: mean, dims: [mean.length] };
  });
}

/** Rows [start, start + rows) of `m` as a graph input (a view, no copy). */
function rowsTensor(m: Matrix, start: number, rows: number): GraphTensor {
  const { data, cols } = rowSlice(m, start, start + rows);
  return { data, dims: [rows, cols] };
}

/** Adds one graph run's float32 sums to the float64 accumulators. */
function accumulate(
  result: Record<string, Float32Array>,
  accumulators: GraphAccumulators,
  total: number,
): void {
  accumulators.layers.forEach((stats, l) => {
    if (!accumulators.wanted(l)) return;
    const moments = result[graphMoments(l)];
    if (accumulators.moments && moments !== undefined) addMoments(stats, moments, result[graphM0(l)]);
    const gradient = result[graphGradient(l)];
    if (accumulators.lossGradient && gradient !== undefined)
      addScaled(stats.lossGradient!, gradient, 1 / total);
  });
}

/**
 * m1 += M[:, :n_in], m2 += M[:, n_in:], m0 += Σ_n s. Its own function: inlined into a loop body
 * the same sums measured 7-14× slower (bench/ANALYSIS.md, P7).
 */
function addMoments(stats: LayerStatistics, M: Float32Array, m0Batch: Float32Array): void {
  const { m0, m1, m2 } = stats;
  const nIn = stats.shift.length;
  for (let i = 0; i < m0.length; i++) {
    m0[i] += m0Batch[i];
    const row = i * 2 * nIn;
    const offset = i * nIn;
    for (let j = 0; j < nIn; j++) {
      m1[offset + j] += M[row + j];
      m2[offset + j] += M[row + nIn + j];
    }
  }
}

function addScaled(sum: Float64Array, values: Float32Array, scale: number): void {
  for (let i = 0; i < sum.length; i++) sum[i] += values[i] * scale;
}
