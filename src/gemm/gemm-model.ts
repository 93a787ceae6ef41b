/**
 * The ONNX models the onnxruntime backends run (onnxruntime-node in src/node/ort-gemm.ts,
 * onnxruntime-web in src/gemm/ort-web-gemm.ts): the one-node Gemm here, the value infos the
 * emitted calibration graph (src/graph/emit) declares, and their sessions as GraphSessions.
 * Browser-safe: onnx-proto only.
 */
import type { onnx as OnnxTypes } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import type { GraphSession } from './gemm.js';

const { onnx } = onnxProto;

/** A float32 graph input or output; dimensions fixed (numbers) or symbolic (names). @internal */
export function floatValueInfo(name: string, dims: readonly (number | string)[]): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** The opset of the models built here (Gemm; ReduceMean/ReduceSumSquare axes as attributes, ReduceSum's as an input). */
export const MODEL_OPSET = 13;

/** `graph` as an encoded opset-13 model. @internal (onnx-proto types stay out of the published .d.ts) */
export function encodeModel(graph: OnnxTypes.IGraphProto): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: MODEL_OPSET }],
    producerName: 'ecprune',
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** What both onnxruntime packages' InferenceSession offer (their types differ only by package). */
interface OrtSession<T> {
  run(feeds: Record<string, T>, fetches: string[]): Promise<Record<string, { readonly data: unknown }>>;
  release(): Promise<void>;
}

/** An onnxruntime session as a GraphSession; `tensor` makes the package's float32 tensor. */
export function graphSession<T>(
  session: OrtSession<T>,
  tensor: (data: Float32Array, dims: readonly number[]) => T,
): GraphSession {
  return {
    async run(feeds, outputs) {
      const tensors: Record<string, T> = {};
      for (const [name, { data, dims }] of Object.entries(feeds)) tensors[name] = tensor(data, dims);
      const result = await session.run(tensors, [...outputs]);
      return Object.fromEntries(outputs.map((name) => [name, result[name].data as Float32Array]));
    },
    release: () => session.release(),
  };
}

/** A one-node ONNX model `Y = Gemm(A, B)` with symbolic dimensions, so one session serves every shape. */
export function gemmModelBytes(transA: boolean, transB: boolean): Uint8Array {
  const int = (name: string, i: number) => ({ name, i, type: onnx.AttributeProto.AttributeType.INT });
  return encodeModel({
    name: 'gemm',
    node: [
      {
        opType: 'Gemm',
        input: ['A', 'B'],
        output: ['Y'],
        attribute: [int('transA', +transA), int('transB', +transB)],
      },
    ],
    input: [
      floatValueInfo('A', transA ? ['k', 'm'] : ['m', 'k']),
      floatValueInfo('B', transB ? ['n', 'k'] : ['k', 'n']),
    ],
    output: [floatValueInfo('Y', ['m', 'n'])],
  });
}
