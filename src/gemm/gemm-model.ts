/**
 * The one-node ONNX model both onnxruntime backends run (onnxruntime-node in src/node/ort-gemm.ts,
 * onnxruntime-web in src/gemm/ort-web-gemm.ts). Browser-safe: onnx-proto only.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** A one-node ONNX model `Y = Gemm(A, B)` with symbolic dimensions, so one session serves every shape. */
export function gemmModelBytes(transA: boolean, transB: boolean): Uint8Array {
  const floatTensor = (name: string, dims: string[]) => ({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((dimParam) => ({ dimParam })) },
      },
    },
  });
  const int = (name: string, i: number) => ({ name, i, type: onnx.AttributeProto.AttributeType.INT });
  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'ecprune',
    graph: {
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
        floatTensor('A', transA ? ['k', 'm'] : ['m', 'k']),
        floatTensor('B', transB ? ['n', 'k'] : ['k', 'n']),
      ],
      output: [floatTensor('Y', ['m', 'n'])],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
