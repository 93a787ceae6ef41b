import { type Dataset, inMemoryDataset, materialize, type Targets, targetCount } from '../data/dataset.js';
import { createRandom } from '../data/random.js';
import { EcpruneError } from '../errors.js';
import { defaultGemm } from '../gemm/default.js';
import type { Gemm } from '../gemm/gemm.js';
import { type Graph, inputSize, type Model } from '../graph/graph.js';
import { type LossKind, lossFor, lossGradient, sampleLosses } from '../graph/loss.js';
import { asGraph, logitsGraph } from '../graph/mlp-graph.js';
import { backpropagate, forwardTrace } from '../graph/run.js';
import type { Activation } from '../model/activations.js';
import { type FloatArray, type Matrix, matrix } from '../model/matrix.js';
import { type Layer, type Layered, layerSizes, type Mlp } from '../model/mlp.js';
import type { KeepMask } from '../select/select.js';
import { evaluate } from './evaluate.js';
import { checkSchedule, type GradualPruning, isPruningStep, sparsityAt } from './schedule.js';

/** A fresh network: layer widths, the hidden activation, the seed of its initial weights. */
export interface InitSpec {
  readonly sizes: readonly number[];
  readonly activation: Activation;
  /** activation of the last layer; default identity (logits / regression outputs) */
  readonly outputActivation?: Activation;
  readonly seed: number;
}

export interface EpochInfo {
  /** 1-based */
  readonly epoch: number;
  /** mean loss over the epoch's samples, each measured before its batch's update */
  readonly trainLoss: number;
  readonly validationLoss?: number;
  readonly validationAccuracy?: number;
  /** under a pruning schedule: the fraction of the fully-connected weights pruned at the epoch's end */
  readonly sparsity?: number;
}

export interface TrainOptions {
  readonly epochs: number;
  /** Adam step size; default 1e-3 */
  readonly learningRate?: number;
  /** default 128; the last batch of an epoch may be smaller */
  readonly batchSize?: number;
  /** seed of the per-epoch shuffles (and of the validation split) */
  readonly seed: number;
  /** default from the targets: class ids → ce, values → mse */
  readonly loss?: LossKind;
  /** evaluated after every epoch */
  readonly validation?: Dataset;
  /** hold out this fraction of the training set (seeded split) instead of passing `validation` */
  readonly validationFraction?: number;
  /**
   * fine-tuning: weights with mask 0 are set to zero and stay exactly zero; the biases train,
   * except those of layers stored without one (graph.ts DenseLayer.hasBias)
   */
  readonly keepMasks?: readonly KeepMask[];
  /** prune as training goes, on a schedule (schedule.ts); masks from `keepMasks` stay pruned */
  readonly pruning?: GradualPruning;
  readonly gemm?: Gemm;
  readonly onEpoch?: (info: EpochInfo) => void;
  /** batches done and total, counted over all epochs (a progress bar with an ETA) */
  readonly onBatch?: (done: number, total: number) => void;
}

export interface TrainResult<M extends Model = Mlp> {
  readonly model: M;
  readonly history: EpochInfo[];
}

/**
 * PyTorch's nn.Linear initialisation, so that the networks trained here start like the paper's:
 * kaiming_uniform(a = √5) for W, which works out to U(-1/√fan_in, 1/√fan_in), and the same
 * uniform for b. The seeded generator makes it deterministic: same seed → same network.
 */
export function initMlp(spec: InitSpec): Mlp {
  const { sizes, activation, seed } = spec;
  if (sizes.length < 2 || !sizes.every((n) => Number.isInteger(n) && n >= 1)) {
    throw new EcpruneError(
      'usage',
      `layer sizes must be at least two positive integers, got ${sizes.join('-')}`,
    );
  }
  const random = createRandom(seed);
  const uniform = (bound: number) => (2 * random.next() - 1) * bound;
  const layers: Layer[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const [nIn, nOut] = [sizes[l], sizes[l + 1]];
    const bound = 1 / Math.sqrt(nIn);
    const weight = matrix(nOut, nIn);
    for (let k = 0; k < weight.data.length; k++) weight.data[k] = uniform(bound);
    const bias = new Float32Array(nOut);
    for (let k = 0; k < nOut; k++) bias[k] = uniform(bound);
    const last = l + 2 === sizes.length;
    layers.push({
      weight,
      bias,
      activation: last ? (spec.outputActivation ?? { kind: 'identity' }) : activation,
    });
  }
  return { layers };
}

/** 1 where the weight is non-zero: the masks that keep a pruned network's zeros in place. */
export function keepMasksOf(model: Layered): KeepMask[] {
  return model.layers.map((layer) => Uint8Array.from(layer.weight.data, (w) => +(w !== 0)));
}

