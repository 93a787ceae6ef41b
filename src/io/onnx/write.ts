/**
 * graph → ONNX. With the template of the file the graph was read from, the file itself with only
 * the layers' weight and bias initializers replaced (same names, element types and layouts); a
 * bias-free layer whose bias became non-zero is compensated through a following BatchNormalization's
 * mean, or gains a bias. Without a template, a fresh model of the graph at opset 13 (or the first
 * opset that has all its ops), every node in that opset's form.
 */
import type { onnx as OnnxTypes } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import { EcpruneError } from '../../errors.js';
import type { AttributeValue, DenseLayer, Graph, GraphNode } from '../../graph/graph.js';
import { transpose } from '../../model/matrix.js';
import { layerName, type OnnxLayerTemplate, type OnnxTemplate } from './read.js';
import {
  DOUBLE,
  decodeTensor,
  encodeTensor,
  FLOAT,
  FLOAT16,
  INT64,
  product,
  type SparseTensorProto,
  sparseTensor,
  type TensorProto,
} from './tensors.js';

const { onnx } = onnxProto;
type NodeProto = OnnxTypes.INodeProto;
type GraphProto = OnnxTypes.IGraphProto;
type AttributeProto = OnnxTypes.IAttributeProto;

export interface WriteOnnxOptions {
  /** weights as sparse_initializers (onnxruntime densifies them at load) */
  readonly sparse?: boolean;
}

/**
 * ONNX bytes for `graph`, with the structure, names and opset of `template` (or a fresh model when
 * the graph came from another format) and `metadata` merged into metadata_props.
 */
export function writeOnnx(
  graph: Graph,
  template: OnnxTemplate | undefined,
  metadata: Record<string, string>,
  options: WriteOnnxOptions = {},
): Uint8Array {
  const model = template ? intoTemplate(graph, template, options) : freshModel(graph, options);
  const merged = {
    ...Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
    ...metadata,
  };
  model.metadataProps = Object.entries(merged).map(([key, value]) => ({ key, value }));
  // initializers are not listed as graph inputs (IR 4+); sparse_initializer needs IR 6
  model.irVersion = Math.max(Number(model.irVersion ?? 0), options.sparse ? 6 : 4);
  return onnx.ModelProto.encode(model).finish();
}

/** Puts `tensor` in place of the initializer `name` (dense or sparse), as sparse when asked. */
function replaceInitializer(
  g: GraphProto,
  name: string,
  dims: readonly number[],
  values: ArrayLike<number>,
  dataType: number,
  sparse: boolean,
): void {
  const dense = g.initializer ?? [];
  const sparseList = g.sparseInitializer ?? [];
  const at = dense.findIndex((t) => t.name === name);
  const sparseAt = sparseList.findIndex((t) => t.values?.name === name);
  if (at < 0 && sparseAt < 0) {
    // a weight a Constant node holds: its value is replaced, dense
    const constant = (g.node ?? []).find((n) => n.opType === 'Constant' && n.output?.[0] === name);
    if (constant === undefined)
      throw new EcpruneError('internal', `initializer '${name}' is not in the template`);
    constant.attribute = [{ name: 'value', type: T, t: encodeTensor(name, dims, values, dataType) }];
    return;
  }
  if (sparse) {
    const tensor: SparseTensorProto = sparseTensor(name, dims, values, dataType);
    if (at >= 0) dense.splice(at, 1);
    if (sparseAt >= 0) sparseList[sparseAt] = tensor;
    else sparseList.push(tensor);
  } else {
    const tensor: TensorProto = encodeTensor(name, dims, values, dataType);
    if (sparseAt >= 0) sparseList.splice(sparseAt, 1);
    if (at >= 0) dense[at] = tensor;
    else dense.push(tensor);
  }
  g.initializer = dense;
  g.sparseInitializer = sparseList;
}

/** A name no tensor of `g` has yet. */
function freshName(g: GraphProto, wanted: string): string {
  const taken = new Set([
    ...(g.initializer ?? []).map((t) => t.name),
    ...(g.sparseInitializer ?? []).map((t) => t.values?.name),
    ...(g.input ?? []).map((t) => t.name),
    ...(g.node ?? []).flatMap((n) => n.output ?? []),
  ]);
  let name = wanted;
  for (let i = 1; taken.has(name); i++) name = `${wanted}_${i}`;
  return name;
}

