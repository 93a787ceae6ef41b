/** Every op the graph runs, by its ONNX op type (`Dense`: a fully-connected layer). */
import { BINARY_OPS, CLIP } from './binary.js';
import { DENSE } from './dense.js';
import { NORMALIZE_OPS } from './normalize.js';
import type { Op } from './op.js';
import { SHAPE_OPS } from './shape.js';
import { UNARY_OPS } from './unary.js';

export const OPS: Readonly<Record<string, Op>> = {
  ...UNARY_OPS,
  ...BINARY_OPS,
  Clip: CLIP,
  ...NORMALIZE_OPS,
  ...SHAPE_OPS,
  Dense: DENSE,
};

export const SUPPORTED_OPS: readonly string[] = Object.keys(OPS)
  .filter((op) => op !== 'Dense')
  .sort();
