/**
 * Models on disk: the format is chosen by the file's content (ONNX protobuf, TF.js model.json,
 * safetensors, .npz, .ecsr) or, for outputs, by the extension. Everything format-specific lives in
 * src/io; this file only reads and writes bytes and dispatches.
 */
import path from 'node:path';
import { EcpruneError } from '../errors.js';
import { type OnnxTemplate, readOnnx, writeOnnx } from '../io/onnx.js';
import { type Mlp, validateMlp } from '../model/mlp.js';
import { checkOutputPath, readInputFile, type WriteOptions, writeOutputAtomic } from './files.js';

export type ModelFormat = 'onnx';

export interface LoadedModel {
  readonly mlp: Mlp;
  readonly format: ModelFormat;
  readonly file: string;
  /** the ONNX graph's structure, to write a pruned model back the same way */
  readonly onnx?: OnnxTemplate;
}

export function formatFromExtension(file: string): ModelFormat {
  const extension = path.extname(file).toLowerCase();
  if (extension === '.onnx') return 'onnx';
  throw new EcpruneError(
    'usage',
    `cannot tell the model format from the extension '${extension}' (use .onnx)`,
    file,
  );
}

export async function loadModel(file: string): Promise<LoadedModel> {
  const bytes = await readInputFile(file);
  const { mlp, template } = readOnnx(bytes, file);
  return { mlp: validateMlp(mlp, file), format: 'onnx', file, onnx: template };
}

export interface SaveOptions extends WriteOptions {
  /** the model this one was derived from: its structure and names are kept where the format allows */
  readonly like?: LoadedModel;
  /** key/value metadata stored in the file (ONNX metadata_props) */
  readonly metadata?: Record<string, string>;
  /** ONNX: store weights as sparse_initializer */
  readonly onnxSparse?: boolean;
}

/** Checks an output model path before any work: not an input, not existing without force, a known format. */
export async function checkModelOutput(file: string, options: WriteOptions = {}): Promise<void> {
  await checkOutputPath(file, options);
  formatFromExtension(file);
}

export async function saveModel(file: string, mlp: Mlp, options: SaveOptions = {}): Promise<void> {
  formatFromExtension(file);
  const bytes = writeOnnx(mlp, options.like?.onnx, options.metadata ?? {}, { sparse: options.onnxSparse });
  await writeOutputAtomic(file, bytes, options);
}
