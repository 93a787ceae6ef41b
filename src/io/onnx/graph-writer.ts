/**
 * Emits ONNX nodes and initializers with unique names: what the calibration graph
 * (src/score/ec-graph.ts) is built with.
 */
import type { onnx as OnnxTypes } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import type { Activation, ActivationKind } from '../../model/activations.js';
import { rawTensor, type SparseTensorProto, sparseTensor, type TensorProto } from './tensors.js';

const { onnx } = onnxProto;
type NodeProto = OnnxTypes.INodeProto;
type AttributeProto = OnnxTypes.IAttributeProto;

/** Gelu became an ONNX op in opset 20; before that GELU is written as its Erf decomposition. */
const GELU_OPSET = 20;
/** The node names torch gives the Erf decomposition of GELU, 0.5 * (x * (1 + erf(x / sqrt(2)))). */
const GELU_ERF_NAMES = ['Div', 'Erf', 'Add', 'Mul', 'Mul_1'];
const OP_OF_KIND: ReadonlyMap<ActivationKind, string> = new Map([
  ['relu', 'Relu'],
  ['leaky_relu', 'LeakyRelu'],
  ['tanh', 'Tanh'],
  ['sigmoid', 'Sigmoid'],
  ['elu', 'Elu'],
  ['softplus', 'Softplus'],
  ['gelu', 'Gelu'],
]);

/** Collects nodes and initializers, keeping tensor names and node names unique. */
export class GraphWriter {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly sparseInitializers: SparseTensorProto[] = [];
  private readonly tensorNames: Set<string>;
  private readonly nodeNames = new Set<string>();

  constructor(
    reservedTensorNames: string[],
    private readonly sparse: boolean,
  ) {
    this.tensorNames = new Set(reservedTensorNames);
  }

  private static unique(names: Set<string>, wanted: string): string {
    let name = wanted;
    for (let i = 1; names.has(name); i++) name = `${wanted}_${i}`;
    names.add(name);
    return name;
  }

  /** Adds a node reading `inputs`; returns the name of its output. */
  node(opType: string, wantedName: string, inputs: string[], attribute: AttributeProto[] = []): string {
    const name = GraphWriter.unique(this.nodeNames, wantedName);
    const output = GraphWriter.unique(this.tensorNames, `${name}_output_0`);
    this.nodes.push({ opType, name, input: inputs, output: [output], attribute });
    return output;
  }

  /** Adds a float32 initializer, sparse when writing sparse and `isWeight`; returns its name. */
  floats(wantedName: string, dims: readonly number[], values: Float32Array, isWeight = false): string {
    const name = GraphWriter.unique(this.tensorNames, wantedName);
    if (this.sparse && isWeight) this.sparseInitializers.push(sparseTensor(name, dims, values));
    else this.initializers.push(rawTensor(name, dims, values, 'float32'));
    return name;
  }

  ints(wantedName: string, values: readonly number[]): string {
    const name = GraphWriter.unique(this.tensorNames, wantedName);
    this.initializers.push(rawTensor(name, [values.length], values, 'int64'));
    return name;
  }

  /** Renames the chain's last output to the graph output. */
  finish(outputName: string): void {
    const last = this.nodes.at(-1);
    if (last !== undefined) last.output = [outputName];
  }
}

const floatAttr = (name: string, f: number): AttributeProto => ({
  name,
  f,
  type: onnx.AttributeProto.AttributeType.FLOAT,
});

/** Writes `act` after the tensor `input`, reusing the template's node names when they fit; returns the output. */
export function writeActivation(
  graph: GraphWriter,
  act: Activation,
  names: readonly string[],
  scope: string,
  input: string,
  opset: number,
): string {
  if (act.kind === 'identity') return input;
  if (act.kind !== 'gelu' || opset >= GELU_OPSET) {
    const op = OP_OF_KIND.get(act.kind) ?? '';
    const alpha = act.kind === 'leaky_relu' || act.kind === 'elu' ? [floatAttr('alpha', act.alpha)] : [];
    return graph.node(op, names.length === 1 ? names[0] : `${scope}/${op}`, [input], alpha);
  }
  const [div, erf, add, mul, mul1] =
    names.length === GELU_ERF_NAMES.length ? names : GELU_ERF_NAMES.map((op) => `${scope}/${op}`);
  const scalar = (name: string, value: number) => graph.floats(name, [], new Float32Array([value]));
  const scaled = graph.node('Div', div, [input, scalar(`${div}.sqrt2`, Math.SQRT2)]);
  const onePlusErf = graph.node('Add', add, [graph.node('Erf', erf, [scaled]), scalar(`${add}.one`, 1)]);
  const product = graph.node('Mul', mul, [input, onePlusErf]);
  return graph.node('Mul', mul1, [product, scalar(`${mul1}.half`, 0.5)]);
}
