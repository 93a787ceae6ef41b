/** The producer zoo of issue #11 (test/fixtures/zoo): its manifest, and reading its arrays. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readNpy } from '../../src/io/npy.js';
import type { Matrix } from '../../src/model/matrix.js';

export const ZOO = new URL('../fixtures/zoo/', import.meta.url).pathname;

export interface OnnxFcLayer {
  readonly node: string;
  readonly op: 'Gemm' | 'MatMul';
  readonly transB?: boolean;
  readonly weight: string;
  readonly weightShape: number[];
  readonly weightLayout: 'out_in' | 'in_out';
  readonly bias: string | null;
  readonly biasNode: string | null;
  readonly nIn: number;
  readonly nOut: number;
}

export interface TfjsFcLayer {
  readonly layer: string;
  readonly kernel: string;
  readonly kernelShape: number[];
  readonly bias: string | null;
  readonly activation: string;
}

export interface Fixture {
  readonly name: string;
  readonly producer: 'torch' | 'tfjs';
  readonly file: string;
  readonly opset: number | null;
  readonly dtype: 'float32' | 'float64' | 'float16';
  readonly ioDtype: 'float32' | 'float64';
  readonly inputShape: number[];
  readonly outputShape: number[];
  readonly constructs: string[];
  readonly ops: string[];
  readonly fcLayers: (OnnxFcLayer | TfjsFcLayer)[];
  readonly head: 'softmax' | 'logsoftmax' | null;
  readonly prefix: string[];
  readonly notes: string;
}

/**
 * The bias-free Linears of the zoo, which torch.onnx.export writes as a MatMul on a transposed copy
 * named 'onnx::MatMul_N': the state_dict name of their module, read from make_zoo_torch.py (both
 * are nn.Sequential children: batchnorm_nobias's Linear 0, linear_nobias_last's Linear 4).
 */
const BIAS_FREE_MODULES: Record<string, string> = {
  'batchnorm_nobias /0/MatMul': '0',
  'linear_nobias_last /4/MatMul': '4',
};

/**
 * The name a layer has in its file: a Keras layer's name; a torch module path (`fc1` of
 * `fc1.weight`; a bias-free Linear's module), else the parameter's name (`w1`).
 */
export function layerNameInFile(fixture: string, layer: OnnxFcLayer | TfjsFcLayer): string {
  if ('layer' in layer) return layer.layer;
  if (layer.weight.endsWith('.weight')) return layer.weight.slice(0, -'.weight'.length);
  if (!layer.weight.startsWith('onnx::')) return layer.weight;
  const module = BIAS_FREE_MODULES[`${fixture} ${layer.node}`];
  assert.ok(module !== undefined, `${fixture}: the module of ${layer.node} is listed`);
  return module;
}

export const manifest: { fixtures: Fixture[] } = JSON.parse(readFileSync(path.join(ZOO, 'zoo.json'), 'utf8'));
export const onnxFixtures = manifest.fixtures.filter((f) => f.producer === 'torch');
export const tfjsFixtures = manifest.fixtures.filter((f) => f.producer === 'tfjs');

export function npy(fixture: Fixture, file: string) {
  return readNpy(readFileSync(path.join(ZOO, fixture.name, file)), file);
}

/**
 * |actual - expected| <= 1e-5 |expected| + 1e-6, element by element. The float16 fixture's reference
 * rounds every node's output to float16, as the ONNX graph states; onnxruntime's CPU provider runs
 * float16 Gemm/Relu/Tanh in float32 between Casts it inserts, so it may differ by a float16 step of
 * the largest value: there the bound is 2^-10 |expected| + 2^-9 max |expected|.
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, fixture: Fixture): void {
  assert.equal(actual.length, expected.length, `${fixture.name}: output length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  const [relative, absolute] = fixture.dtype === 'float16' ? [2 ** -10, 2 ** -9 * scale] : [1e-5, 1e-6];
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    assert.ok(
      error <= relative * Math.abs(expected[i]) + absolute,
      `${fixture.name}[${i}]: ${actual[i]} vs the producer's ${expected[i]}`,
    );
  }
}

/** The calibration batch in the fixture's input dtype, and the shape [64, ...inputShape]. */
export function calibration(fixture: Fixture): { data: Float32Array | Float64Array; shape: number[] } {
  const calib = npy(fixture, 'calib.npy');
  assert.equal(calib.dtype, '<f4', `${fixture.name}: calib.npy is float32`);
  assert.deepEqual(calib.shape.slice(1), fixture.inputShape, `${fixture.name}: calib.npy per-sample shape`);
  const data = fixture.ioDtype === 'float64' ? Float64Array.from(calib.data) : Float32Array.from(calib.data);
  return { data, shape: calib.shape };
}

export function expectedOutputs(fixture: Fixture, rows: number) {
  const outputs = npy(fixture, 'outputs.npy');
  assert.equal(
    outputs.dtype,
    fixture.ioDtype === 'float64' ? '<f8' : '<f4',
    `${fixture.name}: outputs dtype`,
  );
  assert.deepEqual(outputs.shape, [rows, ...fixture.outputShape], `${fixture.name}: outputs.npy shape`);
  return outputs.data;
}

/** A zoo model's calibration inputs (calib.npy) as float32 rows of its per-sample size. */
export function calibrationRows(name: string): Matrix {
  const calib = readNpy(readFileSync(path.join(ZOO, name, 'calib.npy')));
  const rows = calib.shape[0];
  return { rows, cols: calib.data.length / rows, data: Float32Array.from(calib.data as ArrayLike<number>) };
}
