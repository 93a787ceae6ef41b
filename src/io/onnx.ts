/**
 * ONNX in and out, bytes in and bytes out (browser-safe).
 *
 * Reads the graphs `torch.onnx.export` writes for an `nn.Sequential` of `nn.Linear` layers and
 * activations (opset 9 and later): an optional leading Flatten/Reshape, then per layer a Gemm, or a
 * MatMul (+ an Add of the bias), then an optional activation. Identity nodes are skipped anywhere.
 * What is needed to write the model back with the same structure and names is kept in an
 * `OnnxTemplate`: plain data describing the graph, no protobuf objects.
 */

import type { onnx as OnnxTypes } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import { badInput, EcpruneError, type EcpruneErrorCode } from '../errors.js';
import type { Activation, ActivationKind } from '../model/activations.js';
import { matrix, transpose } from '../model/matrix.js';
import { inputSize, type Layer, type Mlp, outputSize, validateMlp } from '../model/mlp.js';
import { float16, HOST_LITTLE_ENDIAN } from './npy.js';

const { onnx } = onnxProto;
type NodeProto = OnnxTypes.INodeProto;
type TensorProto = OnnxTypes.ITensorProto;
type SparseTensorProto = OnnxTypes.ISparseTensorProto;
type ValueInfoProto = OnnxTypes.IValueInfoProto;
type AttributeProto = OnnxTypes.IAttributeProto;
/** protobufjs gives int64 fields as numbers or Long objects */
type Int64 = number | { toNumber(): number };

/** A graph input or output: name, element type (TensorProto.DataType), dims (number, symbolic name, or null = unknown). */
export interface OnnxTensorInfo {
  readonly name: string;
  readonly elemType: number;
  /** undefined when the file states no shape */
  readonly dims?: readonly (number | string | null)[];
}

/** The leading node that turns the model input into a batch of rows. */
export type OnnxPreprocess =
  | { readonly op: 'Flatten'; readonly nodeName: string; readonly axis: number }
  | {
      readonly op: 'Reshape';
      readonly nodeName: string;
      readonly shapeName: string;
      readonly shape: readonly number[];
    };

export interface OnnxLayerTemplate {
  readonly op: 'Gemm' | 'MatMul';
  /** the Gemm or MatMul node */
  readonly nodeName: string;
  readonly weightName: string;
  /** Gemm: weight stored n_out x n_in (transB=1) or n_in x n_out (transB=0); MatMul weights are n_in x n_out */
  readonly transB: boolean;
  /** Gemm's C or the Add's constant; undefined when the layer had no bias */
  readonly biasName?: string;
  /** MatMul only: the Add node, and whether the bias is its first input */
  readonly addNodeName?: string;
  readonly biasFirst?: boolean;
  /** the activation after the layer and the names of its nodes (5 for the Erf form of GELU) */
  readonly activation: { readonly kind: ActivationKind; readonly nodeNames: readonly string[] };
}

/** What `writeOnnx` needs to write a model back with the structure, names and opset it was read with. */
export interface OnnxTemplate {
  readonly irVersion: number;
  readonly opsetImports: readonly { readonly domain: string; readonly version: number }[];
  readonly producerName: string;
  readonly producerVersion: string;
  readonly graphName: string;
  readonly input: OnnxTensorInfo;
  readonly output: OnnxTensorInfo;
  readonly preprocess?: OnnxPreprocess;
  readonly layers: readonly OnnxLayerTemplate[];
  readonly metadata: Readonly<Record<string, string>>;
}

export interface OnnxModel {
  readonly mlp: Mlp;
  readonly template: OnnxTemplate;
}

const SUPPORTED =
  'ecprune reads Gemm/MatMul+Add MLPs with Relu, LeakyRelu, Tanh, Sigmoid, Elu, Softplus or Gelu activations, ' +
  'after at most one Flatten/Reshape';
const MIN_OPSET = 9;
/** Gelu became an ONNX op in opset 20; before that GELU is written as its Erf decomposition. */
const GELU_OPSET = 20;
/** The node names torch gives the Erf decomposition of GELU, 0.5 * (x * (1 + erf(x / sqrt(2)))). */
const GELU_ERF_NAMES = ['Div', 'Erf', 'Add', 'Mul', 'Mul_1'];
/** A sparse tensor's dense size is not bounded by the file size: refuse forged dims before allocating. */
const MAX_DENSE_VALUES = 2 ** 28;
const DEFAULT_DOMAINS = ['', 'ai.onnx'];
const { FLOAT, FLOAT16, DOUBLE, INT32, INT64 } = onnx.TensorProto.DataType;

const unsupportedError = (detail: string, file?: string, where?: string) =>
  new EcpruneError('unsupported', detail, file, where);

// ---------------------------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------------------------

/** An int64 as a number; NaN when it is not a safe integer. */
function int(value: Int64 | null | undefined): number {
  const n = value == null ? 0 : typeof value === 'number' ? value : value.toNumber();
  return Number.isSafeInteger(n) ? n : Number.NaN;
}

/** Weights and biases are floats; Reshape shapes are ints. */
type NumberKind = 'float' | 'int';

interface ElementType {
  readonly kind: NumberKind;
  readonly bytes: number;
  /** one element of raw_data (always little-endian) */
  raw(view: DataView, offset: number): number;
  /** the typed field that holds the values when raw_data is empty */
  field(t: TensorProto): ArrayLike<number> | null | undefined;
}

