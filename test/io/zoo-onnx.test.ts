import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import type { Graph } from '../../src/graph/graph.js';
import { forward } from '../../src/graph/run.js';
import { type OnnxModel, readOnnx, writeOnnx } from '../../src/io/onnx.js';
import { matrix } from '../../src/model/matrix.js';
import { modified } from '../helpers/modified-graph.js';
import {
  assertClose,
  calibration,
  expectedOutputs,
  type Fixture,
  layerNameInFile,
  type OnnxFcLayer,
  onnxFixtures,
  ZOO,
} from '../helpers/zoo.js';

// readOnnx and writeOnnx on every ONNX file of the producer zoo (torch 1.13 exports, some edited
// with onnx.helper: test/fixtures/zoo/make_zoo_torch.py), checked against the producer's outputs
// and against onnxruntime-node running the files writeOnnx writes.
const { onnx } = onnxProto;
const graphOf = (bytes: Uint8Array) => onnx.ModelProto.decode(bytes).graph as onnxProto.onnx.GraphProto;

/** Runs ONNX bytes in onnxruntime-node on one input; returns the first output's values and dims. */
async function runOrt(
  bytes: Uint8Array,
  data: Float32Array | Float64Array,
  dims: readonly number[],
): Promise<{ data: Float32Array | Float64Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const type = data instanceof Float64Array ? 'float64' : 'float32';
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor(type, data, dims) });
    const out = result[session.outputNames[0]];
    return { data: out.data as Float32Array | Float64Array, dims: out.dims };
  } finally {
    await session.release();
  }
}

interface Loaded {
  readonly fixture: Fixture;
  readonly bytes: Uint8Array;
  readonly model: OnnxModel;
  readonly calib: { data: Float32Array | Float64Array; shape: number[] };
}

function load(fixture: Fixture): Loaded {
  const bytes = new Uint8Array(readFileSync(path.join(ZOO, fixture.file)));
  return { fixture, bytes, model: readOnnx(bytes, fixture.file), calib: calibration(fixture) };
}

/** The graph's forward pass on the calibration batch, through the frozen prefix in onnxruntime if there is one. */
async function graphOutputs({ model, calib }: Loaded, graph: Graph = model.graph): Promise<Float32Array> {
  const rows = calib.shape[0];
  const features = model.prefix
    ? Float32Array.from((await runOrt(model.prefix, calib.data, calib.shape)).data)
    : Float32Array.from(calib.data);
  const y = await forward(graph, matrix(rows, features.length / rows, features), tsGemm);
  return y.data;
}

const fixtures = onnxFixtures.map(load);

describe('readOnnx on the producer zoo', () => {
  for (const loaded of fixtures) {
    const { fixture, model } = loaded;
    it(`${fixture.name}: the graph's forward pass equals the producer's outputs`, async () => {
      const actual = await graphOutputs(loaded);
      assertClose(actual, expectedOutputs(fixture, loaded.calib.shape[0]), fixture);
    });

    it(`${fixture.name}: the fully-connected layers are the manifest's, named as in the file`, () => {
      const expected = fixture.fcLayers as OnnxFcLayer[];
      assert.deepEqual(
        model.template.layers.map((l) => ({
          node: l.nodeName,
          weight: l.weightName,
          bias: l.bias?.name ?? null,
        })),
        expected.map((l) => ({ node: l.node, weight: l.weight, bias: l.bias })),
      );
      assert.deepEqual(
        model.graph.layers.map((l) => [l.weight.rows, l.weight.cols, l.hasBias]),
        expected.map((l) => [l.nOut, l.nIn, l.bias !== null]),
      );
      for (const [l, layer] of model.graph.layers.entries()) {
        assert.equal(layer.name, layerNameInFile(fixture.name, expected[l]), `layer ${l}: its name`);
      }
      assert.equal(
        model.prefix !== undefined,
        fixture.prefix.length > 0,
        'a frozen prefix exactly when the manifest has one',
      );
      // the prefix is every ancestor of the first layer's input: the manifest's frozen ops and the flatten after them
      assert.deepEqual(
        fixture.prefix.filter((op) => !model.template.prefixOps.includes(op)),
        [],
        'the frozen ops are in the prefix',
      );
    });
  }
});

