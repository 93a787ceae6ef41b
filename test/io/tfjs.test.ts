import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import type { Graph } from '../../src/graph/graph.js';
import { graphFromMlp } from '../../src/graph/mlp-graph.js';
import { forward } from '../../src/graph/run.js';
import { float32LittleEndian } from '../../src/io/safetensors.js';
import { readTfjs, type TfjsModel, writeTfjs, writeTfjsGraph } from '../../src/io/tfjs.js';
import { erf } from '../../src/model/special-functions.js';
import { buildGraph, constant, DECOMPOSED_LAYER_NORM, type GraphSpec } from '../graph/build.js';
import { failsWith } from '../helpers/errors.js';
import { randomMatrix, randomMlp } from '../helpers/random.js';

tf.env().set('IS_TEST', true);
const FILE = 'model.json';

/** A batch of `rows` seeded inputs of width `cols`. */
const batch = (rows: number, cols: number) => randomMatrix(rows, cols, 7);

/** Saves a tfjs-layers model the way `model.save` writes it, and reads that with readTfjs. */
async function savedAndRead(model: tfl.LayersModel): Promise<TfjsModel> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const json = {
    format: 'layers-model',
    modelTopology: artifacts!.modelTopology,
    weightsManifest: [{ paths: ['w.bin'], weights: artifacts!.weightSpecs }],
  };
  const bytes = new Uint8Array(artifacts!.weightData as ArrayBuffer);
  return readTfjs(JSON.stringify(json), () => bytes, FILE);
}

/** Seeded weights (positive variances) so that no weight is at its initial value. */
function randomizeWeights(model: tfl.LayersModel): void {
  model.setWeights(
    model.weights.map((w, k) => {
      const shape = w.shape as number[];
      return w.name.includes('variance')
        ? tf.randomUniform(shape, 0.5, 1.5, 'float32', 100 + k)
        : tf.randomUniform(shape, -1, 1, 'float32', 100 + k);
    }),
  );
}

function predict(
  model: tfl.LayersModel,
  x: { rows: number; cols: number; data: Float32Array },
): Float32Array {
  return tf.tidy(
    () => (model.predict(tf.tensor2d(x.data, [x.rows, x.cols])) as tf.Tensor).dataSync() as Float32Array,
  );
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    assert.ok(error <= 1e-5 * Math.abs(expected[i]) + 1e-6, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

async function loadWritten(written: ReturnType<typeof writeTfjs>): Promise<tfl.LayersModel> {
  const json = JSON.parse(written.modelJson);
  const [shard] = [...written.shards.values()];
  return tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights,
      weightData: shard.slice().buffer,
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Hand-written model.json files, for what tfjs-layers cannot save (Keras 2/3 forms and options)

interface Weight {
  readonly name: string;
  readonly shape: number[];
  readonly values: Float32Array;
}

function handWritten(topology: object, weights: Weight[]): { text: string; shard: Uint8Array } {
  const json = {
    format: 'layers-model',
    modelTopology: topology,
    weightsManifest: [
      { paths: ['w.bin'], weights: weights.map(({ name, shape }) => ({ name, shape, dtype: 'float32' })) },
    ],
  };
  return { text: JSON.stringify(json), shard: float32LittleEndian(weights.map((w) => w.values)) };
}

const readHandWritten = (topology: object, weights: Weight[]) => {
  const { text, shard } = handWritten(topology, weights);
  return readTfjs(text, () => shard, FILE);
};

/** A Dense of width n whose kernel is the identity: the model's output is its activation of the input. */
const identityDense = (name: string, n: number, extra: object = {}) => ({
  layer: { class_name: 'Dense', config: { name, units: n, use_bias: true, ...extra } },
  weights: [
    {
      name: `${name}/kernel`,
      shape: [n, n],
      values: Float32Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)),
    },
    { name: `${name}/bias`, shape: [n], values: new Float32Array(n) },
  ],
});

const sequential = (n: number, layers: object[]) => ({
  class_name: 'Sequential',
  config: {
    name: 's',
    layers: [{ class_name: 'InputLayer', config: { name: 'x', batch_input_shape: [null, n] } }, ...layers],
  },
});

async function outputsOf(
  graph: Graph,
  x: { rows: number; cols: number; data: Float32Array },
): Promise<Float32Array> {
  return (await forward(graph, x, tsGemm)).data;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

describe('readTfjs: layers as tfjs-layers saves them', () => {
  it('a functional model of ThresholdedReLU, BatchNormalization and LayerNormalization without center/scale, noise layers, Average and Multiply runs as tfjs-layers predicts', async () => {
    const input = tfl.input({ shape: [6] });
    const d1 = tfl.layers.dense({ units: 8 }).apply(input) as tfl.SymbolicTensor;
    const t = tfl.layers.thresholdedReLU({ theta: 0.3 }).apply(d1) as tfl.SymbolicTensor;
    const d2 = tfl.layers.dense({ units: 8, useBias: false }).apply(t) as tfl.SymbolicTensor;
    const bn = tfl.layers.batchNormalization({ center: false, scale: false }).apply(d2) as tfl.SymbolicTensor;
    const noisy = tfl.layers.gaussianNoise({ stddev: 0.1 }).apply(bn) as tfl.SymbolicTensor;
    const dropped = tfl.layers
      .alphaDropout({ rate: 0.2 })
      .apply(
        tfl.layers.gaussianDropout({ rate: 0.2 }).apply(noisy) as tfl.SymbolicTensor,
      ) as tfl.SymbolicTensor;
    const ln = tfl.layers.layerNormalization({ center: false }).apply(dropped) as tfl.SymbolicTensor;
    const branch = tfl.layers.dense({ units: 8, activation: 'tanh' }).apply(t) as tfl.SymbolicTensor;
    const avg = tfl.layers.average().apply([ln, branch]) as tfl.SymbolicTensor;
    const mul = tfl.layers.multiply().apply([avg, branch]) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 4, activation: 'softmax' }).apply(mul) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: out });
    randomizeWeights(model);
    const x = batch(16, 6);
    const expected = predict(model, x);
    const { graph, template } = await savedAndRead(model);
    model.dispose();
    assert.equal(graph.layers.length, 4);
    assert.deepEqual(
      graph.layers.map((l) => l.hasBias),
      [true, false, true, true],
    );
    assertClose(await outputsOf(graph, x), expected, 'graph');
    const again = await loadWritten(writeTfjs(graph, template));
    assertClose(predict(again, x), expected, 'written');
    again.dispose();
  });
});

