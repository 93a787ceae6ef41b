/** The MLP view of an ONNX file, for tests of the chain-only code paths (until they take graphs). */
import { chainOf } from '../../src/graph/mlp-graph.js';
import { readOnnx } from '../../src/io/onnx.js';
import type { Mlp } from '../../src/model/mlp.js';

export function readOnnxMlp(bytes: Uint8Array, file?: string): Mlp {
  const mlp = chainOf(readOnnx(bytes, file).graph);
  if (mlp === undefined) throw new Error(`${file ?? 'the model'} is not a chain of layers`);
  return mlp;
}
