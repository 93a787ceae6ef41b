/**
 * ONNX → graph. Every node becomes a GraphNode as it stands (attributes as numbers, strings and
 * tensors; initializers and Constant values as `graph.constants`), except the fully-connected
 * layers: a Gemm with a constant B, or a MatMul with a constant second operand (and the Add of a
 * constant bias that is its only consumer), becomes one `Dense` node and a DenseLayer. Ops before
 * the first fully-connected layer that the graph cannot differentiate (Conv, pooling, ...) form a
 * frozen prefix, kept as a small ONNX model of its own that onnxruntime runs forward-only.
 * What the writer needs to write the file back (its bytes, and where each layer's values live) is
 * kept in an `OnnxTemplate`: plain data, no protobuf objects.
 */
import type { onnx as OnnxTypes } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import { badInput, EcpruneError } from '../../errors.js';
import type { AttributeValue, DenseLayer, Graph, GraphNode } from '../../graph/graph.js';
import { OPS, SUPPORTED_OPS } from '../../graph/ops/index.js';
import type { FrozenPrefix } from '../../graph/prefix.js';
import type { Tensor } from '../../graph/tensor.js';
import { transpose, zerosLike } from '../../model/matrix.js';
import { checkFiniteLayer } from '../../model/mlp.js';
import { shortestFloat32 } from '../../runtime/format.js';
import {
  type DecodedTensor,
  DOUBLE,
  decodeTensor,
  densify,
  type Fail,
  FLOAT,
  FLOAT16,
  int,
  type NumberKind,
  product,
  type SparseTensorProto,
  type TensorProto,
} from './tensors.js';

const { onnx } = onnxProto;
const {
  FLOAT: F,
  INT: I,
  STRING: S,
  TENSOR: T,
  FLOATS: FS,
  INTS: IS,
  UNDEFINED,
} = onnx.AttributeProto.AttributeType;
type NodeProto = OnnxTypes.INodeProto;
type ValueInfoProto = OnnxTypes.IValueInfoProto;
type AttributeProto = OnnxTypes.IAttributeProto;

const MIN_OPSET = 9;
/** The newest opset whose op definitions ecprune knows (a newer file may change them). */
const MAX_OPSET = 21;
const DEFAULT_DOMAINS = ['', 'ai.onnx'];

/** A graph input or output: name, element type (TensorProto.DataType), dims (number, symbolic name, or null = unknown). */
export interface OnnxTensorInfo {
  readonly name: string;
  readonly elemType: number;
  /** undefined when the file states no shape */
  readonly dims?: readonly (number | string | null)[];
}

/** Where one fully-connected layer lives in the file, and in which form. */
export interface OnnxLayerTemplate {
  readonly op: 'Gemm' | 'MatMul';
  /** the Gemm or MatMul node */
  readonly nodeName: string;
  /** the weight's initializer: n_out x n_in (Gemm transB=1) or n_in x n_out (Gemm transB=0, MatMul) */
  readonly weightName: string;
  readonly weightDims: readonly number[];
  readonly weightType: number;
  readonly transB: boolean;
  /** Gemm's alpha and beta, folded into the layer's W and b on reading and taken out on writing */
  readonly alpha: number;
  readonly beta: number;
  /** Gemm's C or the Add's constant, with its dims and element type; undefined when there is none */
  readonly bias?: { readonly name: string; readonly dims: readonly number[]; readonly dataType: number };
  /** MatMul only: the Add node of the bias */
  readonly addNodeName?: string;
  /** the tensor the layer (with its bias) writes */
  readonly output: string;
}

/** What `writeOnnx` needs to write a model back with the structure, names and opset it was read with. */
export interface OnnxTemplate {
  /** the file as it was read: the writer replaces only the layers' initializers in it */
  readonly bytes: Uint8Array;
  readonly opset: number;
  readonly irVersion: number;
  readonly producer: string;
  readonly input: OnnxTensorInfo;
  /** the graph outputs; EC measures the first */
  readonly outputs: readonly OnnxTensorInfo[];
  /** the op types of the frozen prefix, in file order (empty without one) */
  readonly prefixOps: readonly string[];
  readonly layers: readonly OnnxLayerTemplate[];
  /** the op types after the last fully-connected layer */
  readonly headOps: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
}

