/**
 * A small ONNX node writer for the graphs the autodiff emits (src/graph/emit/calibration.ts):
 * nodes get fresh output names, constants become initializers. Browser-safe: onnx-proto only.
 */
import type { onnx as OnnxTypes } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import { floatValueInfo } from '../../gemm/gemm-model.js';

const { onnx } = onnxProto;
const { INT, INTS, FLOAT, STRING } = onnx.AttributeProto.AttributeType;

/** The opset of the emitted graphs: Gelu (20) and the reductions' axes as inputs (18). */
export const EMIT_OPSET = 21;

/**
 * A node attribute, as onnx-proto encodes it (the fields the emission writes); declared here so
 * that no onnx-proto type reaches the published declarations.
 */
export interface Attribute {
  readonly name: string;
  readonly type: number;
  readonly i?: number;
  readonly f?: number;
  readonly ints?: number[];
  readonly s?: Uint8Array;
}

export const intAttr = (name: string, i: number): Attribute => ({ name, i, type: INT });
export const intsAttr = (name: string, ints: readonly number[]): Attribute => ({
  name,
  ints: [...ints],
  type: INTS,
});
export const floatAttr = (name: string, f: number): Attribute => ({ name, f, type: FLOAT });
export const stringAttr = (name: string, s: string): Attribute => ({
  name,
  s: new TextEncoder().encode(s),
  type: STRING,
});

export class OnnxNodes {
  /** @internal */
  readonly nodes: OnnxTypes.INodeProto[] = [];
  /** @internal */
  readonly initializers: OnnxTypes.ITensorProto[] = [];
  /** @internal */
  readonly inputs: OnnxTypes.IValueInfoProto[] = [];
  /** @internal */
  readonly outputs: OnnxTypes.IValueInfoProto[] = [];
  private count = 0;
  /** initializers by their values array: a layer's weight used forward and backward is stored once */
  private readonly stored = new Map<ArrayLike<number>, string>();

  private fresh(prefix: string): string {
    return `${prefix}_${this.count++}`;
  }

  /** One node with one output; returns the output's name. */
  node(opType: string, inputs: readonly string[], attribute: readonly Attribute[] = []): string {
    const output = this.fresh(opType);
    this.nodes.push({
      opType,
      name: output,
      input: [...inputs],
      output: [output],
      attribute: [...attribute],
    });
    return output;
  }

  /** One node with `count` outputs. */
  nodeOutputs(
    opType: string,
    inputs: readonly string[],
    count: number,
    attribute: readonly Attribute[] = [],
  ) {
    const outputs = Array.from({ length: count }, () => this.fresh(opType));
    this.nodes.push({
      opType,
      name: outputs[0],
      input: [...inputs],
      output: outputs,
      attribute: [...attribute],
    });
    return outputs;
  }

  floats(dims: readonly number[], values: ArrayLike<number>): string {
    const known = this.stored.get(values);
    if (known !== undefined) return known;
    const name = this.fresh('const');
    this.stored.set(values, name);
    const data = values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
    this.initializers.push({
      name,
      dims: [...dims],
      dataType: onnx.TensorProto.DataType.FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  scalar(value: number): string {
    return this.floats([], [value]);
  }

  ints(values: readonly number[]): string {
    const name = this.fresh('ints');
    const data = BigInt64Array.from(values, (v) => BigInt(v));
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: onnx.TensorProto.DataType.INT64,
      rawData: new Uint8Array(data.buffer),
    });
    return name;
  }

  /** A float32 graph input with fixed (numbers) or symbolic (names) dimensions. */
  input(name: string, dims: readonly (number | string)[]): void {
    this.inputs.push(floatValueInfo(name, dims));
  }

  /** `value` as the float32 graph output `name`. */
  output(value: string, name: string, dims: readonly (number | string)[]): void {
    this.nodes.push({ opType: 'Identity', name, input: [value], output: [name] });
    this.outputs.push(floatValueInfo(name, dims));
  }

  encode(name: string): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 10,
      opsetImport: [{ domain: '', version: EMIT_OPSET }],
      producerName: 'ecprune',
      graph: {
        name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