function intoTemplate(graph: Graph, template: OnnxTemplate, options: WriteOnnxOptions): OnnxTypes.ModelProto {
  if (template.layers.length !== graph.layers.length) {
    throw new EcpruneError(
      'internal',
      `the graph has ${graph.layers.length} layers but its ONNX template has ${template.layers.length}`,
    );
  }
  const model = onnx.ModelProto.decode(template.bytes);
  const g = model.graph as GraphProto;
  let reshaped = false;
  graph.layers.forEach((layer, l) => {
    const t = template.layers[l];
    const stored = t.op === 'Gemm' && t.transB ? layer.weight : transpose(layer.weight);
    const values = t.alpha === 1 ? stored.data : stored.data.map((w) => w / t.alpha);
    replaceInitializer(
      g,
      t.weightName,
      [stored.rows, stored.cols],
      values,
      t.weightType,
      options.sparse ?? false,
    );
    const n = layer.bias.length;
    if (t.bias) {
      const original = t.bias.dims;
      reshaped ||= product(original) !== n && product(original) !== 1;
      const broadcast = product(original) === 1 && layer.bias.every((b) => b === layer.bias[0]);
      const bias = (broadcast ? layer.bias.subarray(0, 1) : layer.bias).map((b) => b / t.beta);
      const dims = broadcast || product(original) === n ? original : [n];
      replaceInitializer(g, t.bias.name, dims, bias, t.bias.dataType, false);
    } else if (layer.bias.some((b) => b !== 0)) {
      addBias(g, layer, t);
    }
    reshaped ||= stored.rows !== t.weightDims[0] || stored.cols !== t.weightDims[1];
  });
  reshaped = replaceResizedConstants(g, graph) || reshaped;
  // value_info of intermediate tensors would contradict the new widths: onnxruntime infers them again
  if (reshaped) g.valueInfo = [];
  return model;
}

/**
 * Puts the graph's constants whose size changed (per-unit parameters sliced by neuron removal, e.g.
 * a BatchNorm's) in place of the template's, in their element type; true when there was one.
 */
function replaceResizedConstants(g: GraphProto, graph: Graph): boolean {
  let resized = false;
  const stored: [string, TensorProto | null | undefined][] = [
    ...(g.initializer ?? []).map((t): [string, TensorProto] => [t.name ?? '', t]),
    ...(g.node ?? [])
      .filter((n) => n.opType === 'Constant')
      .map((n): [string, TensorProto | null | undefined] => [
        n.output?.[0] ?? '',
        n.attribute?.find((a) => a.name === 'value')?.t,
      ]),
  ];
  for (const [name, tensor] of stored) {
    const constant = graph.constants.get(name);
    if (!tensor || !constant || product((tensor.dims ?? []).map(Number)) === constant.data.length) continue;
    replaceInitializer(g, name, constant.shape, constant.data, tensor.dataType ?? FLOAT, false);
    resized = true;
  }
  return resized;
}

/**
 * A bias-free layer whose bias is now non-zero: folded into the mean of a BatchNormalization that
 * is the layer's only consumer (BN(z + b) with mean μ is BN(z) with mean μ − b), else a new bias.
 */
function addBias(g: GraphProto, layer: DenseLayer, t: OnnxLayerTemplate): void {
  const nodes = g.node ?? [];
  const users = nodes.filter((n) => (n.input ?? []).includes(t.output));
  const bn = users.length === 1 && users[0].opType === 'BatchNormalization' ? users[0] : undefined;
  const meanName = bn?.input?.[3];
  const meanUsers = meanName ? nodes.filter((n) => (n.input ?? []).includes(meanName)).length : 0;
  const mean = meanName ? (g.initializer ?? []).find((x) => x.name === meanName) : undefined;
  if (bn && bn.input?.[0] === t.output && mean && meanUsers === 1) {
    const fail = (detail: string) => new EcpruneError('internal', detail);
    const { dims, values, dataType } = decodeTensor(mean, 'float', fail);
    const shifted = values.map((m, i) => m - layer.bias[i]);
    replaceInitializer(g, meanName ?? '', dims, shifted, dataType, false);
    return;
  }
  const dataType = [FLOAT, DOUBLE, FLOAT16].includes(t.weightType) ? t.weightType : FLOAT;
  const biasName = freshName(g, `${layerName(t.weightName, t.nodeName)}.bias`);
  const node = nodes.find((n) => (n.output ?? []).includes(t.output));
  if (node === undefined) throw new EcpruneError('internal', `node '${t.nodeName}' is not in the template`);
  if (t.op === 'Gemm') {
    // a Gemm with beta = 0 ignored its C: the new bias is written with beta = 1
    const beta = t.beta === 0 ? 1 : t.beta;
    const bias = layer.bias.map((b) => b / beta);
    g.initializer = [...(g.initializer ?? []), encodeTensor(biasName, [layer.bias.length], bias, dataType)];
    node.input = [...(node.input ?? []).slice(0, 2), biasName];
    if (t.beta === 0) node.attribute = (node.attribute ?? []).filter((a) => a.name !== 'beta');
    return;
  }
  g.initializer = [
    ...(g.initializer ?? []),
    encodeTensor(biasName, [layer.bias.length], layer.bias, dataType),
  ];
  const product = freshName(g, `${t.output}_without_bias`);
  node.output = [product];
  const add: NodeProto = {
    opType: 'Add',
    name: `${t.nodeName}/bias`,
    input: [product, biasName],
    output: [t.output],
  };
  nodes.splice(nodes.indexOf(node) + 1, 0, add);
  g.node = nodes;
}