/** How ONNX stores the element types ecprune accepts. */
function elementType(dataType: number | null | undefined): ElementType | undefined {
  switch (dataType) {
    case FLOAT:
      return { kind: 'float', bytes: 4, raw: (v, o) => v.getFloat32(o, true), field: (t) => t.floatData };
    case DOUBLE:
      return { kind: 'float', bytes: 8, raw: (v, o) => v.getFloat64(o, true), field: (t) => t.doubleData };
    case FLOAT16: // the 16 bits of each value sit in int32_data
      return {
        kind: 'float',
        bytes: 2,
        raw: (v, o) => float16(v.getUint16(o, true)),
        field: (t) => t.int32Data?.map(float16),
      };
    case INT32:
      return { kind: 'int', bytes: 4, raw: (v, o) => v.getInt32(o, true), field: (t) => t.int32Data };
    case INT64:
      return {
        kind: 'int',
        bytes: 8,
        raw: (v, o) => Number(v.getBigInt64(o, true)),
        field: (t) => t.int64Data?.map(int),
      };
    default:
      return undefined;
  }
}

/** Tensor values: floats in a Float32Array (float16/float64 converted), ints in a Float64Array. */
interface Tensor<V extends Float32Array | Float64Array = Float32Array | Float64Array> {
  readonly dims: number[];
  readonly values: V;
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Makes the error for a problem with a tensor, naming the file and the node that uses it. */
type Fail = (detail: string, code?: EcpruneErrorCode) => EcpruneError;

function tensorDims(dims: Int64[] | null | undefined, what: string, fail: Fail): number[] {
  const out = (dims ?? []).map(int);
  if (out.some((d) => !(d >= 0))) throw fail(`${what} has invalid dims [${out.join(', ')}]`);
  return out;
}

/** The values of a dense tensor. The declared size is checked against the data present before allocating. */
function decodeTensor(t: TensorProto, kind: NumberKind, fail: Fail): Tensor {
  const what = `tensor '${t.name ?? ''}'`;
  const type = elementType(t.dataType);
  if (type?.kind !== kind) {
    const typeName = onnx.TensorProto.DataType[t.dataType ?? 0] ?? t.dataType;
    const expected = kind === 'float' ? 'FLOAT, FLOAT16 or DOUBLE' : 'INT32 or INT64';
    throw fail(`${what} has element type ${typeName}; expected ${expected}`, 'unsupported');
  }
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw fail(
      `${what} keeps its data in an external file; ecprune reads self-contained .onnx files`,
      'unsupported',
    );
  }
  const dims = tensorDims(t.dims, what, fail);
  const count = product(dims);
  const raw = t.rawData ?? new Uint8Array(0);
  const field = raw.length > 0 ? undefined : (type.field(t) ?? []);
  const present = field === undefined ? raw.length / type.bytes : field.length;
  if (present !== count) {
    throw fail(`${what} has dims [${dims.join(', ')}] (${count} values) but holds ${present} values`);
  }
  const values = kind === 'float' ? new Float32Array(count) : new Float64Array(count);
  if (field !== undefined) values.set(field);
  else {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < count; i++) values[i] = type.raw(view, i * type.bytes);
  }
  return { dims, values };
}

/** A sparse tensor made dense; its indices are [NNZ] positions in the flat tensor or [NNZ, rank] coordinates. */
function densify(sparse: SparseTensorProto, kind: NumberKind, fail: Fail): Tensor {
  const what = `sparse tensor '${sparse.values?.name ?? ''}'`;
  const dims = tensorDims(sparse.dims, what, fail);
  const count = product(dims);
  if (count > MAX_DENSE_VALUES) {
    throw fail(`${what} has dims [${dims.join(', ')}]: too many values (${count})`, 'limit');
  }
  const { values } = decodeTensor(sparse.values ?? {}, kind, fail);
  const indices = decodeTensor(sparse.indices ?? { dataType: INT64 }, 'int', fail);
  const nnz = values.length;
  const [rows, cols] = indices.dims;
  const linear = indices.dims.length === 1 && rows === nnz;
  if (!linear && !(indices.dims.length === 2 && rows === nnz && cols === dims.length)) {
    throw fail(`${what} has ${nnz} values but indices of shape [${indices.dims.join(', ')}]`);
  }
  // every index is checked before the dense tensor is allocated: a forged file costs nothing
  const positions = new Float64Array(nnz);
  for (let k = 0; k < nnz; k++) {
    let position = linear ? indices.values[k] : 0;
    let inRange = position >= 0 && position < count;
    for (let d = 0; !linear && d < dims.length; d++) {
      const coordinate = indices.values[k * dims.length + d];
      inRange &&= coordinate >= 0 && coordinate < dims[d];
      position = position * dims[d] + coordinate;
    }
    if (!inRange) throw fail(`${what}: index ${k} points outside dims [${dims.join(', ')}]`);
    positions[k] = position;
  }
  const dense = kind === 'float' ? new Float32Array(count) : new Float64Array(count);
  for (let k = 0; k < nnz; k++) dense[positions[k]] = values[k];
  return { dims, values: dense };
}

/** An initializer, sparse initializer or Constant node output. */
type Constant =
  | { readonly kind: 'dense'; readonly tensor: TensorProto }
  | { readonly kind: 'sparse'; readonly tensor: SparseTensorProto };