/** The same model with its own copies of every weight and bias (training updates them in place). */
function copyOf<M extends Model>(model: M): M {
  const layers = model.layers.map((layer) => ({
    ...layer,
    weight: { ...layer.weight, data: layer.weight.data.slice() },
    bias: layer.bias.slice(),
  }));
  return { ...model, layers } as M;
}

export interface Gradients {
  /** mean loss over the batch */
  readonly loss: number;
  /** dL/dW_l (n_out x n_in, like W) and dL/db_l of every fully-connected layer, L the batch-mean loss */
  readonly weight: Float32Array[];
  readonly bias: Float32Array[];
}

/**
 * The graph the loss is computed on: cross-entropy is defined on logits, so behind a
 * Softmax/LogSoftmax head it is the head's input (as `evaluate` measures it).
 */
function lossGraph(model: Model, loss: LossKind): Graph {
  return loss === 'ce' ? logitsGraph(asGraph(model)) : asGraph(model);
}

/**
 * The batch-mean loss and its gradient with respect to every fully-connected layer's weight and
 * bias, through the whole graph (residuals, normalisations, heads: whatever lies between a layer
 * and the output). With g = dL/dz of a layer (B x n_out, from backpropagating the loss cotangent)
 * and a its input (B x n_in):
 *   dL/dW = gᵀ a      dL/db = Σ_n g[n, :]
 * Dividing dL/dy by B first makes both sums batch means. Other parameters (BatchNorm, LayerNorm,
 * PRelu slopes, constants) get no gradient: they stay as they are.
 */
export async function lossAndGradients(
  model: Model,
  x: Matrix,
  y: Targets,
  loss: LossKind,
  gemm: Gemm,
): Promise<Gradients> {
  const graph = lossGraph(model, loss);
  const trace = await forwardTrace(graph, x, gemm);
  const batch = x.rows;
  let lossSum = 0;
  for (const value of sampleLosses(trace.output, y, loss)) lossSum += value;
  const dy = lossGradient(trace.output, y, loss);
  for (let k = 0; k < dy.data.length; k++) dy.data[k] /= batch;
  // zeros for a layer the output does not depend on (the walk never visits it)
  const weight: Float32Array[] = graph.layers.map((layer) => new Float32Array(layer.weight.data.length));
  const bias = graph.layers.map((layer) => new Float32Array(layer.bias.length));
  await backpropagate(graph, trace, dy, gemm, async (l, g, input) => {
    weight[l] = (await gemm.matmul(g, input, { transA: true })).data;
    const db = bias[l];
    for (let n = 0; n < g.rows; n++) for (let i = 0; i < g.cols; i++) db[i] += g.data[n * g.cols + i];
  });
  return { loss: lossSum / batch, weight, bias };
}

/**
 * Adam (Kingma & Ba) with PyTorch's defaults β1 = 0.9, β2 = 0.999, ε = 1e-8, updating the
 * parameters in place, in their own precision. Moments are float64 so that tiny v does not
 * underflow. The gradients are float32 (the GEMMs'); a float64 model's weights take the steps in
 * float64, so a weight that gets no update (a masked one, a bias that is not trained) keeps its
 * value bit for bit.
 */
function createAdam(params: FloatArray[], learningRate: number) {
  const [beta1, beta2, epsilon] = [0.9, 0.999, 1e-8];
  const m = params.map((p) => new Float64Array(p.length));
  const v = params.map((p) => new Float64Array(p.length));
  let t = 0;
  return {
    step(grads: Float32Array[]) {
      t++;
      const correction1 = 1 - beta1 ** t;
      const correction2 = 1 - beta2 ** t;
      params.forEach((p, k) => {
        const [g, mk, vk] = [grads[k], m[k], v[k]];
        for (let i = 0; i < p.length; i++) {
          mk[i] = beta1 * mk[i] + (1 - beta1) * g[i];
          vk[i] = beta2 * vk[i] + (1 - beta2) * g[i] * g[i];
          p[i] -= (learningRate * (mk[i] / correction1)) / (Math.sqrt(vk[i] / correction2) + epsilon);
        }
      });
    },
  };
}

interface InMemory {
  readonly x: Matrix;
  readonly y: Targets;
}