// ---------------------------------------------------------------------------------------------
// A fresh model
// ---------------------------------------------------------------------------------------------

/** Ops that are ONNX ops only from a later opset than the fresh model's 13. */
const NEWER_OPS: Readonly<Record<string, number>> = {
  HardSwish: 14,
  LayerNormalization: 17,
  Mish: 18,
  Gelu: 20,
};
/** Ops whose axes became an input (from the opset given) instead of an attribute. */
const AXES_INPUT_FROM: Readonly<Record<string, number>> = {
  Unsqueeze: 13,
  Squeeze: 13,
  ReduceSum: 13,
  ReduceMean: 18,
};

/**
 * A node read from an older opset in the form `opset` takes: axes and Clip's bounds as inputs,
 * Dropout's ratio (inference: unused) dropped. `constant` adds an initializer and returns its name.
 */
function inOpset(
  node: GraphNode,
  opset: number,
  constants: Graph['constants'],
  constant: (wanted: string, dims: readonly number[], values: readonly number[], dataType: number) => string,
): { inputs: string[]; attrs: Record<string, AttributeValue> } {
  const { axes, min, max, ratio, training_mode, ...rest } = node.attrs;
  const inputs = [...node.inputs];
  const attrs: Record<string, AttributeValue> = { ...rest };
  const axesAsInput = opset >= (AXES_INPUT_FROM[node.op] ?? Number.POSITIVE_INFINITY);
  if (axes !== undefined && axesAsInput) {
    const list = typeof axes === 'number' ? [axes] : (axes as number[]);
    inputs[1] = constant(`${node.name}.axes`, [list.length], list, INT64);
  } else if (axes !== undefined) attrs.axes = axes;
  const axesInput = node.op in AXES_INPUT_FROM && !axesAsInput ? constants.get(inputs[1] ?? '') : undefined;
  if (axesInput !== undefined) {
    attrs.axes = Array.from(axesInput.data);
    inputs.length = 1;
  }
  if (node.op === 'Clip') {
    if (typeof min === 'number') inputs[1] = constant(`${node.name}.min`, [], [min], FLOAT);
    if (typeof max === 'number') inputs[2] = constant(`${node.name}.max`, [], [max], FLOAT);
    for (let i = 0; i < inputs.length; i++) inputs[i] ??= '';
  } else Object.assign(attrs, min === undefined ? {} : { min }, max === undefined ? {} : { max });
  if (ratio !== undefined && node.op !== 'Dropout') attrs.ratio = ratio;
  // the fresh model is float32 throughout; BatchNormalization reads in inference mode
  if (node.op === 'Cast' && (attrs.to === FLOAT16 || attrs.to === DOUBLE)) attrs.to = FLOAT;
  if (training_mode !== undefined && node.op !== 'BatchNormalization') attrs.training_mode = training_mode;
  return { inputs, attrs };
}

/** Number attributes the ONNX ops take as floats (the others are ints). */
const FLOAT_ATTRIBUTES = new Set([
  'alpha',
  'beta',
  'gamma',
  'epsilon',
  'min',
  'max',
  'lambd',
  'bias',
  'momentum',
  'ratio',
]);
/** Inputs the ops take as int64 tensors (shapes, axes, indices), by op and input index. */
const INT_INPUTS: Readonly<Record<string, readonly number[]>> = {
  Reshape: [1],
  Unsqueeze: [1],
  Squeeze: [1],
  ReduceMean: [1],
  ReduceSum: [1],
  Expand: [1],
  Tile: [1],
  Gather: [1],
  Slice: [1, 2, 3, 4],
  ConstantOfShape: [0],
};

const { FLOAT: F, INT: I, STRING: S, TENSOR: T, FLOATS: FS, INTS: IS } = onnx.AttributeProto.AttributeType;