describe('readTfjs: what tfjs-layers cannot save, against the formulas', () => {
  const x = batch(8, 3);
  const keras3HardSigmoid = (a: number) => Math.min(1, Math.max(0, a / 6 + 0.5));
  const cases: [string, object, (v: number[]) => number[], string?][] = [
    ['exponential', { activation: 'exponential' }, (v) => v.map(Math.exp)],
    ['silu', { activation: 'silu' }, (v) => v.map((a) => a * sigmoid(a))],
    ['gelu (erf)', { activation: 'gelu' }, (v) => v.map((a) => 0.5 * a * (1 + erf(a / Math.SQRT2)))],
    [
      'gelu_new (tanh)',
      { activation: 'gelu_new' },
      (v) => v.map((a) => 0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (a + 0.044715 * a ** 3)))),
    ],
    [
      'hardSigmoid (TF.js spelling)',
      { activation: 'hardSigmoid' },
      (v) => v.map((a) => Math.min(1, Math.max(0, 0.2 * a + 0.5))),
    ],
    [
      'log_softmax',
      { activation: 'log_softmax' },
      (v) => {
        const m = Math.log(v.reduce((s, a) => s + Math.exp(a), 0));
        return v.map((a) => a - m);
      },
    ],
    [
      'Keras 3 leaky_relu function',
      { activation: { class_name: 'function', config: 'leaky_relu' } },
      (v) => v.map((a) => (a > 0 ? a : 0.2 * a)),
    ],
    // Keras 3 redefined hard_sigmoid; the converter's wrapper says which Keras saved the model
    ['Keras 3 hard_sigmoid', { activation: 'hard_sigmoid' }, (v) => v.map(keras3HardSigmoid), '3.3.3'],
    [
      'Keras 3 hard_silu',
      { activation: 'hard_silu' },
      (v) => v.map((a) => a * keras3HardSigmoid(a)),
      '3.3.3',
    ],
  ];
  for (const [what, options, formula, kerasVersion] of cases) {
    it(`Dense(activation: ${what})`, async () => {
      const dense = identityDense('d', 3, options);
      const model = sequential(3, [dense.layer]);
      const topology =
        kerasVersion === undefined
          ? model
          : { keras_version: kerasVersion, backend: 'tensorflow', model_config: model };
      const { graph } = readHandWritten(topology, dense.weights);
      const expected: number[] = [];
      for (let r = 0; r < x.rows; r++)
        expected.push(...formula(Array.from(x.data.subarray(r * 3, r * 3 + 3))));
      assertClose(await outputsOf(graph, x), expected, what);
    });
  }

  const reluCases: [string, object, (a: number) => number][] = [
    ['negative_slope', { negative_slope: 0.1 }, (a) => (a > 0 ? a : 0.1 * a)],
    ['threshold', { threshold: 0.25 }, (a) => (a > 0.25 ? a : 0)],
    ['max_value (TF.js maxValue)', { maxValue: 0.5 }, (a) => Math.min(0.5, Math.max(0, a))],
  ];
  for (const [what, config, formula] of reluCases) {
    it(`ReLU with ${what}`, async () => {
      const dense = identityDense('d', 3);
      const { graph } = readHandWritten(
        sequential(3, [dense.layer, { class_name: 'ReLU', config: { name: 'r', ...config } }]),
        dense.weights,
      );
      assertClose(await outputsOf(graph, x), Array.from(x.data, formula), what);
    });
  }

  it('a Keras 3 functional model (inbound_nodes with keras_history) with Subtract and Concatenate', async () => {
    const ref = (name: string) => ({
      class_name: '__keras_tensor__',
      config: { shape: [null, 3], keras_history: [name, 0, 0] },
    });
    const a = identityDense('a', 3);
    const topology = {
      class_name: 'Functional',
      config: {
        name: 'f',
        layers: [
          {
            class_name: 'InputLayer',
            name: 'x',
            config: { name: 'x', batch_shape: [null, 3] },
            inbound_nodes: [],
          },
          { ...a.layer, name: 'a', inbound_nodes: [{ args: [ref('x')], kwargs: {} }] },
          {
            class_name: 'Activation',
            name: 'e',
            config: { name: 'e', activation: 'exponential' },
            inbound_nodes: [{ args: [ref('a')], kwargs: {} }],
          },
          {
            class_name: 'Subtract',
            name: 's',
            config: { name: 's' },
            inbound_nodes: [{ args: [[ref('e'), ref('a')]], kwargs: {} }],
          },
          {
            class_name: 'Concatenate',
            name: 'c',
            config: { name: 'c', axis: -1 },
            inbound_nodes: [{ args: [[ref('s'), ref('x')]], kwargs: {} }],
          },
        ],
        input_layers: [['x', 0, 0]],
        output_layers: ['c', 0, 0],
      },
    };
    // Keras 3 names a layer's weights <layer>/vars/<i>
    const weights = a.weights.map((w, i) => ({ ...w, name: `a/vars/${i}` }));
    const { graph } = readHandWritten(topology, weights);
    const expected: number[] = [];
    for (let r = 0; r < x.rows; r++) {
      const v = Array.from(x.data.subarray(r * 3, r * 3 + 3));
      expected.push(...v.map((q) => Math.exp(q) - q), ...v);
    }
    assertClose(await outputsOf(graph, x), expected, 'functional');
  });
});

