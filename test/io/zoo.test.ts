import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import {
  assertClose,
  calibration,
  expectedOutputs,
  type Fixture,
  manifest,
  type OnnxFcLayer,
  onnxFixtures,
  type TfjsFcLayer,
  tfjsFixtures,
  ZOO,
} from '../helpers/zoo.js';

// The producer zoo of issue #11: ONNX files exported by torch 1.13 (make_zoo_torch.py) and TF.js
// models saved by tfjs-layers (make_zoo_tfjs.ts), each with 64 calibration samples and the
// producer's outputs on them. This checks the fixtures against their real consumers
// (onnxruntime-node, tfjs-layers' loadLayersModel) and the manifest against the files.
// tfjs-backend-cpu's advice to install tfjs-node (which cannot be installed here) is not for this test's output
tf.env().set('IS_TEST', true);

// Issue #11's table and op list, as the manifest names them.
const TORCH_CONSTRUCTS = [
  'x.view(x.size(0), -1) with a dynamic batch',
  'nn.Flatten',
  'nn.BatchNorm1d after a Linear',
  'nn.BatchNorm1d after a Linear without bias',
  'final nn.Softmax',
  'final nn.LogSoftmax',
  'nn.ReLU',
  'nn.SiLU',
  "nn.GELU(approximate='tanh')",
  'nn.GELU',
  'nn.Mish',
  'nn.ReLU6',
  'nn.Hardtanh',
  'nn.LeakyReLU',
  'nn.PReLU',
  'nn.ELU',
  'nn.SELU',
  'nn.CELU',
  'nn.Hardsigmoid',
  'nn.Hardswish',
  'nn.Softplus',
  'nn.Softsign',
  'nn.Tanh',
  'nn.Sigmoid',
  'nn.LayerNorm',
  'LayerNorm decomposed (ReduceMean/Sub/Pow/Sqrt/Div)',
  'LayerNorm fused (LayerNormalization)',
  'residual x + f(x)',
  'torch.cat of features',
  'arithmetic with constants',
  'arithmetic between tensors',
  'torch.exp/log/pow/sqrt',
  'nn.Dropout',
  'torch.clamp',
  'last nn.Linear(bias=False) with nothing after',
  'x @ W + b',
  'CNN with a fully-connected head',
  'float64 model',
  'float16 model',
];
const TFJS_CONSTRUCTS = [
  'tfjs Sequential',
  'tfjs functional model',
  // Keras' names, as model.json stores them. tfjs-layers 4.22 has no 'exponential' and no 'silu'
  // (its SiLU is 'swish'); it saves 'gelu_new' but its loadLayersModel refuses it ('geluNew').
  ...[
    'softmax',
    'swish',
    'gelu',
    'mish',
    'selu',
    'relu6',
    'hard_sigmoid',
    'softsign',
    'elu',
    'linear',
    'tanh',
    'sigmoid',
    'relu',
    'softplus',
  ].map((activation) => `tfjs Dense(activation='${activation}')`),
  'tfjs Dense(useBias=false)',
  'tfjs Activation layer',
  'tfjs ReLU layer',
  'tfjs LeakyReLU layer',
  'tfjs PReLU layer',
  'tfjs ELU layer',
  'tfjs Softmax layer',
  "tfjs BatchNormalization + Activation('swish')",
  'tfjs LayerNormalization',
  'tfjs Dropout',
  'tfjs Flatten (channels_last)',
  'tfjs Reshape',
  'tfjs Add (residual)',
  'tfjs Concatenate',
];
const ISSUE_ONNX_OPS = [
  'Gemm',
  'MatMul',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Relu',
  'LeakyRelu',
  'PRelu',
  'Elu',
  'Selu',
  'Celu',
  'Tanh',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Softplus',
  'Softsign',
  'Gelu',
  'Erf',
  'Exp',
  'Log',
  'Pow',
  'Sqrt',
  'Clip',
  'Mish',
  'Softmax',
  'LogSoftmax',
  'BatchNormalization',
  'LayerNormalization',
  'ReduceMean',
  'Dropout',
  'Identity',
  'Cast',
  'Constant',
  'Flatten',
  'Reshape',
  'Shape',
  'Gather',
  'Unsqueeze',
  'Concat',
];
const ISSUE_TFJS_LAYERS = [
  'Dense',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'PReLU',
  'ELU',
  'Softmax',
  'BatchNormalization',
  'LayerNormalization',
  'Dropout',
  'Flatten',
  'Reshape',
  'Add',
  'Concatenate',
];

// -----------------------------------------------------------------------------------------------