/** The encoded NodeProtos and TensorProtos (dense and sparse) of a model, by name. */
function parts(bytes: Uint8Array): Map<string, string> {
  const g = graphOf(bytes);
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  return new Map([
    ...(g.node ?? []).map((n, i): [string, string] => [
      `node ${n.name || i}`,
      hex(onnx.NodeProto.encode(n).finish()),
    ]),
    ...(g.initializer ?? []).map((t): [string, string] => [
      `tensor ${t.name}`,
      hex(onnx.TensorProto.encode(t).finish()),
    ]),
  ]);
}

describe('writeOnnx on the producer zoo', () => {
  for (const loaded of fixtures) {
    const { fixture, model, bytes, calib } = loaded;
    it(`${fixture.name}: written back unchanged, onnxruntime gives the producer's outputs`, async () => {
      const written = writeOnnx(model.graph, model.template, {}, {});
      const { data } = await runOrt(written, calib.data, calib.shape);
      assertClose(data, expectedOutputs(fixture, calib.shape[0]), fixture);
    });

    it(`${fixture.name}: modified layers: onnxruntime runs the written file like the graph, the rest byte-identical`, async () => {
      const graph = modified(model.graph);
      const written = writeOnnx(graph, model.template, { ecprune: 'test' }, {});
      const { data } = await runOrt(written, calib.data, calib.shape);
      const expected = await graphOutputs(loaded, graph);
      const fake = { ...fixture, dtype: fixture.dtype === 'float16' ? 'float16' : 'float32' } as Fixture;
      assertClose(Float32Array.from(data), expected, fake);
      // every node and initializer that is not a layer's is as it was
      const layerTensors = new Set(
        model.template.layers.flatMap((l) => [`tensor ${l.weightName}`, `tensor ${l.bias?.name}`]),
      );
      const before = parts(bytes);
      const after = parts(written);
      for (const [key, value] of before) {
        if (layerTensors.has(key)) continue;
        const folded = fixture.name === 'batchnorm_nobias' && key.startsWith('tensor ');
        const rewired = fixture.name === 'linear_nobias_last' && key.startsWith('node ');
        if (folded || rewired) continue;
        assert.equal(after.get(key), value, `${key} unchanged`);
      }
      // the layers keep their element type (float16, float64) and their names
      const dtypes = (b: Uint8Array) =>
        model.template.layers.map(
          (l) => graphOf(b).initializer.find((t) => t.name === l.weightName)?.dataType,
        );
      assert.deepEqual(dtypes(written), dtypes(bytes));
      const meta = onnx.ModelProto.decode(written).metadataProps ?? [];
      assert.ok(
        meta.some((p) => p.key === 'ecprune' && p.value === 'test'),
        'metadata merged',
      );
    });
  }
});

describe('writeOnnx: layers of new shapes', () => {
  it('a chain with a hidden neuron removed is written with the new widths and runs in onnxruntime', async () => {
    for (const name of ['mlp_opset13', 'matmul_add', 'view_flatten']) {
      const loaded = fixtures.find((f) => f.fixture.name === name) as Loaded;
      const { graph, template } = loaded.model;
      const [first, second] = graph.layers;
      const keep = (n: number) => Array.from({ length: n - 1 }, (_, i) => i + 1);
      const rows = keep(first.weight.rows);
      const narrower: Graph = {
        ...graph,
        layers: [
          {
            ...first,
            weight: matrix(
              rows.length,
              first.weight.cols,
              Float32Array.from(
                rows.flatMap((r) => [
                  ...first.weight.data.subarray(r * first.weight.cols, (r + 1) * first.weight.cols),
                ]),
              ),
            ),
            bias: Float32Array.from(rows, (r) => first.bias[r]),
          },
          {
            ...second,
            weight: matrix(
              second.weight.rows,
              rows.length,
              Float32Array.from(
                { length: second.weight.rows * rows.length },
                (_, k) =>
                  second.weight.data[
                    Math.floor(k / rows.length) * second.weight.cols + rows[k % rows.length]
                  ],
              ),
            ),
          },
          ...graph.layers.slice(2),
        ],
      };
      const written = writeOnnx(narrower, template, {}, {});
      const { data } = await runOrt(written, loaded.calib.data, loaded.calib.shape);
      assertClose(data, await graphOutputs(loaded, narrower), loaded.fixture);
    }
  });
});