describe('readTfjs: clear refusals', () => {
  const dense = identityDense('d', 4);
  const refuses = (layers: object[], inputShape: number[], text: string) =>
    assert.throws(
      () =>
        readHandWritten(
          {
            class_name: 'Sequential',
            config: {
              layers: [
                { class_name: 'InputLayer', config: { name: 'x', batch_input_shape: [null, ...inputShape] } },
                ...layers,
              ],
            },
          },
          dense.weights,
        ),
      failsWith('unsupported', FILE, text),
    );

  it('an unknown layer class names the layer, the supported classes and what to do', () => {
    refuses(
      [{ class_name: 'Conv2D', config: { name: 'conv' } }],
      [4],
      "layer 'conv'.*'Conv2D' is not supported; ecprune reads .*Dense.*BatchNormalization.*Rebuild",
    );
  });
  it('Flatten with channels_first on an image', () => {
    refuses(
      [{ class_name: 'Flatten', config: { name: 'f', data_format: 'channels_first' } }],
      [2, 2, 1],
      "layer 'f'.*channels_first",
    );
  });
  it('Dense on a rank-2 input without a Flatten', () => {
    refuses([dense.layer], [2, 4], "layer 'd'.*needs a Flatten");
  });
  it('BatchNormalization on an image or over another axis', () => {
    refuses(
      [{ class_name: 'BatchNormalization', config: { name: 'bn', axis: -1 } }],
      [2, 4],
      "layer 'bn'.*BatchNormalization over axis",
    );
    refuses(
      [dense.layer, { class_name: 'BatchNormalization', config: { name: 'bn', axis: 0 } }],
      [4],
      "layer 'bn'.*BatchNormalization over axis 0",
    );
  });
  it('ReLU combining max_value with a slope', () => {
    refuses(
      [dense.layer, { class_name: 'ReLU', config: { name: 'r', max_value: 6, negative_slope: 0.1 } }],
      [4],
      "layer 'r'.*more than one",
    );
  });
  it('a NaN in a Dense kernel, naming the layer', () => {
    const values = Float32Array.from(dense.weights[0].values);
    values[5] = Number.NaN;
    assert.throws(
      () =>
        readHandWritten(sequential(4, [dense.layer]), [{ ...dense.weights[0], values }, dense.weights[1]]),
      failsWith('input', FILE, "layer 'd'.*weight has 1 non-finite values \\(first at flat index"),
    );
  });
  it('a shared layer (called twice)', () => {
    assert.throws(
      () =>
        readHandWritten(
          {
            class_name: 'Model',
            config: {
              layers: [
                {
                  class_name: 'InputLayer',
                  name: 'x',
                  config: { name: 'x', batch_input_shape: [null, 4] },
                  inbound_nodes: [],
                },
                { ...dense.layer, name: 'd', inbound_nodes: [[['x', 0, 0, {}]], [['x', 0, 0, {}]]] },
              ],
              input_layers: [['x', 0, 0]],
              output_layers: [['d', 0, 0]],
            },
          },
          dense.weights,
        ),
      failsWith('unsupported', FILE, "layer 'd'.*shared layer"),
    );
  });
});