/** The samples at `indices`, copied into one contiguous batch. */
function gather(data: InMemory, indices: ArrayLike<number>): InMemory {
  const { cols } = data.x;
  const x = matrix(indices.length, cols);
  for (let r = 0; r < indices.length; r++)
    x.data.set(data.x.data.subarray(indices[r] * cols, (indices[r] + 1) * cols), r * cols);
  if (data.y.kind === 'classes') {
    const values = new Int32Array(indices.length);
    for (let r = 0; r < indices.length; r++) values[r] = data.y.values[indices[r]];
    return { x, y: { kind: 'classes', values } };
  }
  const k = data.y.values.cols;
  const values = matrix(indices.length, k);
  for (let r = 0; r < indices.length; r++)
    values.data.set(data.y.values.data.subarray(indices[r] * k, (indices[r] + 1) * k), r * k);
  return { x, y: { kind: 'values', values } };
}

/** How many of n samples a validation fraction holds out. */
function heldOutCount(n: number, fraction: number): number {
  return Math.round(fraction * n);
}

function splitInMemory(
  data: InMemory,
  fraction: number,
  seed: number,
): { train: InMemory; validation: InMemory } {
  if (!(fraction > 0 && fraction < 1)) {
    throw new EcpruneError('usage', `the validation fraction must be in (0, 1), got ${fraction}`);
  }
  const n = data.x.rows;
  const held = heldOutCount(n, fraction);
  if (held < 1 || held >= n) {
    throw new EcpruneError(
      'usage',
      `a validation fraction of ${fraction} of ${n} samples leaves an empty part`,
    );
  }
  const order = createRandom(seed).shuffle(Int32Array.from({ length: n }, (_, i) => i));
  return { validation: gather(data, order.subarray(0, held)), train: gather(data, order.subarray(held)) };
}

/**
 * Splits in-memory samples at random (seeded) into a training part and a validation part holding
 * round(fraction · N) samples.
 */
export function splitDataset(
  x: Matrix,
  y: Targets,
  fraction: number,
  seed: number,
  name = 'data',
): { train: Dataset; validation: Dataset } {
  if (targetCount(y) !== x.rows)
    throw new EcpruneError('input', `${targetCount(y)} targets for ${x.rows} samples`, name);
  const parts = splitInMemory({ x, y }, fraction, seed);
  return {
    train: inMemoryDataset(parts.train.x, parts.train.y, `${name}:train`),
    validation: inMemoryDataset(parts.validation.x, parts.validation.y, `${name}:validation`),
  };
}

function checkOptions(options: TrainOptions): void {
  const { epochs, learningRate = 1e-3, batchSize = 128 } = options;
  if (!(Number.isInteger(epochs) && epochs >= 0))
    throw new EcpruneError('usage', `epochs must be an integer >= 0, got ${epochs}`);
  if (!(learningRate > 0))
    throw new EcpruneError('usage', `the learning rate must be positive, got ${learningRate}`);
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new EcpruneError('usage', `the batch size must be a positive integer, got ${batchSize}`);
  }
  if (options.validation && options.validationFraction !== undefined) {
    throw new EcpruneError('usage', 'pass either a validation set or a validation fraction, not both');
  }
}

function checkMasks(model: Layered, keepMasks: readonly KeepMask[]): void {
  if (keepMasks.length !== model.layers.length) {
    throw new EcpruneError('usage', `${keepMasks.length} keep-masks for ${model.layers.length} layers`);
  }
  keepMasks.forEach((mask, l) => {
    if (mask.length !== model.layers[l].weight.data.length) {
      throw new EcpruneError(
        'usage',
        `keep-mask has ${mask.length} entries, the weight ${model.layers[l].weight.data.length}`,
        undefined,
        `layer ${l}`,
      );
    }
  });
}

/** Pruned weights / all weights. */
function prunedFraction(keepMasks: readonly KeepMask[]): number {
  const kept = keepMasks.reduce((sum, mask) => sum + mask.reduce((n, keep) => n + keep, 0), 0);
  const total = keepMasks.reduce((sum, mask) => sum + mask.length, 0);
  return 1 - kept / total;
}

/** Sets the masked-out weights (and their gradients) to exactly zero. */
function applyMasks(arrays: FloatArray[], keepMasks: readonly KeepMask[] | undefined): void {
  if (!keepMasks) return;
  keepMasks.forEach((mask, l) => {
    const a = arrays[l];
    for (let i = 0; i < mask.length; i++) if (!mask[i]) a[i] = 0;
  });
}

/** Optimizer updates per epoch for `samples` training samples (after a validation fraction is held out). */
export function batchesPerEpoch(
  samples: number,
  options: Pick<TrainOptions, 'batchSize' | 'validationFraction'>,
): number {
  const held =
    options.validationFraction === undefined ? 0 : heldOutCount(samples, options.validationFraction);
  return Math.ceil((samples - held) / (options.batchSize ?? 128));
}

