/**
 * Deep compression of a chain (Han, Mao & Dally, ICLR 2016) as one search: gradual EC pruning
 * during fine-tuning (the schedule of src/train/schedule.ts) → weight sharing (a k-means codebook of 2^bits values per layer, its centroids
 * fine-tuned) → `.ecsr` version 2 (codebook indices and column gaps Huffman-coded). The smallest
 * file within an accuracy budget on held-out validation data is searched in two bisections:
 *
 *   1. sparsity: the largest probed sparsity whose pruned, fine-tuned model keeps the validation
 *      accuracy within `maxAccuracyDrop` points of the dense model's. The first probe is
 *      `maxSparsity`; then bisection between the largest accepted and the smallest refused probe
 *      (the dense model, sparsity 0, is accepted by definition), at the geometric mean of their
 *      kept fractions (1 − s), since the file's size follows the kept fraction.
 *   2. bits: on that model, the fewest codebook bits in [minBits, maxBits] whose fine-tuned codebook
 *      keeps the budget (first probe maxBits, then bisection). When even maxBits breaks the budget,
 *      the next lower accepted sparsity is tried, down to the dense model.
 *
 * The bisections assume that accuracy falls with sparsity and rises with bits; fine-tuning noise
 * can break that, so what holds is: the chosen point keeps the budget, and the probe beside it
 * (the smallest refused sparsity above it, the bits one below it) did not, each as measured.
 * The test data, when given, is evaluated for the table only and never steers the search.
 */
import { type Dataset, materialize } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import { defaultGemm } from '../gemm/default.js';
import type { Gemm } from '../gemm/gemm.js';
import type { Model } from '../graph/graph.js';
import { chainOf, graphFromMlp } from '../graph/mlp-graph.js';
import { writeEcsr } from '../io/ecsr.js';
import { writeOnnx } from '../io/onnx.js';
import type { Mlp } from '../model/mlp.js';
import { type CodebookValues, fineTuneCentroids, quantizeCodebook } from '../quantize/quantize.js';
import { CODEBOOK_BITS } from '../runtime/index.js';
import type { MethodName } from '../score/methods.js';
import { evaluate } from '../train/evaluate.js';
import { batchesPerEpoch, keepMasksOf, splitDataset, trainModel } from '../train/train.js';
import { bisect } from './bisect.js';
import { pruneStep } from './gradual.js';

export interface CompressOptions {
  /** held-out data the search is judged on; default a seeded `validationFraction` of `train` */
  readonly validation?: Dataset;
  /** the fraction of `train` held out when no `validation` is given; default 0.1 */
  readonly validationFraction?: number;
  /** reported in the stages table only, never used for a choice */
  readonly test?: Dataset;
  /** the largest fall of validation accuracy below the dense model's, in points (0.1 = 0.1 %); default 0.1 */
  readonly maxAccuracyDrop?: number;
  /** the first (largest) sparsity probed; default 0.98 */
  readonly maxSparsity?: number;
  /** sparsity probes after the first (bisection steps); default 4 */
  readonly sparsityProbes?: number;
  /** codebook sizes searched, 2^bits entries; default 2 to 8 */
  readonly minBits?: number;
  readonly maxBits?: number;
  /** the pruning criterion (compensated where the method compensates); default 'ec' */
  readonly method?: MethodName;
  /** training samples that calibrate each pruning step; default 1000 */
  readonly calibrationSamples?: number;
  /**
   * fine-tuning epochs of each sparsity probe (Adam): the sparsity rises from 0 over the first two
   * thirds of the updates, pruned every few steps, and the masks are held for the rest; default 3
   */
  readonly finetuneEpochs?: number;
  /** epochs of centroid fine-tuning per codebook; default 1 */
  readonly centroidEpochs?: number;
  /** Adam step of the fine-tuning; default 1e-3 */
  readonly learningRate?: number;
  /** gradient-descent step of the centroid fine-tuning; default 1e-3 */
  readonly centroidLearningRate?: number;
  readonly batchSize?: number;
  /** seeds the validation split, the shuffles and the k-means initialisations; default 0 */
  readonly seed?: number;
  readonly gemm?: Gemm;
  /** before each probe: its number (1-based), the most probes the search can take, what it does */
  readonly onStep?: (step: number, steps: number, what: string) => void;
  /** after each probe, with its measurement */
  readonly onProbe?: (probe: CompressProbe) => void;
}

