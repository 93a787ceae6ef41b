import type { Dataset, Targets } from '../data/dataset.js';
import { createRandom, type Random } from '../data/random.js';
import { EcpruneError, option } from '../errors.js';
import { defaultGemm } from '../gemm/default.js';
import type { Gemm } from '../gemm/gemm.js';
import { canEmit } from '../graph/emit/calibration.js';
import { type Graph, inputSize, type Model } from '../graph/graph.js';
import { type LossKind, lossFor, lossGradient, requireTargets } from '../graph/loss.js';
import { asGraph, logitsGraph } from '../graph/mlp-graph.js';
import { asMatrix, backpropagate, forwardTrace, type GraphTrace } from '../graph/run.js';
import type { Matrix } from '../model/matrix.js';
import { timePhase } from '../timings.js';
import type {
  CalibrationStatistics,
  LayerStatistics,
  SensitivityKind,
  StatisticsOptions,
} from './calibration-statistics.js';
import { collectWithGraph } from './statistics-graph.js';

/**
 * Sums over the calibration set that every criterion is computed from, for one layer with
 * inputs a_j (from layer l-1) and neurons i:
 *
 *   m0[i]    = Σ_n s_i(x_n)                       s_i = ||d y / d z_l[i]||² (output sensitivity)
 *   m1[i,j]  = Σ_n s_i(x_n) (a_j(x_n) - c_j)
 *   m2[i,j]  = Σ_n s_i(x_n) (a_j(x_n) - c_j)²
 *
 * c_j (`shift`) is the mean of a_j over the first batch. The s-weighted variance
 * m2/m0 - (m1/m0)² is shift-invariant, and subtracting c first avoids the catastrophic float32
 * cancellation of Σ s a² - (Σ s a)²/Σ s for inputs with a large mean and a small spread — exactly
 * the inputs EC can compensate best.
 *
 * What s measures (`sensitivity`), with J_i = d y / d z_l[i] (a vector in output space, K = n_L):
 *   'output' (default)  s_i = ||J_i||²: the squared output change per unit bias change.
 *   'loss'              s_i = J_iᵀ H J_i, H = d²loss/dy² of the per-sample loss: the EC objective
 *                       becomes the Gauss–Newton (second-order) increase of the loss instead of the
 *                       output error: mean dyᵀ H dy = 2 × the second-order loss increase.
 *     ce  (softmax cross-entropy on logits y): H = diag(p) - p pᵀ, p = softmax(y). H does not
 *         depend on the label, so 'loss' with ce needs only the model's outputs, no labels.
 *     mse (the per-sample mean (1/K) Σ_k (y_k - t_k)², as in graph/loss.ts): H = 2I/K, so the
 *         'loss' sensitivities are exactly 2/K times the 'output' ones (same ranking, same δ).
 * Both are computed by one backward pass with R cotangent rows u_r per sample, s_i = Σ_r (u_r · J_i)²:
 * the rows of a factor F with Fᵀ F = H (I for 'output': the one-hot rows; ce: F_k = √p_k (e_k - p),
 * since Σ_k p_k (e_k - p)(e_k - p)ᵀ = diag(p) - p pᵀ; mse: F_k = √(2/K) e_k).
 * With `probes` = m, the K rows are replaced by m random combinations u_r = vᵀ F / √m with
 * Rademacher v ∈ {±1}^K (fresh per sample, seeded): E[(vᵀ F J)²] = ||F J||², so the estimate is
 * unbiased, and the backward pass costs m instead of K rows per sample (for networks with many outputs).
 */
/**
 * Relative size below which a difference of accumulated moments is rounding noise: float32 GEMM
 * sums over a batch carry a relative error of a few 1e-7 (≈ √B · 2⁻²⁴ for B = 1000).
 */
export const ROUNDING_FLOOR = 1e-5;

export type { CalibrationStatistics, LayerStatistics, SensitivityKind, StatisticsOptions };

export const DEFAULT_BATCH_SIZE = 1000;

