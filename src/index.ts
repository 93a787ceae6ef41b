/**
 * ecprune for Node: the core (src/core.ts) plus files on disk and the onnxruntime-node GEMM, which
 * becomes the default backend on import.
 *
 * @example
 * import { dataForModel, loadModel, openDataFile, prune, saveModel } from 'ecprune';
 * const model = await loadModel('model.onnx');
 * const { model: pruned } = await prune(model.graph, dataForModel(model, await openDataFile('calib.npy')), { sparsity: 0.9 });
 * await saveModel('pruned.onnx', pruned, { like: model });
 */
import { setDefaultGemm } from './gemm/default.js';
import { lazyOrtGemm } from './node/ort-gemm.js';

export * from './core.js';
export { openDataFile, openNamedDataset } from './node/datasets.js';
export { writeOutputAtomic } from './node/files.js';
export {
  dataForModel,
  type LoadedModel,
  loadModel,
  loadModel as loadOnnx,
  requireChain,
  saveModel,
} from './node/models.js';
export { createOrtGemm, lazyOrtGemm } from './node/ort-gemm.js';

setDefaultGemm(lazyOrtGemm());