describe('producer zoo: the manifest', () => {
  /** Every one of `wanted` is among what some fixture covers. */
  const assertCovered = (fixtures: Fixture[], wanted: readonly string[], what: (f: Fixture) => string[]) => {
    const covered = new Set(fixtures.flatMap(what));
    assert.deepEqual(
      wanted.filter((c) => !covered.has(c)),
      [],
      'named by the issue, without a fixture',
    );
  };

  it('covers every PyTorch construct, ONNX op and opset (9 to 21) of issue #11', () => {
    assertCovered(onnxFixtures, TORCH_CONSTRUCTS, (f) => f.constructs);
    assertCovered(onnxFixtures, ISSUE_ONNX_OPS, (f) => f.ops);
    const opsets = Array.from({ length: 13 }, (_, k) => `opset ${9 + k}`);
    assertCovered(onnxFixtures, opsets, (f) => [`opset ${f.opset}`]);
  });

  it('covers every TF.js construct and layer class of issue #11', () => {
    assertCovered(tfjsFixtures, TFJS_CONSTRUCTS, (f) => f.constructs);
    assertCovered(tfjsFixtures, ISSUE_TFJS_LAYERS, (f) => f.ops);
  });

  it('names only constructs of the issue, each fixture once', () => {
    const named = new Set(manifest.fixtures.flatMap((f) => f.constructs));
    const known = [...TORCH_CONSTRUCTS, ...TFJS_CONSTRUCTS];
    assert.deepEqual(
      [...named].filter((c) => !known.includes(c)),
      [],
      'constructs the issue does not name',
    );
    assert.equal(
      new Set(manifest.fixtures.map((f) => f.name)).size,
      manifest.fixtures.length,
      'unique names',
    );
  });
});

// -----------------------------------------------------------------------------------------------

type ModelProto = ReturnType<typeof onnxProto.onnx.ModelProto.decode>;
const ELEMENT_TYPE: Record<string, number> = { float32: 1, float16: 10, float64: 11 };

function loadOnnx(fixture: Fixture): { bytes: Uint8Array; model: ModelProto } {
  const bytes = readFileSync(path.join(ZOO, fixture.file));
  return { bytes, model: onnxProto.onnx.ModelProto.decode(bytes) };
}

const dimsOf = (dims: unknown[] | null | undefined) => (dims ?? []).map((d) => Number(d));

describe('producer zoo: ONNX files exported by torch 1.13', () => {
  for (const fixture of onnxFixtures) {
    it(`${fixture.name}: the manifest describes the file`, () => {
      const { model } = loadOnnx(fixture);
      const graph = model.graph!;
      const nodes = graph.node ?? [];
      assert.equal(Number(model.opsetImport![0].version), fixture.opset, 'opset');
      assert.deepEqual([...new Set(nodes.map((n) => n.opType))], fixture.ops, 'ops in node order');

      const initializers = new Map((graph.initializer ?? []).map((t) => [t.name, t]));
      const nodeNames = nodes.map((n) => n.name);
      let previous = -1;
      for (const layer of fixture.fcLayers as OnnxFcLayer[]) {
        const at = nodeNames.indexOf(layer.node);
        assert.ok(at > previous, `${layer.node} exists, after the previous fully-connected layer`);
        previous = at;
        const node = nodes[at];
        assert.equal(node.opType, layer.op);
        assert.equal(node.input![1], layer.weight, `${layer.node} reads ${layer.weight}`);
        const weight = initializers.get(layer.weight);
        assert.ok(weight, `initializer ${layer.weight}`);
        assert.deepEqual(dimsOf(weight.dims), layer.weightShape, `${layer.weight} shape`);
        assert.equal(weight.dataType, ELEMENT_TYPE[fixture.dtype], `${layer.weight} element type`);
        const transB = node.attribute?.find((a) => a.name === 'transB');
        const stored = layer.op === 'Gemm' && Number(transB?.i ?? 0) === 1 ? 'out_in' : 'in_out';
        assert.equal(stored, layer.weightLayout, `${layer.node} weight layout`);
        const [rows, cols] = layer.weightShape;
        assert.deepEqual(stored === 'out_in' ? [cols, rows] : [rows, cols], [layer.nIn, layer.nOut]);
        if (layer.bias === null) continue;
        const bias = initializers.get(layer.bias);
        assert.ok(bias, `initializer ${layer.bias}`);
        assert.deepEqual(dimsOf(bias.dims), [layer.nOut], `${layer.bias} shape`);
        // the bias node reads the initializer itself or an Identity of it
        const aliases = new Set([
          layer.bias,
          ...nodes
            .filter((n) => n.opType === 'Identity' && n.input![0] === layer.bias)
            .map((n) => n.output![0]),
        ]);
        const biasNode = nodes.find((n) => n.name === layer.biasNode);
        assert.ok(
          biasNode?.input?.some((i) => aliases.has(i)),
          `${layer.biasNode} reads ${layer.bias}`,
        );
      }
      const firstFc = nodeNames.indexOf((fixture.fcLayers[0] as OnnxFcLayer).node);
      const before = nodes.slice(0, firstFc).filter((n) => n.opType !== 'Constant');
      assert.deepEqual(
        before.slice(0, fixture.prefix.length).map((n) => n.opType),
        fixture.prefix,
        'the prefix opens the graph',
      );
      const last = nodes[nodes.length - 1].opType;
      if (fixture.head !== null) assert.equal(last, fixture.head === 'softmax' ? 'Softmax' : 'LogSoftmax');
    });
  }

  for (const fixture of onnxFixtures) {
    it(`${fixture.name}: onnxruntime reproduces the producer's outputs`, async () => {
      const { bytes, model } = loadOnnx(fixture);
      const input = model.graph!.input![0];
      const output = model.graph!.output![0];
      assert.equal(input.type!.tensorType!.elemType, ELEMENT_TYPE[fixture.ioDtype], 'input element type');
      const { data, shape } = calibration(fixture);
      const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
      try {
        const tensor = new ort.Tensor(fixture.ioDtype, data, shape);
        const result = await session.run({ [input.name!]: tensor });
        const actual = result[output.name!];
        assert.deepEqual(actual.dims, [shape[0], ...fixture.outputShape], 'output shape');
        assertClose(actual.data as Float32Array, expectedOutputs(fixture, shape[0]), fixture);
      } finally {
        await session.release();
      }
    });
  }
});