/**
 * Streams the calibration set once, in batches; memory depends on the batch size, not on N.
 * When the backend runs graphs (`gemm.createSession`: onnxruntime) and the options allow it (exact
 * 'output' sensitivities or none, no probes, no reference) and every op of the graph emits ONNX,
 * each batch runs as one ONNX graph emitted from the graph (statistics-graph.ts,
 * graph/emit/calibration.ts); otherwise GEMM by GEMM below. Both agree to float32 rounding
 * (test/score/statistics-graph.test.ts); `withoutGraphs(gemm)` forces the second.
 */
export async function collectStatistics(
  model: Model,
  calibration: Dataset,
  options: StatisticsOptions = {},
): Promise<CalibrationStatistics> {
  const graph = asGraph(model);
  const gemm = options.gemm ?? defaultGemm();
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const sensitivity = sensitivitySpec(options, calibration);
  const total = calibration.samples;
  if (total < 1) throw new EcpruneError('input', 'the calibration set is empty', calibration.name);
  if (calibration.features !== inputSize(graph)) {
    throw new EcpruneError(
      'input',
      `the calibration data has ${calibration.features} features per sample, the model takes ${inputSize(graph)}`,
      calibration.name,
    );
  }
  const reference = options.reference && asGraph(options.reference);
  if (reference !== undefined) checkSameShape(graph, reference);
  const wanted = (l: number) => options.layers === undefined || options.layers.includes(l);
  const layers = graph.layers.map((layer) => ({
    shift: new Float64Array(layer.weight.cols),
    m0: new Float64Array(layer.weight.rows),
    m1: new Float64Array(layer.weight.data.length),
    m2: new Float64Array(layer.weight.data.length),
    lossGradient: options.lossGradient ? new Float64Array(layer.weight.data.length) : undefined,
    referenceGap: reference ? new Float64Array(layer.weight.rows) : undefined,
  }));
  const createSession = gemm.calibrationGraphs === false ? undefined : gemm.createSession?.bind(gemm);
  const graphFits =
    sensitivity === undefined || (sensitivity.kind === 'output' && sensitivity.probes === undefined);
  const somethingToCollect = sensitivity !== undefined || options.lossGradient !== undefined;
  if (createSession && graphFits && somethingToCollect && reference === undefined && canEmit(graph)) {
    const accumulators = {
      layers,
      moments: sensitivity !== undefined,
      lossGradient: options.lossGradient,
      wanted,
    };
    const samples = await collectWithGraph(graph, calibration, createSession, gemm, accumulators, {
      ...options,
      batchSize,
    });
    return { samples, layers };
  }
  // the loss gradient is taken at the logits when the graph ends in a softmax head (the losses
  // are defined on logits; cross-entropy of softmax(logits) is the same value)
  const lossGraph = logitsGraph(graph);
  let done = 0;
  for await (const batch of calibration.batches(batchSize, { reuseBuffers: true })) {
    const timings = options.timings;
    const x = { shape: [batch.x.rows, batch.x.cols], data: batch.x.data };
    const trace = await timePhase(timings, 'forward', () => forwardTrace(graph, x, gemm));
    if (sensitivity) {
      const gaps = reference ? await preActivationGaps(graph, reference, trace, x, wanted, gemm) : undefined;
      const { cotangents, perSample } = sensitivityCotangents(trace.output, sensitivity);
      // the backward pass is booked as `sensitivity`, the moment sums inside it as `statistics`
      const statisticsBefore = timings?.statistics ?? 0;
      await timePhase(timings, 'sensitivity', () =>
        backpropagate(graph, trace, cotangents, gemm, async (l, cotangent, input) => {
          if (!wanted(l)) return;
          const s = sumSquaresPerSample(cotangent, perSample);
          await timePhase(timings, 'statistics', async () => {
            await accumulateMoments(layers[l], s, input, done === 0, gemm);
            if (gaps) accumulateGap(layers[l].referenceGap!, s, gaps[l]!);
          });
        }),
      );
      if (timings) timings.sensitivity -= (timings.statistics ?? 0) - statisticsBefore;
    }
    if (options.lossGradient) {
      const targets = requireTargets(batch.y, options.lossGradient, calibration.name);
      const lossTrace =
        lossGraph === graph ? trace : { ...trace, output: asMatrix(trace.values.get(lossGraph.output)!) };
      await accumulateLossGradient(lossGraph, lossTrace, targets, options.lossGradient, total, gemm, layers);
    }
    done += batch.x.rows;
    options.onProgress?.(done, total);
  }
  return { samples: done, layers };
}