export interface OnnxModel {
  readonly graph: Graph;
  readonly template: OnnxTemplate;
  /** the frozen prefix as an ONNX model: the original input → the graph's input tensor [batch, n_in] */
  readonly prefix?: Uint8Array;
}

/**
 * The frozen prefix of a read model as the calibration and evaluation passes run it (see
 * graph/prefix.ts), or undefined without one. The prefix needs a fixed per-sample input shape.
 */
export function frozenPrefixOf(model: OnnxModel, file?: string): FrozenPrefix | undefined {
  if (model.prefix === undefined) return undefined;
  const { input } = model.template;
  const inputShape = (input.dims ?? []).slice(1).map((d) => (typeof d === 'number' ? d : Number.NaN));
  if (!inputShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new EcpruneError(
      'unsupported',
      `the input '${input.name}' has no fixed per-sample shape, which its frozen prefix needs (export with fixed dimensions except the batch)`,
      file,
    );
  }
  return { onnx: model.prefix, inputName: input.name, inputShape, outputName: model.graph.input.name };
}

/** Short enough for one line: the full list of supported ops is in `ecprune inspect --help`. */
const SUPPORTED_HINT = () =>
  'ops before the first fully-connected layer may be anything (they run frozen in onnxruntime); after it, ' +
  `ecprune runs ${SUPPORTED_OPS.length} ops, listed by \`ecprune inspect --help\`: export with another opset ` +
  'or move the op before the first layer';

const isDefaultDomain = (node: NodeProto) => DEFAULT_DOMAINS.includes(node.domain ?? '');

function decodeModel(bytes: Uint8Array, file?: string): OnnxTypes.ModelProto {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw badInput(`not a valid ONNX file: ${error instanceof Error ? error.message : String(error)}`, file);
  }
}

function tensorInfo(value: ValueInfoProto): OnnxTensorInfo {
  const type = value.type?.tensorType;
  const dims = type?.shape?.dim?.map((d) => d.dimParam ?? (d.dimValue == null ? null : int(d.dimValue)));
  return { name: value.name ?? '', elemType: type?.elemType ?? 0, ...(dims === undefined ? {} : { dims }) };
}

/** An initializer, sparse initializer or Constant node output. */
type Constant =
  | { readonly kind: 'dense'; readonly tensor: TensorProto; readonly initializer: boolean }
  | { readonly kind: 'sparse'; readonly tensor: SparseTensorProto; readonly initializer: boolean };