function attributeProto(name: string, value: AttributeValue): AttributeProto {
  if (typeof value === 'string') return { name, type: S, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') {
    return FLOAT_ATTRIBUTES.has(name) || !Number.isInteger(value)
      ? { name, type: F, f: value }
      : { name, type: I, i: value };
  }
  if (Array.isArray(value)) {
    const list = value as readonly number[];
    return list.every(Number.isInteger) && !FLOAT_ATTRIBUTES.has(name)
      ? { name, type: IS, ints: [...list] }
      : { name, type: FS, floats: [...list] };
  }
  const tensor = value as Exclude<AttributeValue, number | string | readonly number[]>;
  return {
    name,
    type: T,
    t: encodeTensor('', tensor.shape, tensor.data, tensor.data instanceof Float64Array ? INT64 : FLOAT),
  };
}

/** Which constants are int64 in ONNX: the graph keeps shapes and axes as Float64Array like float64 data. */
function intConstants(graph: Graph): Set<string> {
  const ints = new Set<string>();
  const intTensors = new Set<string>();
  for (const node of graph.nodes) {
    const slots = INT_INPUTS[node.op] ?? [];
    const withInts = node.op === 'Shape' || node.inputs.some((name) => intTensors.has(name));
    node.inputs.forEach((name, i) => {
      const c = graph.constants.get(name);
      if (
        c &&
        c.data instanceof Float64Array &&
        c.data.every(Number.isInteger) &&
        (slots.includes(i) || (withInts && i === 0) || withInts)
      )
        ints.add(name);
    });
    const shapeOnly = ['Shape', 'Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Slice'].includes(node.op);
    if (
      node.op === 'Shape' ||
      (shapeOnly &&
        node.inputs.some((name) => intTensors.has(name) || ints.has(name)) &&
        !node.inputs.some((name) => name === graph.input.name))
    ) {
      for (const name of node.outputs) intTensors.add(name);
    }
  }
  return ints;
}

function freshModel(graph: Graph, options: WriteOnnxOptions): OnnxTypes.ModelProto {
  const ints = intConstants(graph);
  const initializers: TensorProto[] = [];
  const sparseInitializers: SparseTensorProto[] = [];
  const taken = new Set([
    graph.input.name,
    ...graph.constants.keys(),
    ...graph.nodes.flatMap((n) => n.outputs),
  ]);
  const unique = (wanted: string) => {
    let name = wanted;
    for (let i = 1; taken.has(name); i++) name = `${wanted}_${i}`;
    taken.add(name);
    return name;
  };
  for (const [name, c] of graph.constants) {
    initializers.push(encodeTensor(name, c.shape, c.data, ints.has(name) ? INT64 : FLOAT));
  }
  const opset = Math.max(13, ...graph.nodes.map((n) => NEWER_OPS[n.op] ?? 0));
  const nodes: NodeProto[] = graph.nodes.map((node: GraphNode) => {
    if (node.op !== 'Dense') {
      const { inputs, attrs } = inOpset(node, opset, graph.constants, (wanted, dims, values, dataType) => {
        const name = unique(wanted);
        initializers.push(encodeTensor(name, dims, values, dataType));
        return name;
      });
      return {
        opType: node.op,
        name: node.name,
        input: inputs,
        output: [...node.outputs],
        attribute: Object.entries(attrs).map(([k, v]) => attributeProto(k, v)),
      };
    }
    const layer = graph.layers[node.attrs.layer as number];
    const weight = unique(`${layer.name}.weight`);
    const bias = unique(`${layer.name}.bias`);
    const { rows, cols, data } = layer.weight;
    if (options.sparse) sparseInitializers.push(sparseTensor(weight, [rows, cols], data));
    else initializers.push(encodeTensor(weight, [rows, cols], data, FLOAT));
    initializers.push(encodeTensor(bias, [rows], layer.bias, FLOAT));
    return {
      opType: 'Gemm',
      name: node.name,
      input: [node.inputs[0], weight, bias],
      output: [...node.outputs],
      attribute: [{ name: 'transB', type: I, i: 1 }],
    };
  });
  const valueInfo = (name: string, dims: { dimParam?: string; dimValue?: number }[]) => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims } } },
  });
  return onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'ecprune',
    graph: {
      name: 'graph',
      node: nodes,
      initializer: initializers,
      sparseInitializer: sparseInitializers,
      input: [
        valueInfo(graph.input.name, [
          { dimParam: 'batch' },
          ...graph.input.shape.map((d) => ({ dimValue: d })),
        ]),
      ],
      output: [{ name: graph.output, type: { tensorType: { elemType: FLOAT } } }],
    },
  });
}