/**
 * Trains a model's fully-connected layers with Adam on mini-batches reshuffled every epoch: an MLP
 * or any graph (the loss gradient reaches every layer through the whole graph; see
 * `lossAndGradients`). `init` is either a model to continue from (copied, never modified) or a spec
 * for a fresh PyTorch-style MLP. The training set is read into memory (shuffling needs random
 * access); a model with a frozen prefix trains on the data as seen through it.
 * @example const { model } = await trainModel({ sizes: [784, 64, 10], activation: { kind: 'relu' }, seed: 1 }, train, { epochs: 3, seed: 1 });
 */
export async function trainModel(
  init: Mlp | InitSpec,
  train: Dataset,
  options: TrainOptions,
): Promise<TrainResult<Mlp>>;
export async function trainModel<M extends Model>(
  init: M,
  train: Dataset,
  options: TrainOptions,
): Promise<TrainResult<M>>;
export async function trainModel(
  init: Model | InitSpec,
  train: Dataset,
  options: TrainOptions,
): Promise<TrainResult<Model>> {
  checkOptions(options);
  const model: Model = 'layers' in init ? copyOf(init) : initMlp(init);
  const gemm = options.gemm ?? defaultGemm();
  const batchSize = options.batchSize ?? 128;
  if (train.targetKind === undefined)
    throw new EcpruneError('usage', 'training needs targets (labels)', train.name);
  const features = inputSize(asGraph(model));
  if (train.features !== features) {
    throw new EcpruneError(
      'input',
      `the data has ${train.features} features per sample, the model takes ${features}`,
      train.name,
    );
  }
  const loss = options.loss ?? lossFor(train.targetKind);
  const all = (await materialize(train)) as InMemory;
  if (all.x.rows < 1) throw new EcpruneError('input', 'the training set is empty', train.name);
  let data = all;
  let validation = options.validation;
  if (options.validationFraction !== undefined) {
    const parts = splitInMemory(all, options.validationFraction, options.seed);
    data = parts.train;
    validation = inMemoryDataset(parts.validation.x, parts.validation.y, `${train.name}:validation`);
  }

  const weights = model.layers.map((layer) => layer.weight.data);
  const biases = model.layers.map((layer) => layer.bias);
  // a layer stored without a bias keeps it that way (zero, or what compensation put there)
  const trainsBias = model.layers.map((layer) => !('hasBias' in layer) || layer.hasBias !== false);
  let keepMasks = options.keepMasks;
  if (keepMasks) {
    checkMasks(model, keepMasks);
    applyMasks(weights, keepMasks);
  }
  const adam = createAdam([...weights, ...biases], options.learningRate ?? 1e-3);
  const random = createRandom(options.seed);
  const order = Int32Array.from({ length: data.x.rows }, (_, i) => i);
  const perEpoch = batchesPerEpoch(all.x.rows, options);
  const totalSteps = options.epochs * perEpoch;

  const gradual = options.pruning;
  const schedule = gradual && checkSchedule(gradual.schedule, totalSteps);
  const calibrationRows = Math.min(data.x.rows, gradual?.calibrationSamples ?? 1000);
  const calibration =
    gradual &&
    (() => {
      const slice = gather(
        data,
        Int32Array.from({ length: calibrationRows }, (_, i) => i),
      );
      return inMemoryDataset(slice.x, slice.y, `${train.name}:calibration`);
    })();
  /** At a pruning step of the schedule: the network pruned, its values copied into the trained arrays. */
  const pruneAt = async (step: number) => {
    if (!schedule || !calibration || !isPruningStep(schedule, step)) return;
    keepMasks ??= model.layers.map((layer) => new Uint8Array(layer.weight.data.length).fill(1));
    const targetSparsity = sparsityAt(schedule, step);
    const pruned = await gradual.pruneTo(model, keepMasks, targetSparsity, calibration);
    keepMasks = pruned.keepMasks;
    pruned.model.layers.forEach((layer, l) => {
      weights[l].set(layer.weight.data);
      biases[l].set(layer.bias);
    });
    gradual.onPrune?.({ step, targetSparsity, sparsity: prunedFraction(keepMasks), keepMasks, model });
  };

  const history: EpochInfo[] = [];
  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    random.shuffle(order);
    let lossSum = 0;
    for (let b = 0; b < perEpoch; b++) {
      const step = (epoch - 1) * perEpoch + b;
      await pruneAt(step);
      const batch = gather(data, order.subarray(b * batchSize, (b + 1) * batchSize));
      const gradients = await lossAndGradients(model, batch.x, batch.y, loss, gemm);
      lossSum += gradients.loss * batch.x.rows;
      applyMasks(gradients.weight, keepMasks); // a pruned weight gets no update ...
      gradients.bias.forEach((g, l) => {
        if (!trainsBias[l]) g.fill(0);
      });
      adam.step([...gradients.weight, ...gradients.bias]);
      applyMasks(weights, keepMasks); // ... and is re-zeroed so it stays exactly 0
      options.onBatch?.(step + 1, totalSteps);
    }
    let info: EpochInfo = { epoch, trainLoss: lossSum / order.length };
    if (gradual && keepMasks) info = { ...info, sparsity: prunedFraction(keepMasks) };
    if (validation) {
      const result = await evaluate(model, validation, { gemm, loss });
      info = { ...info, validationLoss: result.meanLoss, validationAccuracy: result.accuracy };
    }
    history.push(info);
    options.onEpoch?.(info);
  }
  await pruneAt(totalSteps); // a schedule may end after the last update
  return { model, history };
}