/** The tensor a Constant node holds, in whichever of its attributes it came. */
function constantOfNode(node: NodeProto): Constant | undefined {
  const [a] = node.attribute ?? [];
  if (a == null || node.attribute?.length !== 1) return undefined;
  const dense = (tensor: TensorProto): Constant => ({
    kind: 'dense',
    tensor: { name: node.output?.[0], ...tensor },
  });
  switch (a.name) {
    case 'value':
      return a.t ? { kind: 'dense', tensor: a.t } : undefined;
    case 'sparse_value':
      return a.sparseTensor ? { kind: 'sparse', tensor: a.sparseTensor } : undefined;
    case 'value_float':
      return dense({ dataType: FLOAT, floatData: [a.f ?? 0] });
    case 'value_floats':
      return dense({ dataType: FLOAT, dims: [a.floats?.length ?? 0], floatData: a.floats });
    case 'value_int':
      return dense({ dataType: INT64, int64Data: [a.i ?? 0] });
    case 'value_ints':
      return dense({ dataType: INT64, dims: [a.ints?.length ?? 0], int64Data: a.ints });
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

function attribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

function floatAttribute(node: NodeProto, name: string, fallback: number): number {
  return attribute(node, name)?.f ?? fallback;
}

function intAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a === undefined ? fallback : int(a.i);
}

/** The shortest decimal with the same float32 value: LeakyRelu(0.2)'s alpha reads 0.2, not 0.20000000298023224. */
function shortestFloat32(value: number): number {
  for (let digits = 1; digits < 10; digits++) {
    const decimal = Number(value.toPrecision(digits));
    if (Math.fround(decimal) === Math.fround(value)) return decimal;
  }
  return value;
}

/** Single-node activations: the op, the Activation it reads as, and its alpha attribute's default. */
const ACTIVATION_OPS = new Map<string, { kind: Exclude<ActivationKind, 'identity'>; alphaDefault?: number }>([
  ['Relu', { kind: 'relu' }],
  ['LeakyRelu', { kind: 'leaky_relu', alphaDefault: 0.01 }],
  ['Tanh', { kind: 'tanh' }],
  ['Sigmoid', { kind: 'sigmoid' }],
  ['Elu', { kind: 'elu', alphaDefault: 1 }],
  ['Softplus', { kind: 'softplus' }],
  ['Gelu', { kind: 'gelu' }],
]);
const OP_OF_KIND = new Map([...ACTIVATION_OPS].map(([op, { kind }]) => [kind, op]));

const IDENTITY: Activation = { kind: 'identity' };
const NO_ACTIVATION: OnnxLayerTemplate['activation'] = { kind: 'identity', nodeNames: [] };

const isDefaultDomain = (node: NodeProto) => DEFAULT_DOMAINS.includes(node.domain ?? '');
const isIdentity = (node: NodeProto) => node.opType === 'Identity' && isDefaultDomain(node);

/** The input of a two-input node that is not `input`. */
function otherInput(node: NodeProto, input: string | undefined): string | undefined {
  const [a, b, ...rest] = node.input ?? [];
  if (rest.length > 0 || input === undefined) return undefined;
  return a === input ? b : b === input ? a : undefined;
}

function tensorInfo(value: ValueInfoProto): OnnxTensorInfo {
  const type = value.type?.tensorType;
  const dims = type?.shape?.dim?.map((d) => d.dimParam ?? (d.dimValue == null ? null : int(d.dimValue)));
  return { name: value.name ?? '', elemType: type?.elemType ?? 0, ...(dims === undefined ? {} : { dims }) };
}

interface ReadLayer {
  readonly layer: Layer;
  readonly template: OnnxLayerTemplate;
  /** the tensor the layer (with its bias) writes */
  readonly output: string;
}

/** Walks the graph from its input to its output, one node at a time, and checks that it is one chain. */
class ChainReader {
  private readonly constants = new Map<string, Constant>();
  private readonly producers = new Map<string, NodeProto>();
  private readonly consumers = new Map<string, NodeProto[]>();
  private readonly labels = new Map<NodeProto, string>();
  /** nodes accounted for; reaching one again means a cycle */
  private readonly used = new Set<NodeProto>();

  constructor(
    private readonly graph: OnnxTypes.IGraphProto,
    private readonly file?: string,
  ) {
    const addConstant = (name: string, constant: Constant, node?: NodeProto) => {
      if (this.constants.has(name)) throw this.error(node, `there are two initializers named '${name}'`);
      this.constants.set(name, constant);
    };
    for (const t of graph.initializer ?? []) addConstant(t.name ?? '', { kind: 'dense', tensor: t });
    for (const t of graph.sparseInitializer ?? [])
      addConstant(t.values?.name ?? '', { kind: 'sparse', tensor: t });
    (graph.node ?? []).forEach((node, index) => {
      this.labels.set(node, node.name || `${node.opType}_${index}`);
      if (node.opType === 'Constant' && isDefaultDomain(node)) {
        const constant = constantOfNode(node);
        if (constant === undefined) throw this.unsupported(node, 'without a tensor value');
        addConstant(node.output?.[0] ?? '', constant, node);
        this.used.add(node);
        return;
      }
      for (const output of node.output ?? []) {
        const other = this.producers.get(output);
        if (other !== undefined)
          throw this.error(node, `tensor '${output}' is also written by ${this.at(other)}`);
        this.producers.set(output, node);
      }
      for (const input of new Set(node.input ?? [])) {
        if (input !== '') this.consumers.set(input, [...(this.consumers.get(input) ?? []), node]);
      }
    });
  }

  /** The node's name, or `<op>_<index>` for an unnamed node. */
  private name(node: NodeProto): string {
    return this.labels.get(node) ?? '';
  }

  private at(node: NodeProto): string {
    return `node '${this.name(node)}'`;
  }

  private error(node: NodeProto | undefined, detail: string): EcpruneError {
    return badInput(detail, this.file, node && this.at(node));
  }

  /** `op 'Gemm' with transA=1 is not supported (...)`: `detail` says what about the node is the problem. */
  private unsupported(node: NodeProto, detail?: string): EcpruneError {
    const op = isDefaultDomain(node) ? node.opType : `${node.domain}.${node.opType}`;
    return unsupportedError(
      `op '${op}'${detail ? ` ${detail}` : ''} is not supported (${SUPPORTED})`,
      this.file,
      this.at(node),
    );
  }

  /** Reads the chain from the graph input to the graph output. */
  read(input: string, output: string): { layers: ReadLayer[]; preprocess?: OnnxPreprocess } {
    const layers: ReadLayer[] = [];
    let preprocess: OnnxPreprocess | undefined;
    let current = input;
    for (;;) {
      current = this.skipIdentities(current);
      const node = this.next(current);
      if (node === undefined) break;
      const op = isDefaultDomain(node) ? (node.opType ?? '') : '';
      if (op === 'Flatten' || op === 'Reshape') {
        if (layers.length > 0 || preprocess !== undefined)
          throw this.unsupported(node, 'after the start of the graph');
        preprocess = this.readPreprocess(node);
        current = this.chainOutput(node);
      } else if (op === 'Gemm' || op === 'MatMul') {
        const read = op === 'Gemm' ? this.readGemm(node, current) : this.readMatMul(node, current);
        const previous = layers.at(-1)?.layer.weight.rows;
        const { cols } = read.layer.weight;
        if (previous !== undefined && previous !== cols) {
          throw this.error(
            node,
            `the weight takes ${cols} inputs but the previous layer has ${previous} outputs`,
          );
        }
        const act = this.readActivation(read.output);
        layers.push({
          layer: { ...read.layer, activation: act.activation },
          template: { ...read.template, activation: act.template },
          output: act.output,
        });
        current = act.output;
      } else {
        throw this.unsupported(
          node,
          ACTIVATION_OPS.has(op) ? 'without a Gemm/MatMul layer right before it' : undefined,
        );
      }
    }
    if (layers.length === 0)
      throw this.error(undefined, `the graph has no Gemm or MatMul layer after input '${input}'`);
    if (current !== output) {
      const last = this.producers.get(current);
      throw this.error(
        last,
        `the chain from input '${input}' ends at tensor '${current}', not at the graph output '${output}'`,
      );
    }
    this.checkAllNodesUsed();
    return { layers, ...(preprocess === undefined ? {} : { preprocess }) };
  }

  private visit(node: NodeProto): NodeProto {
    if (this.used.has(node)) throw this.error(node, 'the node is reached twice: the graph has a cycle');
    this.used.add(node);
    return node;
  }

  /** The tensor after the Identity nodes (if any) that follow `tensor`. */
  private skipIdentities(tensor: string): string {
    // a loop, not recursion: a long chain of Identity nodes must not overflow the stack
    let current = tensor;
    for (;;) {
      const users = this.consumers.get(current) ?? [];
      if (!(users.length === 1 && isIdentity(users[0]))) return current;
      current = this.chainOutput(this.visit(users[0]));
    }
  }

  /** The one node that reads `tensor`, now used, or undefined at the end of the chain. */
  private next(tensor: string): NodeProto | undefined {
    const users = this.consumers.get(tensor) ?? [];
    if (users.length > 1) {
      const names = users.map((n) => this.at(n)).join(', ');
      throw this.error(
        users[0],
        `tensor '${tensor}' feeds ${users.length} nodes (${names}): the graph is not one chain`,
      );
    }
    return users.length === 0 ? undefined : this.visit(users[0]);
  }

  private chainOutput(node: NodeProto): string {
    const output = node.output?.[0];
    if (!output) throw this.error(node, 'the node has no output');
    return output;
  }

  /** The constant called `name`, looking through Identity nodes; undefined if `name` is not a constant. */
  private findConstant(name: string | undefined): Constant | undefined {
    // a loop, not recursion: Identity chains may be long, and a cycle of them holds no constant
    const identities = new Set<NodeProto>();
    for (let current = name; current; ) {
      const constant = this.constants.get(current);
      const producer = this.producers.get(current);
      if (constant !== undefined || producer === undefined || !isIdentity(producer)) {
        if (constant !== undefined) for (const node of identities) this.used.add(node);
        return constant;
      }
      if (identities.has(producer)) return undefined;
      identities.add(producer);
      current = producer.input?.[0];
    }
    return undefined;
  }

  /** The values of `node`'s constant input `name`; the errors say why it is not there. */
  private constant(node: NodeProto, name: string | undefined, kind: 'int'): Tensor<Float64Array>;
  private constant(node: NodeProto, name: string | undefined, kind?: 'float'): Tensor<Float32Array>;
  private constant(node: NodeProto, name: string | undefined, kind: NumberKind = 'float'): Tensor {
    const constant = this.findConstant(name);
    if (constant === undefined) {
      const producer = name ? this.producers.get(name) : undefined;
      if (producer)
        throw this.error(node, `input '${name}' is computed by ${this.at(producer)}, not an initializer`);
      if (this.graph.input?.some((i) => i.name === name))
        throw this.error(node, `input '${name}' is a graph input, not an initializer`);
      throw this.error(node, `initializer '${name ?? ''}' is missing`);
    }
    const fail: Fail = (detail, code = 'input') => new EcpruneError(code, detail, this.file, this.at(node));
    return constant.kind === 'dense'
      ? decodeTensor(constant.tensor, kind, fail)
      : densify(constant.tensor, kind, fail);
  }

  /** Whether `name` is a one-element constant equal to `value` (to float32 precision). */
  private isScalar(node: NodeProto, name: string | undefined, value: number): boolean {
    if (this.findConstant(name) === undefined) return false;
    const { values } = this.constant(node, name);
    return values.length === 1 && Math.abs(values[0] - value) <= 1e-6 * Math.abs(value);
  }

  private readPreprocess(node: NodeProto): OnnxPreprocess {
    const nodeName = this.name(node);
    if (node.opType === 'Flatten') {
      const axis = intAttribute(node, 'axis', 1);
      if (axis !== 1) throw this.unsupported(node, `with axis=${axis} (only axis=1 keeps the batch)`);
      return { op: 'Flatten', nodeName, axis };
    }
    const shapeName = node.input?.[1] ?? '';
    const shape = Array.from(this.constant(node, shapeName, 'int').values);
    const [rows, cols] = shape;
    if (!(shape.length === 2 && rows >= -1 && (cols > 0 || (cols === -1 && rows !== -1)))) {
      throw this.unsupported(
        node,
        `to shape [${shape.join(', ')}] (ecprune reads reshapes to [N, -1] or [-1, d])`,
      );
    }
    return { op: 'Reshape', nodeName, shapeName, shape };
  }

  /** A weight stored as a dims[0] x dims[1] matrix, returned in our n_out x n_in layout. */
  private weight(node: NodeProto, name: string | undefined, stored: 'out x in' | 'in x out', scale: number) {
    const { dims, values } = this.constant(node, name);
    if (dims.length !== 2 || dims[0] === 0 || dims[1] === 0) {
      throw this.error(node, `weight '${name}' has shape [${dims.join(', ')}], expected a matrix`);
    }
    const asStored = matrix(dims[0], dims[1], scale === 1 ? values : values.map((w) => scale * w));
    return stored === 'out x in' ? asStored : transpose(asStored);
  }

  /** A bias of n_out values, or of one value broadcast to all of them; zeros when there is none. */
  private bias(node: NodeProto, name: string | undefined, rows: number, scale: number): Float32Array {
    const bias = new Float32Array(rows);
    if (!name) return bias;
    const { dims, values } = this.constant(node, name);
    if (!((values.length === rows || values.length === 1) && dims.slice(0, -1).every((d) => d === 1))) {
      throw this.error(node, `bias '${name}' has shape [${dims.join(', ')}], expected [${rows}]`);
    }
    for (let i = 0; i < rows; i++) bias[i] = scale * values[values.length === 1 ? 0 : i];
    return bias;
  }

  private readGemm(node: NodeProto, current: string): ReadLayer {
    const [a, b, c] = node.input ?? [];
    if (a !== current || b === current) throw this.unsupported(node, 'with the data in input B');
    // the rows of A are the batch; with transA=1 they would be the features
    if (intAttribute(node, 'transA', 0) !== 0) throw this.unsupported(node, 'with transA=1');
    const transB = intAttribute(node, 'transB', 0) !== 0;
    // Gemm computes alpha * A op(B) + beta * C: alpha goes into the weights, beta into the bias
    const weight = this.weight(node, b, transB ? 'out x in' : 'in x out', floatAttribute(node, 'alpha', 1));
    const bias = this.bias(node, c, weight.rows, floatAttribute(node, 'beta', 1));
    return {
      layer: { weight, bias, activation: IDENTITY },
      template: {
        op: 'Gemm',
        nodeName: this.name(node),
        weightName: b,
        transB,
        ...(c ? { biasName: c } : {}),
        activation: NO_ACTIVATION,
      },
      output: this.chainOutput(node),
    };
  }

  /** A MatMul with an n_in x n_out weight and, when the next node adds a constant to it, that bias. */
  private readMatMul(node: NodeProto, current: string): ReadLayer {
    const [a, b] = node.input ?? [];
    if (a !== current || b === current) throw this.unsupported(node, 'with the data in its second input');
    const weight = this.weight(node, b, 'in x out', 1);
    const template: OnnxLayerTemplate = {
      op: 'MatMul',
      nodeName: this.name(node),
      weightName: b,
      transB: false,
      activation: NO_ACTIVATION,
    };
    const product = this.skipIdentities(this.chainOutput(node));
    const [add, ...others] = this.consumers.get(product) ?? [];
    const biasName = add?.opType === 'Add' && others.length === 0 ? otherInput(add, product) : undefined;
    if (add === undefined || this.findConstant(biasName) === undefined) {
      return {
        layer: { weight, bias: new Float32Array(weight.rows), activation: IDENTITY },
        template,
        output: product,
      };
    }
    this.visit(add);
    return {
      layer: { weight, bias: this.bias(add, biasName, weight.rows, 1), activation: IDENTITY },
      template: {
        ...template,
        addNodeName: this.name(add),
        biasName,
        biasFirst: add.input?.[0] === biasName,
      },
      output: this.chainOutput(add),
    };
  }

  /** The activation after a layer's output `tensor`, if there is one. */
  private readActivation(
    tensor: string,
  ): Pick<ReadLayer, 'output'> & { activation: Activation; template: OnnxLayerTemplate['activation'] } {
    const x = this.skipIdentities(tensor);
    const none = { activation: IDENTITY, template: NO_ACTIVATION, output: x };
    const users = this.consumers.get(x) ?? [];
    if (users.length === 2) {
      const nodes = this.matchGeluErf(x);
      if (nodes === undefined) return none; // next() reports the fork
      for (const node of nodes) this.visit(node);
      const nodeNames = nodes.map((n) => this.name(n));
      return {
        activation: { kind: 'gelu' },
        template: { kind: 'gelu', nodeNames },
        output: this.chainOutput(nodes[4]),
      };
    }
    const node = users.length === 1 && isDefaultDomain(users[0]) ? users[0] : undefined;
    const rule = node && ACTIVATION_OPS.get(node.opType ?? '');
    if (node === undefined || rule === undefined) return none;
    this.visit(node);
    const approximate = new TextDecoder().decode(attribute(node, 'approximate')?.s ?? new Uint8Array());
    if (approximate !== '' && approximate !== 'none') {
      throw this.unsupported(node, `with approximate='${approximate}' (ecprune's gelu is the erf form)`);
    }
    const { kind, alphaDefault } = rule;
    const alpha =
      alphaDefault === undefined
        ? {}
        : { alpha: shortestFloat32(floatAttribute(node, 'alpha', alphaDefault)) };
    return {
      activation: { kind, ...alpha } as Activation,
      template: { kind, nodeNames: [this.name(node)] },
      output: this.chainOutput(node),
    };
  }

  private soleUser(tensor: string | undefined, op: string): NodeProto | undefined {
    const users = (tensor && this.consumers.get(tensor)) || [];
    return users.length === 1 && users[0].opType === op ? users[0] : undefined;
  }

  /**
   * GELU as PyTorch writes it before opset 20: Div(x, sqrt 2) → Erf → Add 1, and two Muls that
   * multiply x, (1 + erf) and 0.5 in either grouping. Returns the nodes as [Div, Erf, Add, inner
   * Mul, outer Mul], or undefined when the two users of `x` are anything else.
   */
  private matchGeluErf(x: string): NodeProto[] | undefined {
    const users = this.consumers.get(x) ?? [];
    const div = users.find(
      (n) => n.opType === 'Div' && n.input?.[0] === x && this.isScalar(n, n.input[1], Math.SQRT2),
    );
    const mulX = users.find((n) => n !== div && n.opType === 'Mul');
    const erf = this.soleUser(div?.output?.[0], 'Erf');
    const add = this.soleUser(erf?.output?.[0], 'Add');
    const onePlusErf = add?.output?.[0];
    if (
      !div ||
      !mulX ||
      !erf ||
      !add ||
      !onePlusErf ||
      !this.isScalar(add, otherInput(add, erf.output?.[0]), 1)
    )
      return undefined;
    const factor = otherInput(mulX, x);
    const isHalf = (node: NodeProto | undefined, name: string | undefined) =>
      node !== undefined && this.isScalar(node, name, 0.5);
    let inner: NodeProto | undefined = mulX;
    let outer: NodeProto | undefined;
    if (factor === onePlusErf || isHalf(mulX, factor)) {
      // (x * a) * b
      outer = this.soleUser(mulX.output?.[0], 'Mul');
      const last = outer && otherInput(outer, mulX.output?.[0]);
      if (!(factor === onePlusErf ? isHalf(outer, last) : last === onePlusErf)) return undefined;
    } else {
      // x * (a * b)
      outer = mulX;
      inner = this.soleUser(onePlusErf, 'Mul');
      if (
        inner === undefined ||
        inner.output?.[0] !== factor ||
        !isHalf(inner, otherInput(inner, onePlusErf))
      )
        return undefined;
    }
    // 1 + erf must feed the GELU's own Mul and nothing else
    if (outer === undefined || this.soleUser(onePlusErf, 'Mul') === undefined) return undefined;
    return [div, erf, add, inner, outer];
  }

  /** Every node must be on the chain or feed it a constant; the first that is not is named. */
  private checkAllNodesUsed(): void {
    const inputs = (this.graph.input ?? []).map((i) => i.name ?? '');
    const known = new Set([...this.constants.keys(), ...this.producers.keys(), ...inputs]);
    for (const node of this.graph.node ?? []) {
      if (this.used.has(node)) continue;
      const dangling = node.input?.find((input) => input !== '' && !known.has(input));
      if (dangling !== undefined)
        throw this.error(node, `input '${dangling}' is not produced by any node, initializer or graph input`);
      throw this.error(node, 'the node is not on the chain from the graph input to the graph output');
    }
  }
}

function decodeModel(bytes: Uint8Array, file?: string): OnnxTypes.ModelProto {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw badInput(`not a valid ONNX file: ${error instanceof Error ? error.message : String(error)}`, file);
  }
}