/** One point the search measured. */
export interface CompressProbe {
  readonly stage: 'prune' | 'share';
  readonly sparsity: number;
  /** codebook bits (stage share) */
  readonly bits?: number;
  readonly validationAccuracy: number;
  /** within the budget */
  readonly accepted: boolean;
}

/** A row of the final table: the model after each stage of the chosen point. */
export interface CompressStage {
  readonly stage: 'dense' | 'pruned' | 'shared';
  /** how the stage is stored: the dense float32 ONNX, `.ecsr` v1 float32, `.ecsr` v2 codebook */
  readonly storage: string;
  readonly sparsity: number;
  /** bits per stored weight value: 32 for float32, the codebook's bits */
  readonly bits: number;
  readonly bytes: number;
  /** the dense float32 ONNX's bytes over this stage's */
  readonly ratio: number;
  readonly validationAccuracy: number;
  readonly testAccuracy?: number;
}

export interface CompressResult {
  /** the `.ecsr` version 2 file */
  readonly file: Uint8Array;
  /** the model the file stands for: codebook values in place of the weights, the tuned biases */
  readonly model: Mlp;
  readonly sparsity: number;
  readonly bits: number;
  /** the lowest validation accuracy the budget accepts */
  readonly threshold: number;
  readonly stages: CompressStage[];
  /** every probe, in the order measured */
  readonly probes: CompressProbe[];
}

/** Pruning steps of the gradual schedule of each sparsity probe (fewer when there are fewer updates). */
const PRUNING_STEPS = 10;

function check(condition: boolean, message: string): void {
  if (!condition) throw new EcpruneError('usage', message);
}

/** The probes a bisection over `range` integers (or steps) can take, its first probe included. */
const bisectionProbes = (range: number) => 1 + Math.ceil(Math.log2(Math.max(1, range)));

/**
 * The smallest `.ecsr` v2 file of `model` (a chain of fully-connected layers) within the accuracy
 * budget on validation data; see the module comment for the search.
 * @example const { file, stages } = await compress(model, train, { maxAccuracyDrop: 0.1 });
 */