/** How the cotangent rows of the sensitivity pass are made (undefined: no sensitivities). */
interface SensitivitySpec {
  readonly kind: SensitivityKind;
  /** for 'loss' */
  readonly loss?: LossKind;
  /** m probes, drawn from `random` (one stream over the whole calibration set, in sample order) */
  readonly probes?: number;
  readonly random?: Random;
}

function sensitivitySpec(
  options: Pick<
    StatisticsOptions,
    'sensitivity' | 'sensitivityLoss' | 'lossGradient' | 'probes' | 'probeSeed'
  >,
  calibration?: Dataset,
): SensitivitySpec | undefined {
  const setting = options.sensitivity ?? true;
  if (setting === false) return undefined;
  const kind: SensitivityKind = setting === true ? 'output' : setting;
  if (kind !== 'output' && kind !== 'loss') {
    throw new EcpruneError('usage', `unknown sensitivity '${kind}' (choose output or loss)`);
  }
  let loss: LossKind | undefined;
  if (kind === 'loss') {
    const targetKind = calibration?.targetKind;
    loss = options.sensitivityLoss ?? options.lossGradient ?? (targetKind ? lossFor(targetKind) : undefined);
    if (loss === undefined) {
      throw new EcpruneError(
        'usage',
        `loss sensitivity needs the loss (${option('loss')}: ce or mse) when the calibration set has no labels`,
        calibration?.name,
      );
    }
  }
  const probes = options.probes;
  if (probes === undefined) return { kind, loss };
  if (!Number.isInteger(probes) || probes < 1) {
    throw new EcpruneError('usage', `probes must be a positive integer, got ${probes}`);
  }
  return { kind, loss, probes, random: createRandom(options.probeSeed ?? 0) };
}

/**
 * The R cotangent rows per sample (sample-major, B*R x K) whose backward pass gives
 * s_i = Σ_r (u_r · J_i)²: one-hot rows for exact output sensitivities (the original path,
 * unchanged), else the rows of the Hessian factor F or m probe combinations vᵀF/√m (see top).
 */
function sensitivityCotangents(
  output: Matrix,
  spec: SensitivitySpec,
): { cotangents: Matrix; perSample: number } {
  const { rows: batch, cols: outputs } = output;
  if (spec.kind === 'output' && spec.probes === undefined) {
    return { cotangents: oneHotCotangents(batch, outputs), perSample: outputs };
  }
  const perSample = spec.probes ?? outputs;
  const data = new Float32Array(batch * perSample * outputs);
  const factor = new Float64Array(outputs * outputs); // F, K x K row-major
  const probe = new Float64Array(outputs);
  for (let n = 0; n < batch; n++) {
    hessianFactor(output.data.subarray(n * outputs, (n + 1) * outputs), spec, factor);
    for (let r = 0; r < perSample; r++) {
      const row = data.subarray((n * perSample + r) * outputs, (n * perSample + r + 1) * outputs);
      if (spec.probes === undefined) {
        for (let k = 0; k < outputs; k++) row[k] = factor[r * outputs + k];
        continue;
      }
      // u = vᵀ F / √m
      const scale = 1 / Math.sqrt(spec.probes);
      for (let k = 0; k < outputs; k++) probe[k] = spec.random!.next() < 0.5 ? -scale : scale;
      for (let c = 0; c < outputs; c++) {
        let sum = 0;
        for (let k = 0; k < outputs; k++) sum += probe[k] * factor[k * outputs + c];
        row[c] = sum;
      }
    }
  }
  return { cotangents: { rows: batch * perSample, cols: outputs, data }, perSample };
}

