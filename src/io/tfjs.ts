/**
 * TensorFlow.js LayersModel in and out (browser-safe): the reader turns a `model.json` and its
 * shards into the graph (tfjs/read.ts), the writer writes a graph back (tfjs/write.ts).
 */

export { checkShardPath, type ShardReader } from './tfjs/manifest.js';
export {
  readTfjs,
  type TfjsDenseTemplate,
  type TfjsModel,
  type TfjsTemplate,
  type TfjsWeightSource,
} from './tfjs/read.js';
export {
  TFJS_SHARD_NAME,
  type TfjsFiles,
  type TfjsWriteOptions,
  writeTfjs,
  writeTfjsGraph,
} from './tfjs/write.js';
export { tfjsGraphProblem } from './tfjs/write-graph.js';