export async function compress(
  model: Model,
  train: Dataset,
  options: CompressOptions = {},
): Promise<CompressResult> {
  const dense = chainOf(model);
  if (dense === undefined) {
    throw new EcpruneError(
      'unsupported',
      'compress writes .ecsr, which the runtime runs only for a plain chain of fully-connected layers and activations; this model is a graph',
    );
  }
  const maxAccuracyDrop = options.maxAccuracyDrop ?? 0.1;
  const maxSparsity = options.maxSparsity ?? 0.98;
  const sparsityProbes = options.sparsityProbes ?? 4;
  const minBits = options.minBits ?? CODEBOOK_BITS.min;
  const maxBits = options.maxBits ?? CODEBOOK_BITS.max;
  const seed = options.seed ?? 0;
  check(
    maxAccuracyDrop >= 0 && maxAccuracyDrop <= 100,
    `the accuracy drop must be 0 to 100 points, got ${maxAccuracyDrop}`,
  );
  check(maxSparsity > 0 && maxSparsity < 1, `the largest sparsity must be in (0, 1), got ${maxSparsity}`);
  check(
    Number.isInteger(sparsityProbes) && sparsityProbes >= 0,
    `sparsity probes must be an integer >= 0, got ${sparsityProbes}`,
  );
  check(
    Number.isInteger(minBits) &&
      Number.isInteger(maxBits) &&
      CODEBOOK_BITS.min <= minBits &&
      minBits <= maxBits &&
      maxBits <= CODEBOOK_BITS.max,
    `codebook bits ${minBits} to ${maxBits}: expected ${CODEBOOK_BITS.min} <= min <= max <= ${CODEBOOK_BITS.max}`,
  );
  if (train.targetKind !== 'classes') {
    throw new EcpruneError(
      'input',
      'compress keeps an accuracy budget: the training data needs class labels',
      train.name,
    );
  }
  if (options.validation !== undefined && options.validationFraction !== undefined) {
    throw new EcpruneError('usage', 'pass either validation data or a validation fraction, not both');
  }
  let fitData = train;
  let validation = options.validation;
  if (validation === undefined) {
    const all = await materialize(train);
    const parts = splitDataset(all.x, all.y!, options.validationFraction ?? 0.1, seed, train.name);
    fitData = parts.train;
    validation = parts.validation;
  }
  if (validation.targetKind !== 'classes') {
    throw new EcpruneError('input', 'the validation data needs class labels', validation.name);
  }
  const heldOut: Dataset = validation;
  if (options.test !== undefined && options.test.targetKind !== 'classes') {
    throw new EcpruneError('input', 'the test data needs class labels', options.test.name);
  }

  const gemm = options.gemm ?? defaultGemm();
  const batchSize = options.batchSize ?? 128;
  const accuracyOf = async (mlp: Mlp, data: Dataset) =>
    (await evaluate(mlp, data, { gemm, batchSize: 1000 })).accuracy!;
  const denseAccuracy = await accuracyOf(dense, heldOut);
  // a small epsilon so that "exactly the dense accuracy" is not refused by float rounding
  const threshold = denseAccuracy - maxAccuracyDrop / 100 - 1e-12;
  const probes: CompressProbe[] = [];
  const steps = 1 + sparsityProbes + bisectionProbes(maxBits - minBits + 1);
  let step = 0;
  const measure = (probe: Omit<CompressProbe, 'accepted'>): boolean => {
    const accepted = probe.validationAccuracy >= threshold;
    probes.push({ ...probe, accepted });
    options.onProbe?.(probes[probes.length - 1]);
    return accepted;
  };

  // 1. sparsity: each probe prunes the dense model gradually while fine-tuning it (src/train/schedule.ts)
  const epochs = options.finetuneEpochs ?? 3;
  const totalSteps = epochs * batchesPerEpoch(fitData.samples, { batchSize });
  // the sparsity rises over the first two thirds of the updates, in about PRUNING_STEPS steps; the
  // last third fine-tunes with the masks held (no updates at all: one-shot pruning)
  const end = Math.floor((2 * totalSteps) / 3);
  const frequency = Math.max(1, Math.ceil(end / PRUNING_STEPS));
  const pruneAt = async (sparsity: number): Promise<Mlp> => {
    step++;
    options.onStep?.(
      step,
      Math.max(step, steps),
      `pruning to ${(100 * sparsity).toFixed(1)} % while fine-tuning`,
    );
    const { model: tuned } = await trainModel(dense, fitData, {
      epochs,
      learningRate: options.learningRate,
      batchSize,
      seed,
      gemm,
      pruning: {
        schedule: { finalSparsity: sparsity, end, frequency },
        pruneTo: pruneStep({ method: options.method, gemm }),
        calibrationSamples: options.calibrationSamples,
      },
    });
    return tuned;
  };
  /** accepted probes, sparsest last; the dense model is accepted by definition */
  const accepted: { sparsity: number; mlp: Mlp; accuracy: number }[] = [
    { sparsity: 0, mlp: dense, accuracy: denseAccuracy },
  ];
  let refused = maxSparsity;
  for (let probe = 0; probe <= sparsityProbes; probe++) {
    // bisection in log density: the file's size follows the kept fraction, so its ratio halves evenly
    const density = Math.sqrt((1 - accepted.at(-1)!.sparsity) * (1 - refused));
    const sparsity = probe === 0 ? maxSparsity : Number((1 - density).toFixed(4));
    const mlp = await pruneAt(sparsity);
    const accuracy = await accuracyOf(mlp, heldOut);
    if (measure({ stage: 'prune', sparsity, validationAccuracy: accuracy })) {
      accepted.push({ sparsity, mlp, accuracy });
      if (probe === 0) break;
    } else refused = sparsity;
  }

  // 2. bits: the fewest that keep the budget, on the sparsest accepted model that has any
  const shareAt = async (mlp: Mlp, sparsity: number, bits: number) => {
    step++;
    options.onStep?.(
      step,
      Math.max(step, steps),
      `sharing weights, ${bits}-bit codebooks, fine-tuning the centroids`,
    );
    const masks = keepMasksOf(mlp);
    const codebooks = mlp.layers.map((layer, l) =>
      quantizeCodebook(layer.weight, masks[l], { bits, seed: seed + l }),
    );
    const tuned = await fineTuneCentroids(mlp, masks, codebooks, fitData, {
      epochs: options.centroidEpochs ?? 1,
      batchSize,
      learningRate: options.centroidLearningRate,
      loss: 'ce',
      gemm,
    });
    const validationAccuracy = await accuracyOf(tuned.mlp, heldOut);
    return {
      bits,
      codebooks: tuned.codebooks,
      model: tuned.mlp,
      ok: measure({ stage: 'share', sparsity, bits, validationAccuracy }),
      validationAccuracy,
    };
  };
  for (let k = accepted.length - 1; k >= 0; k--) {
    const { sparsity, mlp, accuracy } = accepted[k];
    let best = await shareAt(mlp, sparsity, maxBits);
    if (!best.ok) continue;
    // fewer bits down to minBits - 1 (refused by assumption); best: the last accepted, the fewest
    await bisect(maxBits, minBits - 1, async (bits) => {
      const shared = await shareAt(mlp, sparsity, bits);
      if (shared.ok) best = shared;
      return shared.ok;
    });
    return finish({ mlp, sparsity, accuracy }, best);
  }
  throw new EcpruneError(
    'unsupported',
    `no ${maxBits}-bit codebook keeps the validation accuracy within ${maxAccuracyDrop} points of the dense model's, even unpruned; allow a larger drop or more bits`,
  );

  async function finish(
    pruned: { mlp: Mlp; sparsity: number; accuracy: number },
    shared: { bits: number; codebooks: CodebookValues[]; model: Mlp; validationAccuracy: number },
  ): Promise<CompressResult> {
    // the structure (which weights are stored) is the pruned model's; values and biases the tuned codebooks'
    const withBiases: Mlp = {
      layers: pruned.mlp.layers.map((layer, l) => ({ ...layer, bias: shared.model.layers[l].bias })),
    };
    const file = writeEcsr(withBiases, { quantized: shared.codebooks });
    const denseBytes = writeOnnx(graphFromMlp(dense!), undefined, {}).length;
    const test = options.test;
    const row = async (
      stage: CompressStage['stage'],
      storage: string,
      mlp: Mlp,
      bits: number,
      bytes: number,
      validationAccuracy: number,
    ): Promise<CompressStage> => ({
      stage,
      storage,
      sparsity: stage === 'dense' ? 0 : pruned.sparsity,
      bits,
      bytes,
      ratio: denseBytes / bytes,
      validationAccuracy,
      ...(test && { testAccuracy: await accuracyOf(mlp, test) }),
    });
    const stages = [
      await row('dense', 'ONNX float32', dense!, 32, denseBytes, denseAccuracy),
      await row('pruned', '.ecsr v1 float32', pruned.mlp, 32, writeEcsr(pruned.mlp).length, pruned.accuracy),
      await row(
        'shared',
        '.ecsr v2 codebook',
        shared.model,
        shared.bits,
        file.length,
        shared.validationAccuracy,
      ),
    ];
    return {
      file,
      model: shared.model,
      sparsity: pruned.sparsity,
      bits: shared.bits,
      threshold,
      stages,
      probes,
    };
  }
}