/**
 * Ops the producer zoo (test/io/zoo-tfjs-graph.test.ts) does not reach: the input shifted and scaled
 * per feature (as a model normalising its own input does), a Reshape to [2, 4] and a
 * LayerNormalization of it, ThresholdedRelu, Flatten, a cube, a constant minus x, a division by a
 * constant, a Clip with only a maximum, a PRelu with one slope, Concat of two Dense outputs, a
 * square (a merge reading one tensor twice), Neg, and Sub between tensors.
 */
const WRITABLE: GraphSpec = {
  input: [6],
  layers: [
    [8, 6],
    [5, 8],
    [3, 8],
    [3, 8],
  ],
  nodes: [
    ['Sub', ['x', 'mu'], ['centred']],
    ['Div', ['centred', 'sd'], ['normed']],
    ['Dense', ['normed'], ['z0'], { layer: 0 }],
    ['Reshape', ['z0', 'target'], ['r']],
    ['LayerNormalization', ['r', 'ln_scale', 'ln_bias'], ['n'], { axis: -1, epsilon: 1e-3 }],
    ['ThresholdedRelu', ['n'], ['t'], { alpha: 0.1 }],
    ['Flatten', ['t'], ['f'], { axis: 1 }],
    ['Pow', ['f', 'three'], ['p']],
    ['Sub', ['half', 'p'], ['s']],
    ['Div', ['s', 'four'], ['d']],
    ['Clip', ['d', '', 'max'], ['c']],
    ['PRelu', ['c', 'slope'], ['pr']],
    ['Dense', ['pr'], ['z1'], { layer: 1 }],
    ['Dense', ['pr'], ['z2'], { layer: 2 }],
    ['Concat', ['z1', 'z2'], ['cat'], { axis: -1 }],
    ['Mul', ['cat', 'cat'], ['sq']],
    ['Neg', ['cat'], ['minus']],
    ['Sub', ['sq', 'minus'], ['diff']],
    ['Dense', ['diff'], ['y'], { layer: 3 }],
  ],
  constants: {
    mu: constant([6], [0.1, -0.2, 0.3, 0, 0.5, -0.4]),
    sd: constant([6], [1.5, 0.5, 2, 1, 0.8, 1.2]),
    target: constant([3], [0, 2, 4]),
    ln_scale: constant([4], [1, 1.2, 0.8, 1.1]),
    ln_bias: constant([4], [0, 0.1, -0.1, 0.2]),
    three: constant([], [3]),
    half: constant([], [0.5]),
    four: constant([], [4]),
    max: constant([], [0.05]),
    slope: constant([1], [0.25]),
  },
  output: 'y',
};