function defaultOpset(opsetImports: OnnxTemplate['opsetImports']): number {
  return opsetImports.find((o) => DEFAULT_DOMAINS.includes(o.domain))?.version ?? 0;
}

/** Reads an MLP from ONNX bytes; `file` names the source in errors. */
export function readOnnx(bytes: Uint8Array, file?: string): OnnxModel {
  const model = decodeModel(bytes, file);
  const graph = model.graph;
  if (graph == null) throw badInput('not a valid ONNX file: it has no graph', file);
  const opsetImports = (model.opsetImport ?? []).map((o) => ({
    domain: o.domain ?? '',
    version: int(o.version),
  }));
  const opset = defaultOpset(opsetImports);
  if (!(opset >= MIN_OPSET))
    throw unsupportedError(`opset ${opset} is older than ecprune reads (${MIN_OPSET} and later)`, file);

  // old exporters list the initializers among the graph inputs too: the data input is the other one
  const constantNames = new Set([
    ...(graph.initializer ?? []).map((t) => t.name),
    ...(graph.sparseInitializer ?? []).map((t) => t.values?.name),
  ]);
  const inputs = (graph.input ?? []).filter((i) => !constantNames.has(i.name)).map(tensorInfo);
  const outputs = (graph.output ?? []).map(tensorInfo);
  if (inputs.length !== 1 || outputs.length !== 1) {
    const names = (infos: OnnxTensorInfo[]) => infos.map((i) => `'${i.name}'`).join(', ') || 'none';
    throw unsupportedError(
      `the graph has inputs ${names(inputs)} and outputs ${names(outputs)}; ecprune reads one of each`,
      file,
    );
  }
  const [input] = inputs;
  const [output] = outputs;
  if (![0, FLOAT, DOUBLE, FLOAT16].includes(input.elemType)) {
    const typeName = onnx.TensorProto.DataType[input.elemType] ?? input.elemType;
    throw unsupportedError(
      `input '${input.name}' has element type ${typeName}; ecprune reads float models`,
      file,
    );
  }

  const { layers, preprocess } = new ChainReader(graph, file).read(input.name, output.name);
  const template: OnnxTemplate = {
    irVersion: int(model.irVersion),
    opsetImports,
    producerName: model.producerName ?? '',
    producerVersion: model.producerVersion ?? '',
    graphName: graph.name ?? '',
    input,
    output,
    ...(preprocess === undefined ? {} : { preprocess }),
    layers: layers.map((l) => l.template),
    metadata: Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
  };
  const mlp = validateMlp({ layers: layers.map((l) => l.layer) }, file);
  checkDeclaredShapes(template, mlp, file);
  return { mlp, template };
}

