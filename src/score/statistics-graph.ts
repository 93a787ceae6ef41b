/**
 * The calibration pass of statistics.ts with each batch run as one ONNX graph (ec-graph.ts) on a
 * backend that runs graphs. The same sums and the same float64 accumulation across batches (about
 * a shift c from the first 256 samples rather than the first batch); only the per-batch float32
 * work moves into the graph. `collectStatistics` picks this path when it applies; its own
 * GEMM-by-GEMM path stays the reference the tests compare against.
 */
import type { Dataset } from '../data/dataset.js';
import type { GraphSession, GraphTensor } from '../gemm/gemm.js';
import { type LossKind, requireTargets, targetMatrix } from '../graph/loss.js';
import { type Matrix, rowSlice } from '../model/matrix.js';
import type { Mlp } from '../model/mlp.js';
import { timePhase } from '../timings.js';
import {
  ecGraph,
  GRAPH_INPUT,
  GRAPH_TARGETS,
  graphGradient,
  graphM0,
  graphMean,
  graphMoments,
  graphShift,
} from './ec-graph.js';
import type { CalibrationStatistics, LayerStatistics, StatisticsOptions } from './statistics.js';

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
  mlp: Mlp,
  calibration: Dataset,
  createSession: (model: Uint8Array) => Promise<GraphSession>,
  accumulators: GraphAccumulators,
  options: Pick<StatisticsOptions, 'onProgress' | 'timings'> & { batchSize: number },
): Promise<CalibrationStatistics['samples']> {
  // building and compiling the graph (onnxruntime prepacks the weights) is booked as `compile`
  const { graph, session } = await timePhase(options.timings, 'compile', async () => {
    const graph = ecGraph(mlp, { moments: accumulators.moments, lossGradient: accumulators.lossGradient });
    return { graph, session: await createSession(graph.model) };
  });
  try {
    const sizes = [mlp.layers[0].weight.cols, ...mlp.layers.map((layer) => layer.weight.rows)];
    const outputs = sizes.at(-1)!;
    const widestHidden = Math.max(1, ...sizes.slice(1, -1));
    const sliceRows = Math.max(1, Math.floor(COTANGENT_FLOATS / (outputs * widestHidden)));
    const shifts: GraphTensor[] = [];
    let done = 0;
    for await (const batch of calibration.batches(options.batchSize, { reuseBuffers: true })) {
      const loss = accumulators.lossGradient;
      const targets = loss && targetMatrix(requireTargets(batch.y, loss, calibration.name), outputs, loss);
      for (let start = 0; start < batch.x.rows; start += sliceRows) {
        const rows = Math.min(sliceRows, batch.x.rows - start);
        const feeds: Record<string, GraphTensor> = { [GRAPH_INPUT]: rowsTensor(batch.x, start, rows) };
        if (targets) feeds[GRAPH_TARGETS] = rowsTensor(targets, start, rows);
        if (accumulators.moments) {
          if (shifts.length === 0) {
            const first = () => firstShifts(session, feeds, accumulators.layers);
            shifts.push(...(await timePhase(options.timings, 'forward', first)));
          }
          for (const [l, shift] of shifts.entries()) feeds[graphShift(l)] = shift;
        }
        const result = await timePhase(options.timings, 'statistics', () => session.run(feeds, graph.sums));
        accumulate(result, accumulators, rows, calibration.samples, graph.sharedOutputRow);
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
): Promise<GraphTensor[]> {
  const head: Record<string, GraphTensor> = {};
  for (const [name, { data, dims }] of Object.entries(feeds)) {
    const rows = Math.min(SHIFT_SAMPLES, dims[0]);
    head[name] = { data: data.subarray(0, rows * dims[1]), dims: [rows, dims[1]] };
  }
  for (const [l, { shift }] of layers.entries()) {
    head[graphShift(l)] = { data: new Float32Array(shift.length), dims: [shift.length] };
  }
  const means = await session.run(
    head,
    layers.map((_, l) => graphMean(l)),
  );
  return layers.map(({ shift }, l) => {
    const mean = means[graphMean(l)];
    shift.set(mean);
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
  rows: number,
  total: number,
  sharedOutputRow: boolean,
): void {
  const last = accumulators.layers.length - 1;
  accumulators.layers.forEach((stats, l) => {
    if (!accumulators.wanted(l)) return;
    if (accumulators.moments) {
      const shared = sharedOutputRow && l === last;
      addMoments(stats, result[graphMoments(l)], shared ? undefined : result[graphM0(l)], rows);
    }
    if (accumulators.lossGradient) addScaled(stats.lossGradient!, result[graphGradient(l)], 1 / total);
  });
}

/**
 * m1 += M[:, :n_in], m2 += M[:, n_in:], m0 += Σ_n s; when `m0Batch` is undefined, s = 1 for every
 * neuron and M is one row shared by all of them. Its own function: inlined into a loop body the
 * same sums measured 7-14× slower (bench/ANALYSIS.md, P7).
 */
function addMoments(
  stats: LayerStatistics,
  M: Float32Array,
  m0Batch: Float32Array | undefined,
  rows: number,
): void {
  const { m0, m1, m2 } = stats;
  const nIn = stats.shift.length;
  for (let i = 0; i < m0.length; i++) {
    m0[i] += m0Batch === undefined ? rows : m0Batch[i];
    const row = m0Batch === undefined ? 0 : i * 2 * nIn;
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