/** Writes a factor F (K x K, Fᵀ F = H) of one sample's output Hessian into `factor`. */
function hessianFactor(y: Float32Array, spec: SensitivitySpec, factor: Float64Array): void {
  const outputs = y.length;
  factor.fill(0);
  if (spec.kind === 'output' || spec.loss === 'mse') {
    const diagonal = spec.kind === 'output' ? 1 : Math.sqrt(2 / outputs); // H = I or 2I/K
    for (let k = 0; k < outputs; k++) factor[k * outputs + k] = diagonal;
    return;
  }
  // softmax cross-entropy: F_k = √p_k (e_k - p)
  let max = Number.NEGATIVE_INFINITY;
  for (const v of y) if (v > max) max = v;
  const p = new Float64Array(outputs);
  let sum = 0;
  for (let k = 0; k < outputs; k++) sum += p[k] = Math.exp(y[k] - max);
  for (let k = 0; k < outputs; k++) p[k] /= sum;
  for (let k = 0; k < outputs; k++) {
    const root = Math.sqrt(p[k]);
    for (let c = 0; c < outputs; c++) factor[k * outputs + c] = root * ((c === k ? 1 : 0) - p[c]);
  }
}

/** z_ref,l - z_l for the wanted layers (B x n_l each): each fully-connected layer's output in the reference's own forward pass beside this network's. */
async function preActivationGaps(
  graph: Graph,
  reference: Graph,
  trace: GraphTrace,
  x: { shape: number[]; data: Float32Array },
  wanted: (l: number) => boolean,
  gemm: Gemm,
): Promise<(Matrix | undefined)[]> {
  const referenceTrace = await forwardTrace(reference, x, gemm);
  const gaps: (Matrix | undefined)[] = [];
  for (const node of graph.nodes) {
    if (node.op !== 'Dense') continue;
    const l = node.attrs.layer as number;
    if (!wanted(l)) continue;
    const z = trace.values.get(node.outputs[0])!;
    const zReference = referenceTrace.values.get(node.outputs[0])!;
    const gap = new Float32Array(z.data.length);
    for (let i = 0; i < gap.length; i++) gap[i] = zReference.data[i] - z.data[i];
    gaps[l] = asMatrix({ shape: z.shape, data: gap });
  }
  return gaps;
}

function accumulateGap(sum: Float64Array, sensitivity: Matrix, gap: Matrix): void {
  const nOut = sum.length;
  for (let n = 0; n < gap.rows; n++) {
    for (let i = 0; i < nOut; i++) sum[i] += sensitivity.data[n * nOut + i] * gap.data[n * nOut + i];
  }
}

function checkSameShape(graph: Graph, reference: Graph): void {
  const shape = (m: Graph) => m.layers.map((layer) => `${layer.weight.rows}x${layer.weight.cols}`).join(',');
  if (shape(graph) !== shape(reference) || graph.nodes.length !== reference.nodes.length) {
    throw new EcpruneError(
      'usage',
      `the reference network has layers ${shape(reference)}, the model ${shape(graph)}`,
    );
  }
}

/**
 * s_i(x_n) for every layer (B x n_l) under any sensitivity setting ('output' by default, 'loss',
 * exact or with probes): the per-sample values `collectStatistics` reduces. For inspection and tests.
 */
export async function sampleSensitivities(
  model: Model,
  x: Matrix,
  options: Pick<StatisticsOptions, 'sensitivity' | 'sensitivityLoss' | 'probes' | 'probeSeed' | 'gemm'> = {},
): Promise<Matrix[]> {
  const graph = asGraph(model);
  const gemm = options.gemm ?? defaultGemm();
  const spec = sensitivitySpec({ sensitivity: options.sensitivity ?? 'output', ...options });
  if (spec === undefined) return [];
  const trace = await forwardTrace(graph, x, gemm);
  const { cotangents, perSample } = sensitivityCotangents(trace.output, spec);
  const sensitivities: Matrix[] = [];
  await backpropagate(graph, trace, cotangents, gemm, (l, cotangent) => {
    sensitivities[l] = sumSquaresPerSample(cotangent, perSample);
  });
  return sensitivities;
}