/** The declared input and output shapes, where they are numbers, must fit the layers. */
function checkDeclaredShapes(
  { input, output, preprocess, layers }: OnnxTemplate,
  mlp: Mlp,
  file?: string,
): void {
  const first = `node '${layers[0].nodeName}'`;
  const features = input.dims?.slice(1);
  let declaredIn: number | undefined;
  if (preprocess?.op === 'Reshape') declaredIn = preprocess.shape[1] > 0 ? preprocess.shape[1] : undefined;
  else if (features?.every((d) => typeof d === 'number')) {
    if (preprocess === undefined && features.length !== 1) {
      throw badInput(
        `input '${input.name}' has shape [${input.dims?.join(', ')}]; without a Flatten it must be [batch, features]`,
        file,
        first,
      );
    }
    declaredIn = product(features as number[]);
  }
  if (declaredIn !== undefined && declaredIn !== inputSize(mlp)) {
    throw badInput(
      `the weight takes ${inputSize(mlp)} inputs but input '${input.name}' gives ${declaredIn}`,
      file,
      first,
    );
  }
  const declaredOut = output.dims?.at(-1);
  if (typeof declaredOut === 'number' && declaredOut !== outputSize(mlp)) {
    const last = `node '${layers.at(-1)?.nodeName}'`;
    throw badInput(
      `output '${output.name}' has ${declaredOut} values per row but the last layer gives ${outputSize(mlp)}`,
      file,
      last,
    );
  }
}

