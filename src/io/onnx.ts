/**
 * ONNX in and out, bytes in and bytes out (browser-safe): onnx/read.ts turns a file into the graph
 * (and its frozen prefix), onnx/write.ts writes the graph back into the file or as a fresh model.
 */
export {
  describeOnnx,
  frozenPrefixOf,
  type OnnxLayerTemplate,
  type OnnxModel,
  type OnnxTemplate,
  type OnnxTensorInfo,
  readOnnx,
  weightDtypeOf,
} from './onnx/read.js';
export { type WriteOnnxOptions, writeOnnx } from './onnx/write.js';