describe('writeOnnx: compensation of bias-free layers', () => {
  const named = (name: string) => fixtures.find((f) => f.fixture.name === name) as Loaded;

  it('a bias-free Linear before BatchNorm: the shift goes into the running mean, no node or tensor added', async () => {
    const loaded = named('batchnorm_nobias');
    const { model, bytes } = loaded;
    assert.equal(model.graph.layers[0].hasBias, false);
    const graph = modified(model.graph);
    const written = writeOnnx(graph, model.template, {}, {});
    const before = graphOf(bytes);
    const after = graphOf(written);
    assert.deepEqual(
      after.node.map((n) => n.name),
      before.node.map((n) => n.name),
      'the same nodes',
    );
    assert.deepEqual(
      after.initializer.map((t) => t.name),
      before.initializer.map((t) => t.name),
      'the same initializers',
    );
    const bn = before.node.find((n) => n.opType === 'BatchNormalization') as onnxProto.onnx.NodeProto;
    assert.equal(bn.input[0], model.template.layers[0].output, 'the BatchNorm reads the bias-free layer');
    const mean = (g: typeof before) =>
      new Float32Array(
        Uint8Array.from(g.initializer.find((t) => t.name === bn.input[3])?.rawData ?? []).buffer,
      );
    const shift = graph.layers[0].bias;
    mean(after).forEach((m, i) => {
      assert.equal(m, Math.fround(mean(before)[i] - shift[i]), `mean[${i}] - bias[${i}]`);
    });
    const { data } = await runOrt(written, loaded.calib.data, loaded.calib.shape);
    assertClose(data, await graphOutputs(loaded, graph), loaded.fixture);
  });

  it('a bias-free last Linear gains a bias initializer and an Add', async () => {
    const loaded = named('linear_nobias_last');
    const { model, bytes } = loaded;
    const last = model.template.layers.at(-1)!;
    assert.equal(model.graph.layers.at(-1)!.hasBias, false);
    const graph = modified(model.graph);
    const written = writeOnnx(graph, model.template, {}, {});
    const before = graphOf(bytes);
    const after = graphOf(written);
    const added = after.initializer.filter((t) => !before.initializer.some((b) => b.name === t.name));
    assert.deepEqual(
      added.map((t) => [t.name, (t.dims ?? []).map(Number)]),
      [[`${model.graph.layers.at(-1)!.name}.bias`, [graph.layers.at(-1)!.bias.length]]],
    );
    const add = after.node.find((n) => n.opType === 'Add' && (n.input ?? []).includes(added[0].name ?? ''));
    assert.equal(add?.output?.[0], last.output, 'the Add writes what the MatMul wrote');
    assert.equal(after.node.length, before.node.length + 1);
    const { data } = await runOrt(written, loaded.calib.data, loaded.calib.shape);
    assertClose(data, await graphOutputs(loaded, graph), loaded.fixture);
  });

  it('a bias-free layer whose bias stays zero is written without one', () => {
    const { model, bytes } = named('linear_nobias_last');
    const written = writeOnnx(model.graph, model.template, {}, {});
    const before = graphOf(bytes);
    const after = graphOf(written);
    assert.deepEqual(
      after.initializer.map((t) => t.name),
      before.initializer.map((t) => t.name),
    );
  });
});

describe('writeOnnx without a template on the producer zoo', () => {
  for (const loaded of fixtures.filter((f) => f.model.prefix === undefined)) {
    const { fixture, model, calib } = loaded;
    it(`${fixture.name}: the fresh model runs in onnxruntime like the graph`, async () => {
      const written = writeOnnx(model.graph, undefined, {}, {});
      const rows = calib.shape[0];
      const { data } = await runOrt(written, Float32Array.from(calib.data), [
        rows,
        ...model.graph.input.shape,
      ]);
      const fake = { ...fixture, dtype: fixture.dtype === 'float16' ? 'float16' : 'float32' } as Fixture;
      assertClose(Float32Array.from(data), await graphOutputs(loaded), fake);
    });
  }
});