/** A few facts for `inspect`. */
export function describeOnnx(template: OnnxTemplate): {
  opset: number;
  irVersion: number;
  producer: string;
  input: string;
  output: string;
} {
  const show = (t: OnnxTensorInfo) => `${t.name} [${t.dims?.map((d) => d ?? '?').join(', ') ?? '?'}]`;
  return {
    opset: defaultOpset(template.opsetImports),
    irVersion: template.irVersion,
    producer: `${template.producerName} ${template.producerVersion}`.trim(),
    input: show(template.input),
    output: show(template.output),
  };
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/** The graph written for a model that did not come from ONNX: a Gemm (transB=1) and an activation per layer. */
function defaultTemplate(mlp: Mlp): OnnxTemplate {
  return {
    irVersion: 8,
    opsetImports: [{ domain: '', version: 17 }],
    producerName: 'ecprune',
    producerVersion: '',
    graphName: 'mlp',
    input: { name: 'input', elemType: FLOAT, dims: ['batch', inputSize(mlp)] },
    output: { name: 'output', elemType: FLOAT, dims: ['batch', outputSize(mlp)] },
    layers: mlp.layers.map((layer, l) => ({
      op: 'Gemm',
      nodeName: `layer${l}/Gemm`,
      weightName: `layer${l}.weight`,
      biasName: `layer${l}.bias`,
      transB: true,
      activation: { kind: layer.activation.kind, nodeNames: [] },
    })),
    metadata: {},
  };
}

/**
 * A tensor of `values` in little-endian raw_data: float32, or int64 (the Reshape shape, sparse indices).
 * @internal (not in the published types, which must not name onnx-proto's: they need a global `Long`)
 */
export function rawTensor(
  name: string,
  dims: readonly number[],
  values: ArrayLike<number>,
  type: 'float32' | 'int64',
): TensorProto {
  const size = type === 'float32' ? 4 : 8;
  if (type === 'float32' && HOST_LITTLE_ENDIAN) {
    // the host's own layout: one bulk copy (a DataView per element took ~0.1 s for 1.9M weights)
    const rawData = new Uint8Array(Float32Array.from(values).buffer);
    return { name, dims: [...dims], dataType: FLOAT, rawData };
  }
  const bytes = new Uint8Array(values.length * size);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    if (type === 'float32') view.setFloat32(i * size, values[i], true);
    else view.setBigInt64(i * size, BigInt(values[i]), true);
  }
  return { name, dims: [...dims], dataType: type === 'float32' ? FLOAT : INT64, rawData: bytes };
}