/** The tensor a Constant node holds, in whichever of its attributes it came. */
function constantOfNode(node: NodeProto): Constant | undefined {
  const [a] = node.attribute ?? [];
  if (a == null || node.attribute?.length !== 1) return undefined;
  const dense = (tensor: TensorProto): Constant => ({
    kind: 'dense',
    tensor: { name: node.output?.[0], ...tensor },
    initializer: false,
  });
  const { INT64 } = onnx.TensorProto.DataType;
  switch (a.name) {
    case 'value':
      return a.t ? { kind: 'dense', tensor: a.t, initializer: false } : undefined;
    case 'sparse_value':
      return a.sparseTensor ? { kind: 'sparse', tensor: a.sparseTensor, initializer: false } : undefined;
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

const asTensor = ({ dims, values }: DecodedTensor): Tensor => ({ shape: dims, data: values });

/**
 * The name the state_dict would give a layer: 'fc1' for the initializer 'fc1.weight'; for a
 * bias-free Linear, which torch.onnx.export writes as a MatMul on a transposed copy named
 * 'onnx::MatMul_N', the module path of its node's scope ('stem' for '/stem/MatMul', 'block.seq.0'
 * for '/block/seq/seq.0/MatMul': torch names a Sequential's children 'seq.0' under 'seq'); else the
 * weight's own name, else the node's.
 */
export function layerName(weightName: string, nodeName: string): string {
  if (weightName.endsWith('.weight')) return weightName.slice(0, -'.weight'.length);
  if (!weightName.startsWith('onnx::')) return weightName;
  const scopes = nodeName.split('/').slice(1, -1);
  if (!nodeName.startsWith('/') || scopes.length === 0) return nodeName;
  const path: string[] = [];
  for (const scope of scopes) {
    const parent = path[path.length - 1];
    path.push(
      parent !== undefined && scope.startsWith(`${parent}.`) ? scope.slice(parent.length + 1) : scope,
    );
  }
  return path.join('.');
}

/** Reads one ONNX graph; holds the indexes every step needs. */
class Reader {
  private readonly constants = new Map<string, Constant>();
  private readonly producers = new Map<string, NodeProto>();
  private readonly consumers = new Map<string, NodeProto[]>();
  private readonly labels = new Map<NodeProto, string>();

  constructor(
    private readonly graph: OnnxTypes.IGraphProto,
    private readonly file?: string,
  ) {
    const addConstant = (name: string, constant: Constant, node?: NodeProto) => {
      if (this.constants.has(name)) throw this.error(node, `there are two initializers named '${name}'`);
      this.constants.set(name, constant);
    };
    for (const t of graph.initializer ?? [])
      addConstant(t.name ?? '', { kind: 'dense', tensor: t, initializer: true });
    for (const t of graph.sparseInitializer ?? [])
      addConstant(t.values?.name ?? '', { kind: 'sparse', tensor: t, initializer: true });
    (graph.node ?? []).forEach((node, index) => {
      this.labels.set(node, node.name || `${node.opType}_${index}`);
      if (node.opType === 'Constant' && isDefaultDomain(node)) {
        const constant = constantOfNode(node);
        if (constant === undefined) throw this.unsupported(node, 'without a tensor value');
        addConstant(node.output?.[0] ?? '', constant, node);
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

  name(node: NodeProto): string {
    return this.labels.get(node) ?? '';
  }

  private at(node: NodeProto): string {
    return `node '${this.name(node)}'`;
  }

  error(node: NodeProto | undefined, detail: string): EcpruneError {
    return badInput(detail, this.file, node && this.at(node));
  }

  /** `op 'Gemm' with transA=1 is not supported (...)`: `detail` says what about the node is the problem. */
  unsupported(node: NodeProto, detail?: string): EcpruneError {
    const op = isDefaultDomain(node) ? node.opType : `${node.domain}.${node.opType}`;
    return new EcpruneError(
      'unsupported',
      `op '${op}'${detail ? ` ${detail}` : ''} is not supported (${SUPPORTED_HINT()})`,
      this.file,
      this.at(node),
    );
  }

  /** found[name]: the constant behind a tensor (null: none), remembered so long Identity chains are walked once */
  private readonly found = new Map<string, { name: string; constant: Constant } | null>();

  /** The initializer or Constant behind `name`, looking through Identity nodes. */
  private findConstant(name: string | undefined): { name: string; constant: Constant } | undefined {
    const path = new Set<string>();
    let result: { name: string; constant: Constant } | null = null;
    for (let current = name; current; ) {
      const known = this.found.get(current);
      if (known !== undefined) {
        result = known;
        break;
      }
      path.add(current);
      const constant = this.constants.get(current);
      if (constant !== undefined) {
        result = { name: current, constant };
        break;
      }
      const producer = this.producers.get(current);
      // a cycle of Identity nodes holds no constant
      if (producer === undefined || producer.opType !== 'Identity' || path.has(producer.input?.[0] ?? ''))
        break;
      current = producer.input?.[0];
    }
    for (const visited of path) this.found.set(visited, result);
    return result ?? undefined;
  }

  isConstant(name: string | undefined): boolean {
    return this.findConstant(name) !== undefined;
  }

  /** The values of `node`'s constant input `name`; the errors say why it is not there. */
  constant(node: NodeProto, name: string | undefined, kind?: NumberKind): DecodedTensor & { root: string } {
    const found = this.findConstant(name);
    if (found === undefined) {
      const producer = name ? this.producers.get(name) : undefined;
      if (producer)
        throw this.error(node, `input '${name}' is computed by ${this.at(producer)}, not an initializer`);
      if (this.graph.input?.some((i) => i.name === name))
        throw this.error(node, `input '${name}' is a graph input, not an initializer`);
      throw this.error(node, `initializer '${name ?? ''}' is missing`);
    }
    const fail: Fail = (detail, code = 'input') => new EcpruneError(code, detail, this.file, this.at(node));
    const { constant } = found;
    const decoded =
      constant.kind === 'dense'
        ? decodeTensor(constant.tensor, kind, fail)
        : densify(constant.tensor, kind, fail);
    return { ...decoded, root: found.name };
  }

  isInitializer(name: string): boolean {
    return this.constants.get(name)?.initializer === true;
  }

  users(tensor: string): readonly NodeProto[] {
    return this.consumers.get(tensor) ?? [];
  }

  producer(tensor: string): NodeProto | undefined {
    return this.producers.get(tensor);
  }

  constantNames(): IterableIterator<string> {
    return this.constants.keys();
  }

  attributes(node: NodeProto): Record<string, AttributeValue> {
    const attrs: Record<string, AttributeValue> = {};
    for (const a of node.attribute ?? []) {
      const name = a.name ?? '';
      // files before IR 2 may leave `type` unset: the field that is present says it
      const type = a.type || inferAttributeType(a);
      // float attributes are float32 in the file: the decimal the exporter was given (alpha 1.3, not 1.2999999523)
      if (type === F) attrs[name] = shortestFloat32(a.f ?? 0);
      else if (type === I) attrs[name] = int(a.i);
      else if (type === S) attrs[name] = new TextDecoder().decode(a.s ?? new Uint8Array());
      else if (type === FS) attrs[name] = Array.from(a.floats ?? []);
      else if (type === IS) attrs[name] = (a.ints ?? []).map(int);
      else if (type === T && a.t) {
        const fail: Fail = (detail, code = 'input') =>
          new EcpruneError(code, detail, this.file, this.at(node));
        attrs[name] = asTensor(decodeTensor(a.t, undefined, fail));
      } else
        throw this.unsupported(
          node,
          `with attribute '${name}' of type ${onnx.AttributeProto.AttributeType[type] ?? type}`,
        );
    }
    return attrs;
  }
}

function inferAttributeType(a: AttributeProto): number {
  if (a.floats?.length) return FS;
  if (a.ints?.length) return IS;
  if (a.t) return T;
  if (a.s?.length) return S;
  if (a.f != null && a.f !== 0) return F;
  if (a.i != null) return I;
  return UNDEFINED;
}

/** Attributes whose default changed between opsets, stated explicitly so the ops see one meaning. */
function normalizedAttributes(
  op: string,
  attrs: Record<string, AttributeValue>,
  opset: number,
): Record<string, AttributeValue> {
  // Softmax and LogSoftmax took axis 1 by default (over the input coerced to 2-D) before opset 13
  if ((op === 'Softmax' || op === 'LogSoftmax') && opset < 13 && attrs.axis === undefined) {
    return { ...attrs, axis: 1 };
  }
  return attrs;
}

interface ReadDense {
  readonly layer: DenseLayer;
  readonly template: OnnxLayerTemplate;
  /** the file's nodes the Dense node stands for */
  readonly nodes: readonly NodeProto[];
  readonly input: string;
}

/** A Gemm with a constant B, or a MatMul with a constant 2-D second operand (+ its bias Add): one layer. */
function readDense(r: Reader, node: NodeProto): ReadDense | undefined {
  const [a, b, c] = node.input ?? [];
  // what onnxruntime refuses must not be read as something else
  const arity = { Gemm: [2, 3], MatMul: [2, 2] }[node.opType as 'Gemm' | 'MatMul'];
  const count = (node.input ?? []).length;
  if (arity && (count < arity[0] || count > arity[1])) {
    throw r.error(
      node,
      `${node.opType} takes ${arity[0] === arity[1] ? arity[0] : `${arity[0]} or ${arity[1]}`} inputs, this node has ${count}`,
    );
  }
  if (node.opType === 'Gemm') {
    if (r.isConstant(a)) return undefined;
    // the rows of A are the batch; with transA=1 they would be the features
    const transA = node.attribute?.find((x) => x.name === 'transA');
    if (transA && int(transA.i) !== 0) throw r.unsupported(node, 'with transA=1');
    const attrs = r.attributes(node);
    const transB = attrs.transB !== undefined && attrs.transB !== 0;
    const alpha = typeof attrs.alpha === 'number' ? attrs.alpha : 1;
    const beta = typeof attrs.beta === 'number' ? attrs.beta : 1;
    const weight = readWeight(r, node, b, transB ? 'out x in' : 'in x out', alpha);
    // beta = 0: C is ignored, the layer has no bias
    const bias = c && beta !== 0 ? readBias(r, node, c, weight.matrix.rows, beta) : undefined;
    return denseOf(r, node, a, weight, bias, { op: 'Gemm', transB, alpha, beta });
  }
  if (node.opType !== 'MatMul' || !r.isConstant(b) || r.isConstant(a)) return undefined;
  const weight = readWeight(r, node, b, 'in x out', 1);
  const product = node.output?.[0] ?? '';
  const [add, ...others] = r.users(product);
  const biasName =
    add?.opType === 'Add' && others.length === 0 && add.input?.length === 2
      ? add.input[0] === product
        ? add.input[1]
        : add.input[0]
      : undefined;
  const bias =
    add && biasName && r.isConstant(biasName) && fitsBias(r, add, biasName, weight.matrix.rows)
      ? readBias(r, add, biasName, weight.matrix.rows, 1)
      : undefined;
  return denseOf(r, node, a, weight, bias, {
    op: 'MatMul',
    transB: false,
    alpha: 1,
    beta: 1,
    add: bias && add,
  });
}

/** The layer and its template, from the weight and bias as read. */
function denseOf(
  r: Reader,
  node: NodeProto,
  input: string,
  weight: ReturnType<typeof readWeight>,
  bias: ReturnType<typeof readBias> | undefined,
  form: Pick<OnnxLayerTemplate, 'op' | 'transB' | 'alpha' | 'beta'> & { readonly add?: NodeProto },
): ReadDense {
  const { add, ...rest } = form;
  return {
    layer: {
      name: layerName(weight.root, r.name(node)),
      weight: weight.matrix,
      bias: bias?.values ?? zerosLike(weight.matrix.data, weight.matrix.rows),
      hasBias: bias !== undefined,
    },
    template: {
      ...rest,
      nodeName: r.name(node),
      weightName: weight.root,
      weightDims: weight.dims,
      weightType: weight.dataType,
      ...(bias ? { bias: bias.template } : {}),
      ...(add ? { addNodeName: r.name(add) } : {}),
      output: ((add ?? node).output ?? [])[0] ?? '',
    },
    nodes: add ? [node, add] : [node],
    input,
  };
}

/**
 * A weight stored as a dims[0] x dims[1] matrix, returned in the n_out x n_in layout, float64 when
 * the file stores it so (float16 and float32 in float32, exactly).
 */
function readWeight(
  r: Reader,
  node: NodeProto,
  name: string,
  stored: 'out x in' | 'in x out',
  scale: number,
) {
  const { dims, values, dataType, root } = r.constant(node, name, 'float');
  if (dims.length !== 2 || dims[0] === 0 || dims[1] === 0) {
    throw r.error(node, `weight '${name}' has shape [${dims.join(', ')}], expected a matrix`);
  }
  const data = values.map((w) => scale * w);
  const asStored = { rows: dims[0], cols: dims[1], data };
  return { matrix: stored === 'out x in' ? asStored : transpose(asStored), dims, dataType, root };
}

/** Whether the Add's constant is a bias of n_out values (not some other broadcast). */
function fitsBias(r: Reader, add: NodeProto, name: string, rows: number): boolean {
  const { dims } = r.constant(add, name, 'float');
  return product(dims) === rows && dims.slice(0, -1).every((d) => d === 1) && dims.length >= 1;
}

/** A bias of n_out values, or of one value broadcast to all of them. */
function readBias(r: Reader, node: NodeProto, name: string, rows: number, scale: number) {
  const { dims, values, dataType, root } = r.constant(node, name, 'float');
  if (!((values.length === rows || values.length === 1) && dims.slice(0, -1).every((d) => d === 1))) {
    throw r.error(node, `bias '${name}' has shape [${dims.join(', ')}], expected [${rows}]`);
  }
  const bias = zerosLike(values, rows);
  for (let i = 0; i < rows; i++) bias[i] = scale * values[values.length === 1 ? 0 : i];
  return { values: bias, template: { name: root, dims, dataType } };
}

/** Reads a model from ONNX bytes; `file` names the source in errors. */
export function readOnnx(bytes: Uint8Array, file?: string): OnnxModel {
  const model = decodeModel(bytes, file);
  const graph = model.graph;
  if (graph == null) throw badInput('not a valid ONNX file: it has no graph', file);
  const opset =
    int((model.opsetImport ?? []).find((o) => DEFAULT_DOMAINS.includes(o.domain ?? ''))?.version) || 0;
  if (!(opset >= MIN_OPSET)) {
    throw new EcpruneError(
      'unsupported',
      `opset ${opset} is older than ecprune reads (${MIN_OPSET} and later); export the model with a newer opset`,
      file,
    );
  }
  if (opset > MAX_OPSET) {
    throw new EcpruneError(
      'unsupported',
      `opset ${opset} is newer than ecprune knows (${MIN_OPSET} to ${MAX_OPSET}); export the model with opset ${MAX_OPSET} or older`,
      file,
    );
  }
  const r = new Reader(graph, file);
  // old exporters list the initializers among the graph inputs too: the data input is the other one
  const inputs = (graph.input ?? []).filter((i) => !r.isInitializer(i.name ?? '')).map(tensorInfo);
  const outputs = (graph.output ?? []).map(tensorInfo);
  if (inputs.length !== 1 || outputs.length === 0) {
    const names = (infos: OnnxTensorInfo[]) => infos.map((i) => `'${i.name}'`).join(', ') || 'none';
    throw new EcpruneError(
      'unsupported',
      `the graph has inputs ${names(inputs)} and outputs ${names(outputs)}; ecprune reads one of each`,
      file,
    );
  }
  const [input] = inputs;
  if (![0, FLOAT, DOUBLE, FLOAT16].includes(input.elemType)) {
    const typeName = onnx.TensorProto.DataType[input.elemType] ?? input.elemType;
    throw new EcpruneError(
      'unsupported',
      `input '${input.name}' has element type ${typeName}; ecprune reads float models`,
      file,
    );
  }

  // one pass in file order: the layers, and every other node as it stands
  const fileNodes = (graph.node ?? []).filter((n) => !(n.opType === 'Constant' && isDefaultDomain(n)));
  const computed = new Set([input.name, ...r.constantNames()]);
  const nodeOf = new Map<GraphNode, NodeProto[]>();
  const nodes: GraphNode[] = [];
  const layers: ReadDense[] = [];
  const absorbed = new Set<NodeProto>();
  const order = new Map(fileNodes.map((node, index) => [node, index]));
  for (const node of fileNodes) {
    if (absorbed.has(node)) continue;
    for (const name of node.input ?? []) {
      if (name === '') continue;
      const producer = r.producer(name);
      if (producer !== undefined && (order.get(producer) ?? 0) >= (order.get(node) ?? 0)) {
        throw r.error(
          node,
          `it reads tensor '${name}', which node '${r.name(producer)}' writes after it: the graph has a cycle (or its nodes are not in topological order)`,
        );
      }
      if (computed.has(name)) continue;
      if ((node.opType === 'Gemm' || node.opType === 'MatMul') && name === node.input?.[1])
        r.constant(node, name);
      throw r.error(node, `input '${name}' is not produced by any node, initializer or graph input`);
    }
    const dense = isDefaultDomain(node) ? readDense(r, node) : undefined;
    if (dense) {
      for (const n of dense.nodes) absorbed.add(n);
      const graphNode: GraphNode = {
        name: dense.template.nodeName,
        op: 'Dense',
        inputs: [dense.input],
        outputs: [dense.template.output],
        attrs: { layer: layers.length },
      };
      layers.push(dense);
      nodes.push(graphNode);
      nodeOf.set(graphNode, [...dense.nodes]);
      computed.add(dense.template.output);
      continue;
    }
    const op = isDefaultDomain(node) ? (node.opType ?? '') : `${node.domain}.${node.opType}`;
    const graphNode: GraphNode = {
      name: r.name(node),
      op,
      inputs: [...(node.input ?? [])],
      outputs: [...(node.output ?? [])],
      // attributes of ops outside the graph (a frozen prefix) are not needed
      attrs: OPS[op] === undefined ? {} : normalizedAttributes(op, r.attributes(node), opset),
    };
    nodes.push(graphNode);
    nodeOf.set(graphNode, [node]);
    for (const name of node.output ?? []) computed.add(name);
  }
  if (layers.length === 0) {
    throw r.error(
      undefined,
      `the graph has no fully-connected layer (a Gemm, or a MatMul with a constant weight) after input '${input.name}'`,
    );
  }

  const cut = cutPrefix(nodes, input.name, file);
  const kept = cut ? nodes.filter((n) => !cut.nodes.has(n)) : nodes;
  for (const node of kept) {
    if (OPS[node.op] === undefined) {
      throw r.unsupported((nodeOf.get(node) ?? [])[0]);
    }
    if (node.op === 'BatchNormalization' && node.outputs.filter((o) => o !== '').length > 1) {
      throw r.unsupported(
        (nodeOf.get(node) ?? [])[0],
        'in training mode (with running-statistics outputs); export the model in eval mode',
      );
    }
  }

  const output = outputs[0];
  if (!computed.has(output.name))
    throw r.error(undefined, `the graph output '${output.name}' is never computed`);
  const constants = new Map<string, Tensor>();
  for (const node of kept) {
    for (const name of node.inputs) {
      if (name === '' || constants.has(name) || !r.isConstant(name)) continue;
      constants.set(name, asTensor(r.constant((nodeOf.get(node) ?? [])[0], name)));
    }
  }
  const firstLayer = layers[0].layer;
  const features = input.dims?.slice(1);
  const shape = cut
    ? [firstLayer.weight.cols]
    : features?.every((d) => typeof d === 'number' && d > 0)
      ? (features as number[])
      : [firstLayer.weight.cols];
  const denseLayers = layers.map((l) => l.layer);
  checkFinite(denseLayers, file);
  // a float64 input reaches every layer in float64 unless the graph casts it: onnxruntime refuses
  // such a model, and reading it would silently compute in another precision than the file says
  if (input.elemType === DOUBLE && !fileNodes.some((n) => n.opType === 'Cast')) {
    for (const l of layers) {
      const { weightType, weightName } = l.template;
      if (weightType !== input.elemType) {
        const typeName = (t: number) => onnx.TensorProto.DataType[t] ?? String(t);
        throw r.error(
          undefined,
          `input '${input.name}' is ${typeName(input.elemType)} but the weight '${weightName}' is ${typeName(weightType)} (onnxruntime refuses the mix): export the model in one float type`,
        );
      }
    }
  }
  const lastDense = nodes.map((n) => n.op).lastIndexOf('Dense');
  const template: OnnxTemplate = {
    bytes,
    opset,
    irVersion: int(model.irVersion),
    producer: `${model.producerName ?? ''} ${model.producerVersion ?? ''}`.trim(),
    input,
    outputs,
    prefixOps: cut ? nodes.filter((n) => cut.nodes.has(n)).map((n) => n.op) : [],
    layers: layers.map((l) => l.template),
    headOps: nodes.slice(lastDense + 1).map((n) => n.op),
    metadata: Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
  };
  return {
    graph: {
      input: { name: cut?.tensor ?? input.name, shape },
      output: output.name,
      nodes: kept,
      constants,
      layers: denseLayers,
    },
    template,
    ...(cut
      ? {
          prefix: prefixModel(
            model,
            nodes.filter((n) => cut.nodes.has(n)).flatMap((n) => nodeOf.get(n) ?? []),
            input,
            cut.tensor,
          ),
        }
      : {}),
  };
}

function checkFinite(layers: readonly DenseLayer[], file?: string): void {
  layers.forEach((layer, l) => {
    checkFiniteLayer(layer, file, `layer ${l} ('${layer.name}')`);
  });
}

/**
 * The frozen prefix: when an ancestor of the first fully-connected layer's input is an op the graph
 * cannot differentiate, every ancestor of that input; the graph then starts at that tensor.
 */
function cutPrefix(
  nodes: readonly GraphNode[],
  inputName: string,
  file?: string,
): { nodes: ReadonlySet<GraphNode>; tensor: string } | undefined {
  const first = nodes.findIndex((n) => n.op === 'Dense');
  const tensor = nodes[first].inputs[0];
  const producer = new Map<string, GraphNode>();
  for (const node of nodes) for (const name of node.outputs) producer.set(name, node);
  const ancestors = new Set<GraphNode>();
  const stack = [tensor];
  while (stack.length > 0) {
    const node = producer.get(stack.pop() ?? '');
    if (node === undefined || ancestors.has(node)) continue;
    ancestors.add(node);
    stack.push(...node.inputs);
  }
  if ([...ancestors].every((n) => OPS[n.op] !== undefined)) return undefined;
  const prefixTensors = new Set([inputName, ...[...ancestors].flatMap((n) => n.outputs)]);
  for (const node of nodes) {
    if (ancestors.has(node)) continue;
    const shared = node.inputs.find((name) => name !== tensor && prefixTensors.has(name));
    if (shared !== undefined) {
      throw new EcpruneError(
        'unsupported',
        `it reads tensor '${shared}' of the frozen prefix (the ops before the first fully-connected layer, ` +
          `which ecprune runs as a feature extractor up to tensor '${tensor}'); ` +
          'only the prefix output may be used after it: export the model so that the fully-connected part reads one tensor',
        file,
        `node '${node.name}'`,
      );
    }
  }
  return { nodes: ancestors, tensor };
}

/** The prefix as a model of its own: the original input → `cut` as float [batch, n_in]. */
function prefixModel(
  model: OnnxTypes.ModelProto,
  prefixNodes: readonly NodeProto[],
  input: OnnxTensorInfo,
  cut: string,
): Uint8Array {
  const graph = model.graph!;
  const used = new Set(prefixNodes.flatMap((n) => n.input ?? []));
  const constantNodes = (graph.node ?? []).filter(
    (n) => n.opType === 'Constant' && isDefaultDomain(n) && used.has(n.output?.[0] ?? ''),
  );
  const keep = new Set([...constantNodes, ...prefixNodes]);
  const elemType = input.elemType === 0 ? FLOAT : input.elemType;
  const prefix = onnx.ModelProto.create({
    irVersion: model.irVersion,
    opsetImport: model.opsetImport,
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    graph: {
      name: `${graph.name ?? 'graph'}_prefix`,
      node: (graph.node ?? []).filter((n) => keep.has(n)),
      initializer: (graph.initializer ?? []).filter((t) => used.has(t.name ?? '')),
      sparseInitializer: (graph.sparseInitializer ?? []).filter((t) => used.has(t.values?.name ?? '')),
      input: (graph.input ?? []).filter((i) => i.name === input.name),
      output: [
        {
          name: cut,
          type: { tensorType: { elemType, shape: { dim: [{ dimParam: 'batch' }, {}] } } },
        },
      ],
    },
  });
  return onnx.ModelProto.encode(prefix).finish();
}

/** What `inspect` shows of an ONNX model. */
/** The float type the model's fully-connected weights are stored in (of its first layer). */
export function weightDtypeOf(template: OnnxTemplate): 'float32' | 'float16' | 'float64' {
  const type = template.layers[0]?.weightType;
  return type === DOUBLE ? 'float64' : type === FLOAT16 ? 'float16' : 'float32';
}

export function describeOnnx(template: OnnxTemplate): {
  opset: number;
  irVersion: number;
  producer: string;
  input: string;
  output: string;
  prefix: readonly string[];
  layers: readonly string[];
  head: readonly string[];
} {
  const show = (t: OnnxTensorInfo) => `${t.name} [${t.dims?.map((d) => d ?? '?').join(', ') ?? '?'}]`;
  const more = template.outputs.length > 1 ? ` (the first of ${template.outputs.length} outputs)` : '';
  return {
    opset: template.opset,
    irVersion: template.irVersion,
    producer: template.producer,
    input: show(template.input),
    output: `${show(template.outputs[0])}${more}`,
    prefix: template.prefixOps,
    layers: template.layers.map(
      (l) =>
        `${l.nodeName} (${l.op}${l.addNodeName ? ` + ${l.addNodeName}` : ''}): ${l.weightName}${l.bias ? `, ${l.bias.name}` : ', no bias'}`,
    ),
    head: template.headOps,
  };
}