/** Fine-tunes a pruned network: trainModel with its zero weights held at zero. */
export function finetune<M extends Model>(
  model: M,
  train: Dataset,
  options: Omit<TrainOptions, 'keepMasks'>,
): Promise<TrainResult<M>> {
  return trainModel(model, train, { ...options, keepMasks: keepMasksOf(model) });
}

/** Weights of a dense MLP with these widths (biases not counted: pruning does not remove them). */
/**
 * Bytes of memory training a network of layer `sizes` needs besides its data, for the memory
 * check of `train` and `finetune` (like `estimatePruneMemory` for `prune`). Per parameter: the
 * float32 value, its gradient and a GEMM result copy (12), Adam's float64 m and v (16), the
 * initial / cloned model and the mask (5), the output's encoding (4), rounded up to 40; per batch
 * B (float32): 3·B·Σ widths for the forward trace, 4·B·max width for the backward pass.
 */
export function estimateTrainMemory(sizes: readonly number[], batchSize: number): number {
  const parameters = denseWeightCount(sizes) + sizes.slice(1).reduce((sum, n) => sum + n, 0);
  const sumWidths = sizes.reduce((sum, n) => sum + n, 0);
  return 40 * parameters + 4 * batchSize * (3 * sumWidths + 4 * Math.max(...sizes));
}

export function denseWeightCount(sizes: readonly number[]): number {
  let count = 0;
  for (let l = 0; l + 1 < sizes.length; l++) count += sizes[l] * sizes[l + 1];
  return count;
}

/**
 * The paper's "fully-connected" baseline: the same depth with every hidden width scaled by one
 * factor r, chosen so that the dense network has (about) as many weights as a pruned one keeping
 * `keepFraction` of them. Inputs and outputs are fixed, so the count is quadratic in r:
 *   a r² + b r = keepFraction · count,  a = Σ hidden·hidden products, b = n_0 h_1 + h_{L-1} n_L.
 * Widths are rounded, at least 1.
 */
export function denseSmall(sizes: readonly number[], keepFraction: number): number[] {
  if (sizes.length < 3)
    throw new EcpruneError('usage', `the network ${sizes.join('-')} has no hidden layer to shrink`);
  if (!(keepFraction > 0 && keepFraction <= 1)) {
    throw new EcpruneError('usage', `the kept fraction must be in (0, 1], got ${keepFraction}`);
  }
  const last = sizes.length - 1;
  const target = keepFraction * denseWeightCount(sizes);
  let a = 0;
  for (let l = 1; l + 1 < last; l++) a += sizes[l] * sizes[l + 1];
  const b = sizes[0] * sizes[1] + sizes[last - 1] * sizes[last];
  const r = a === 0 ? target / b : (-b + Math.sqrt(b * b + 4 * a * target)) / (2 * a);
  return sizes.map((n, l) => (l === 0 || l === last ? n : Math.max(1, Math.round(r * n))));
}

/**
 * Trains the dense-small baseline for a network like `like` (its widths and activations) pruned
 * to keep `keepFraction` of its weights. A fresh initialisation from `like.seed`, or from
 * `options.seed` when `like` is a network.
 */
export function trainDenseSmall(
  like: Mlp | InitSpec,
  keepFraction: number,
  train: Dataset,
  options: TrainOptions,
): Promise<TrainResult> {
  const spec: InitSpec =
    'layers' in like
      ? {
          sizes: layerSizes(like),
          activation: like.layers[0].activation,
          outputActivation: like.layers[like.layers.length - 1].activation,
          seed: options.seed,
        }
      : like;
  return trainModel({ ...spec, sizes: denseSmall(spec.sizes, keepFraction) }, train, options);
}