/** The nonzero entries of `values` as a SparseTensorProto with [NNZ] linear indices. */
function sparseTensor(name: string, dims: readonly number[], values: Float32Array): SparseTensorProto {
  const positions: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) positions.push(i);
  const nnz = [positions.length];
  return {
    values: rawTensor(
      name,
      nnz,
      positions.map((i) => values[i]),
      'float32',
    ),
    indices: rawTensor(`${name}_indices`, nnz, positions, 'int64'),
    dims: [...dims],
  };
}

/** Collects nodes and initializers, keeping tensor names and node names unique. @internal */
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
const intAttr = (name: string, i: number): AttributeProto => ({
  name,
  i,
  type: onnx.AttributeProto.AttributeType.INT,
});

/** Writes `act` after the tensor `input`, reusing the template's node names when they fit; returns the output. @internal */
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

/** Writes a layer's Gemm, or its MatMul and Add, after the tensor `input`; returns the output. */
function writeLayer(graph: GraphWriter, layer: Layer, t: OnnxLayerTemplate, input: string): string {
  // a bias is written when the original had one, or when it is no longer zero
  const hasBias = t.biasName !== undefined || layer.bias.some((b) => b !== 0);
  const bias = () => graph.floats(t.biasName ?? `${t.nodeName}.bias`, [layer.bias.length], layer.bias);
  const stored = t.op === 'Gemm' && t.transB ? layer.weight : transpose(layer.weight);
  const weight = graph.floats(t.weightName, [stored.rows, stored.cols], stored.data, true);
  if (t.op === 'Gemm') {
    const attributes = [floatAttr('alpha', 1), floatAttr('beta', 1), intAttr('transB', +t.transB)];
    return graph.node('Gemm', t.nodeName, hasBias ? [input, weight, bias()] : [input, weight], attributes);
  }
  const product = graph.node('MatMul', t.nodeName, [input, weight]);
  if (!hasBias) return product;
  const addInputs = t.biasFirst ? [bias(), product] : [product, bias()];
  return graph.node('Add', t.addNodeName ?? `${t.nodeName}/Add`, addInputs);
}