describe('writeTfjs and writeTfjsGraph', () => {
  it('writes a chain graph as a functional model that tfjs-layers runs as the graph does', async () => {
    const graph = graphFromMlp(randomMlp([5, 7, 6, 3], { kind: 'leaky_relu', alpha: 0.1 }, 3));
    const x = batch(10, 5);
    const model = await loadWritten(await writeTfjsGraph(graph));
    assertClose(predict(model, x), await outputsOf(graph, x), 'fresh');
    model.dispose();
  });

  it('writes a graph of the other ops Keras layers compute; tfjs-layers runs it as the graph does', async () => {
    const graph = buildGraph(WRITABLE);
    const x = batch(10, 6);
    const written = await writeTfjsGraph(graph);
    const model = await loadWritten(written);
    assertClose(predict(model, x), await outputsOf(graph, x), 'graph');
    model.dispose();
    // ecprune reads what it wrote as the same function
    const back = readTfjs(written.modelJson, (p) => written.shards.get(p)!);
    assertClose(await outputsOf(back.graph, x), await outputsOf(graph, x), 'read back');
  });

  it("LayerNorm's decomposed form, with and without its affine part, is one LayerNormalization layer", async () => {
    const x = batch(10, 5);
    for (const affine of [true, false]) {
      const graph = buildGraph({
        input: [5],
        layers: [
          [6, 5],
          [3, 6],
        ],
        nodes: [
          ['Dense', ['x'], ['z0'], { layer: 0 }],
          ...DECOMPOSED_LAYER_NORM.slice(0, affine ? 9 : 7),
          ['Dense', [affine ? 'a0' : 'normed'], ['y'], { layer: 1 }],
        ],
        constants: {
          two: constant([], [2]),
          eps: constant([], [1e-5]),
          scale: constant([6], [1, 1.2, 0.8, 1.1, 0.9, 1]),
          shift: constant([6], [0, 0.1, -0.1, 0.2, 0, 0.05]),
        },
        output: 'y',
      });
      const written = await writeTfjsGraph(graph);
      const classes = JSON.parse(written.modelJson).modelTopology.config.layers.map(
        (l: { class_name: string }) => l.class_name,
      );
      assert.deepEqual(classes, ['InputLayer', 'Dense', 'LayerNormalization', 'Dense'], `affine ${affine}`);
      const model = await loadWritten(written);
      assertClose(predict(model, x), await outputsOf(graph, x), `affine ${affine}`);
      model.dispose();
    }
  });

  it('refuses an op no tfjs-layers layer computes, naming the node and the op', async () => {
    const refused = (nodes: GraphSpec['nodes'], constants: GraphSpec['constants']) =>
      writeTfjsGraph(
        buildGraph({
          input: [4],
          layers: [[4, 4]],
          nodes: [['Dense', ['x'], ['z'], { layer: 0 }], ...nodes],
          constants,
          output: 'y',
        }),
      );
    await assert.rejects(
      refused([['Sqrt', ['z'], ['y']]], {}),
      failsWith('unsupported', undefined, "cannot hold node 'n1' \\(op Sqrt: .*\\): write \\.onnx$"),
    );
    await assert.rejects(
      refused([['Div', ['one', 'z'], ['y']]], { one: constant([], [1]) }),
      failsWith('unsupported', undefined, "node 'n1' \\(op Div: "),
    );
    await assert.rejects(
      refused(
        [
          ['Reshape', ['z', 'target'], ['r']],
          ['Mul', ['r', 'w'], ['y']],
        ],
        { target: constant([3], [0, 2, 2]), w: constant([2, 2], [1, 2, 3, 4]) },
      ),
      failsWith('unsupported', undefined, "node 'n2' \\(op Mul: .*per feature only on a flat input"),
    );
  });

  it("folds a bias-free Dense's new bias into the moving mean of the BatchNormalization after it", () => {
    const folder = new URL('../fixtures/zoo/tfjs_batchnorm_swish/', import.meta.url).pathname;
    const { graph, template } = readTfjs(
      readFileSync(`${folder}model.json`, 'utf8'),
      (p) => new Uint8Array(readFileSync(folder + p)),
    );
    const mean = 'batch_normalization_BatchNormalization1/moving_mean';
    assert.equal(template.layers[0].foldInto, mean);
    const bias = Float32Array.from({ length: 16 }, (_, i) => 0.1 * i - 0.5);
    const changed = { ...graph, layers: graph.layers.map((l, i) => (i === 0 ? { ...l, bias } : l)) };
    const written = writeTfjs(changed, template);
    const back = readTfjs(written.modelJson, (p) => written.shards.get(p)!);
    assert.equal(back.graph.layers[0].hasBias, false);
    const before = graph.constants.get(mean)!.data;
    const after = back.graph.constants.get(mean)!.data;
    for (let i = 0; i < 16; i++) assert.ok(Math.abs(after[i] - (before[i] - bias[i])) < 1e-6, `mean[${i}]`);
  });
});