/** s_i(x_n) = Σ_k (d y_k / d z_l[i])² for every layer (B x n_l): exact output sensitivities. */
export function outputSensitivities(model: Model, x: Matrix, gemm: Gemm = defaultGemm()): Promise<Matrix[]> {
  return sampleSensitivities(model, x, { gemm });
}

/** Adds one batch's Σ s (a-c) and Σ s (a-c)² with a single GEMM: Sᵀ [A-c | (A-c)²]. */
async function accumulateMoments(
  stats: LayerStatistics,
  sensitivity: Matrix,
  input: Matrix,
  firstBatch: boolean,
  gemm: Gemm,
): Promise<void> {
  const { rows: batch, cols: nIn } = input;
  const nOut = sensitivity.cols;
  if (firstBatch) {
    for (let n = 0; n < batch; n++) for (let j = 0; j < nIn; j++) stats.shift[j] += input.data[n * nIn + j];
    for (let j = 0; j < nIn; j++) stats.shift[j] /= batch;
  }
  const centred = new Float32Array(batch * 2 * nIn);
  for (let n = 0; n < batch; n++) {
    for (let j = 0; j < nIn; j++) {
      const d = input.data[n * nIn + j] - stats.shift[j];
      centred[n * 2 * nIn + j] = d;
      centred[n * 2 * nIn + nIn + j] = d * d;
    }
  }
  const moments = await gemm.matmul(
    sensitivity,
    { rows: batch, cols: 2 * nIn, data: centred },
    { transA: true },
  );
  for (let i = 0; i < nOut; i++) {
    for (let j = 0; j < nIn; j++) {
      stats.m1[i * nIn + j] += moments.data[i * 2 * nIn + j];
      stats.m2[i * nIn + j] += moments.data[i * 2 * nIn + nIn + j];
    }
  }
  for (let n = 0; n < batch; n++)
    for (let i = 0; i < nOut; i++) stats.m0[i] += sensitivity.data[n * nOut + i];
}

/** Adds this batch's share of the mean gradient dL/dW_l = (1/N) Σ_n g_l(x_n) a_{l-1}(x_n)ᵀ. */
async function accumulateLossGradient(
  graph: Graph,
  trace: GraphTrace,
  targets: Targets,
  loss: LossKind,
  total: number,
  gemm: Gemm,
  layers: LayerStatistics[],
): Promise<void> {
  const outputGradient = lossGradient(trace.output, targets, loss);
  for (let i = 0; i < outputGradient.data.length; i++) outputGradient.data[i] /= total;
  await backpropagate(graph, trace, outputGradient, gemm, async (l, g, input) => {
    const gradient = await gemm.matmul(g, input, { transA: true });
    const sum = layers[l].lossGradient!;
    for (let i = 0; i < sum.length; i++) sum[i] += gradient.data[i];
  });
}

/** K one-hot cotangents per sample (B*K x K): row n*K + k is e_k. */
export function oneHotCotangents(batch: number, outputs: number): Matrix {
  const data = new Float32Array(batch * outputs * outputs);
  for (let s = 0; s < batch; s++) for (let k = 0; k < outputs; k++) data[(s * outputs + k) * outputs + k] = 1;
  return { rows: batch * outputs, cols: outputs, data };
}

/** Σ_r g[(n,r), i]^2: sum of squares over each sample's R cotangent rows (B x n). */
export function sumSquaresPerSample(g: Matrix, repeat: number): Matrix {
  const batch = g.rows / repeat;
  const n = g.cols;
  const out = new Float32Array(batch * n);
  for (let s = 0; s < batch; s++) {
    for (let r = 0; r < repeat; r++) {
      const gRow = (s * repeat + r) * n;
      for (let c = 0; c < n; c++) {
        const v = g.data[gRow + c];
        out[s * n + c] += v * v;
      }
    }
  }
  return { rows: batch, cols: n, data: out };
}