// -----------------------------------------------------------------------------------------------

interface WeightsManifestEntry {
  readonly paths: string[];
  readonly weights: { name: string; shape: number[]; dtype: string }[];
}

interface ModelJson {
  readonly modelTopology: unknown;
  readonly weightsManifest: WeightsManifestEntry[];
}

function readTfjsFixture(fixture: Fixture) {
  const folder = path.dirname(path.join(ZOO, fixture.file));
  const json: ModelJson = JSON.parse(readFileSync(path.join(ZOO, fixture.file), 'utf8'));
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const shards = json.weightsManifest.flatMap((group) =>
    group.paths.map((p) => readFileSync(path.join(folder, p))),
  );
  const weightData = new Uint8Array(Buffer.concat(shards)).buffer;
  return { json, weightSpecs, weightData };
}

/** Every layer config in the topology (Sequential or functional), with its class name. */
function layerConfigs(topology: unknown): { className: string; config: Record<string, unknown> }[] {
  const model = (topology as { model_config?: unknown }).model_config ?? topology;
  const layers = (model as { config: { layers: unknown[] } }).config.layers;
  return (layers as { class_name: string; config: Record<string, unknown> }[]).map((l) => ({
    className: l.class_name,
    config: l.config,
  }));
}

describe('producer zoo: TF.js models saved by tfjs-layers', () => {
  for (const fixture of tfjsFixtures) {
    it(`${fixture.name}: the manifest describes the model`, () => {
      const { json, weightSpecs } = readTfjsFixture(fixture);
      const layers = layerConfigs(json.modelTopology);
      assert.deepEqual(
        [...new Set(layers.map((l) => l.className).filter((c) => c !== 'InputLayer'))],
        fixture.ops,
        'layer classes in order',
      );
      const shapes = new Map(weightSpecs.map((w) => [w.name, w.shape]));
      for (const weight of weightSpecs) assert.equal(weight.dtype, fixture.dtype, `${weight.name} dtype`);
      const names = layers.map((l) => l.config.name);
      let previous = -1;
      for (const layer of fixture.fcLayers as TfjsFcLayer[]) {
        const at = names.indexOf(layer.layer);
        assert.ok(at > previous, `Dense layer ${layer.layer} exists, after the previous one`);
        previous = at;
        assert.equal(layers[at].className, 'Dense');
        assert.equal(layers[at].config.activation, layer.activation, `${layer.layer} activation`);
        assert.deepEqual(shapes.get(layer.kernel), layer.kernelShape, `${layer.kernel} shape`);
        if (layer.bias === null)
          assert.equal(layers[at].config.use_bias, false, `${layer.layer} has no bias`);
        else assert.deepEqual(shapes.get(layer.bias), [layer.kernelShape[1]], `${layer.bias} shape`);
      }
    });
  }

  for (const fixture of tfjsFixtures) {
    it(`${fixture.name}: loadLayersModel reproduces the producer's outputs`, async () => {
      const { json, weightSpecs, weightData } = readTfjsFixture(fixture);
      const model = await tfl.loadLayersModel(
        tf.io.fromMemory({
          modelTopology: json.modelTopology as tf.io.ModelJSON['modelTopology'],
          weightSpecs,
          weightData,
        }),
      );
      const { data, shape } = calibration(fixture);
      const actual = tf.tidy(() => (model.predict(tf.tensor(data, shape)) as tf.Tensor).dataSync());
      model.dispose();
      assertClose(actual, expectedOutputs(fixture, shape[0]), fixture);
    });
  }
});
