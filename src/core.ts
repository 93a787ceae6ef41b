/**
 * ecprune's core: everything that runs in any JavaScript runtime (browsers included). No Node
 * built-ins are imported from here; `ecprune` in Node adds file helpers and the onnxruntime-node
 * GEMM on top (src/index.ts).
 */
export { applyPruning } from './compensate/apply.js';
export { optimalBiasShift } from './compensate/delta.js';
export { calibrateShiftScales, type Discrepancy } from './compensate/scale.js';
export {
  type Batch,
  type Dataset,
  firstSamples,
  inMemoryDataset,
  materialize,
  type Targets,
} from './data/dataset.js';
export { createRandom, type Random } from './data/random.js';
export { EcpruneError, type EcpruneErrorCode } from './errors.js';
export { defaultGemm, setDefaultGemm } from './gemm/default.js';
export type { Gemm, GemmOptions } from './gemm/gemm.js';
export { matmulTs, tsGemm } from './gemm/ts-gemm.js';
export {
  compensationTarget,
  type DenseLayer,
  type Graph,
  type GraphNode,
  type Model,
  withLayers,
  withOutput,
} from './graph/graph.js';
export type { LossKind } from './graph/loss.js';
export { asGraph, chainOf, graphFromMlp, logitsGraph } from './graph/mlp-graph.js';
export { SUPPORTED_OPS } from './graph/ops/index.js';
export { type FrozenPrefix, throughPrefix } from './graph/prefix.js';
export { forward } from './graph/run.js';
export { readCsv } from './io/csv.js';
export { readIdx } from './io/idx.js';
export { type NpyArray, readNpy, toFeatureMatrix, toTargets, writeNpy } from './io/npy.js';
export { readNpz, writeNpz } from './io/npz.js';
export { type OnnxModel, type OnnxTemplate, readOnnx, writeOnnx } from './io/onnx.js';
export { readTorch, type TorchDtype, type TorchTensor, writeTorch } from './io/torch.js';
export { type Activation, formatActivation, parseActivation } from './model/activations.js';
export { type FloatArray, fromRows, type Matrix, matrix } from './model/matrix.js';
export {
  cloneMlp,
  type Layer,
  layerSizes,
  type Mlp,
  nonzeroWeightCount,
  validateMlp,
  weightCount,
} from './model/mlp.js';
export {
  type BudgetOptions,
  type BudgetProbe,
  type BudgetResult,
  pruneToBudget,
} from './pipeline/budget.js';
export {
  type CompressOptions,
  type CompressProbe,
  type CompressResult,
  type CompressStage,
  compress,
} from './pipeline/compress.js';
export {
  DEFAULT_RECIPE,
  type PruneOptions,
  type PruneResult,
  prune,
  resolveRecipe,
  reusesStatistics,
} from './pipeline/prune.js';
export { type ScoreOptions, type ScoreResult, score } from './pipeline/score.js';
export { runSweep, type SweepOptions, type SweepRow } from './pipeline/sweep.js';
export { formatVariant, parseVariant, pruneMetadata } from './pipeline/variant-name.js';
export type { Criterion, LayerScores } from './score/criterion.js';
export { METHOD_NAMES, METHODS, type MethodName, type MethodSpec } from './score/methods.js';
export {
  type CalibrationStatistics,
  collectStatistics,
  type LayerStatistics,
  outputSensitivities,
} from './score/statistics.js';
export {
  type LayerControl,
  type LayerRef,
  MIN_KEPT_PER_NEURON,
  type ThinLayer,
  thinLayers,
} from './select/layers.js';
export {
  type KeepMask,
  type LayerTargets,
  pruneCount,
  type Scope,
  selectGlobal,
  selectMasks,
  selectPerLayer,
} from './select/select.js';
export { type EvaluateOptions, type Evaluation, evaluate } from './train/evaluate.js';
export { VERSION } from './version.js';