/** A graph input/output declaration; `lastDim`, when given, replaces a numeric last dim (widths may change). */
function valueInfo(info: OnnxTensorInfo, lastDim?: number): ValueInfoProto {
  const dims = info.dims?.map((d, i, all) =>
    lastDim !== undefined && i === all.length - 1 && typeof d === 'number' ? lastDim : d,
  );
  const shape = dims && {
    dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : d === null ? {} : { dimParam: d })),
  };
  // the weights are written as float32, so the graph is float32 whatever it was before
  return { name: info.name, type: { tensorType: { elemType: FLOAT, ...(shape ? { shape } : {}) } } };
}

/**
 * ONNX bytes for `mlp`, with the structure, names and opset of `template` (or a default Gemm graph
 * when the model came from another format) and `metadata` merged into metadata_props. With
 * `sparse`, weights are written as sparse_initializers (onnxruntime densifies them at load).
 */
export function writeOnnx(
  mlp: Mlp,
  template: OnnxTemplate | undefined,
  metadata: Record<string, string>,
  options: { sparse?: boolean } = {},
): Uint8Array {
  const t = template ?? defaultTemplate(mlp);
  if (t.layers.length !== mlp.layers.length) {
    throw new EcpruneError(
      'internal',
      `the model has ${mlp.layers.length} layers but its ONNX template has ${t.layers.length}`,
    );
  }
  const graph = new GraphWriter([t.input.name, t.output.name], options.sparse ?? false);
  let current = t.input.name;
  const pre = t.preprocess;
  if (pre?.op === 'Flatten')
    current = graph.node('Flatten', pre.nodeName, [current], [intAttr('axis', pre.axis)]);
  if (pre?.op === 'Reshape') {
    const shape = pre.shape[1] > 0 ? [pre.shape[0], inputSize(mlp)] : pre.shape;
    current = graph.node('Reshape', pre.nodeName, [current, graph.ints(pre.shapeName, shape)]);
  }
  mlp.layers.forEach((layer, l) => {
    const lt = t.layers[l];
    current = writeLayer(graph, layer, lt, current);
    const names = layer.activation.kind === lt.activation.kind ? lt.activation.nodeNames : [];
    // new activation nodes are named in the layer's scope: '/1/Gemm' → '/1/Relu'
    const scope = lt.nodeName.includes('/')
      ? lt.nodeName.slice(0, lt.nodeName.lastIndexOf('/'))
      : lt.nodeName;
    current = writeActivation(graph, layer.activation, names, scope, current, defaultOpset(t.opsetImports));
  });
  graph.finish(t.output.name);

  const model = onnx.ModelProto.create({
    // initializers are not listed as graph inputs (IR 4+); sparse_initializer needs IR 6
    irVersion: Math.max(t.irVersion, options.sparse ? 6 : 4),
    opsetImport: t.opsetImports.map((o) => ({ ...o })),
    producerName: t.producerName,
    producerVersion: t.producerVersion,
    graph: {
      name: t.graphName,
      node: graph.nodes,
      initializer: graph.initializers,
      sparseInitializer: graph.sparseInitializers,
      // a flattened input keeps its own shape
      input: [valueInfo(t.input, t.preprocess === undefined ? inputSize(mlp) : undefined)],
      output: [valueInfo(t.output, outputSize(mlp))],
    },
    metadataProps: Object.entries({ ...t.metadata, ...metadata }).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(model).finish();
}
