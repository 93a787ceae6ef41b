import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { EcpruneError } from '../../src/errors.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import type { Graph } from '../../src/graph/graph.js';
import { chainOf } from '../../src/graph/mlp-graph.js';
import { forward } from '../../src/graph/run.js';
import { readNpy } from '../../src/io/npy.js';
import { layerName } from '../../src/io/onnx/read.js';
import { describeOnnx, type OnnxModel, type OnnxTemplate, readOnnx, writeOnnx } from '../../src/io/onnx.js';
import { type Matrix, matrix } from '../../src/model/matrix.js';
import { modified as modify } from '../helpers/modified-graph.js';

const { onnx } = onnxProto;

// Models exported by PyTorch 1.13 (some then edited with onnx 1.12): test/fixtures/onnx/make_onnx_fixtures.py
const fixtureBytes = (name: string) =>
  new Uint8Array(readFileSync(new URL(`../fixtures/onnx/${name}`, import.meta.url)));

interface Fixture {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly model: OnnxModel;
  /** the reference batch in the shape the ONNX input takes, and as rows for our forward pass */
  readonly inputShape: number[];
  readonly x: Matrix;
  /** PyTorch's output for x */
  readonly y: Matrix;
}

function loadFixture(name: string): Fixture {
  const bytes = fixtureBytes(`${name}.onnx`);
  const input = readNpy(fixtureBytes(`${name}.input.npy`));
  const output = readNpy(fixtureBytes(`${name}.output.npy`));
  const rows = (a: typeof input) => matrix(a.shape[0], a.data.length / a.shape[0], Float32Array.from(a.data));
  return {
    name,
    bytes,
    model: readOnnx(bytes, `${name}.onnx`),
    inputShape: input.shape,
    x: rows(input),
    y: rows(output),
  };
}

/** Models onnxruntime can run; mlp_mixed_dtypes mixes element types on purpose, so only PyTorch checks it. */
const RUNNABLE = [
  'mlp_relu_gemm',
  'mlp_activations',
  'mlp_opset11_named',
  'mlp_matmul_add',
  'mlp_opset9',
  'mlp_edited',
  'mlp_sparse',
  'mlp_gelu_opset20',
];
const fixtures = [...RUNNABLE, 'mlp_mixed_dtypes'].map(loadFixture);
const runnable = fixtures.filter((f) => RUNNABLE.includes(f.name));
const fixtureNamed = (name: string) => fixtures.find((f) => f.name === name) as Fixture;

/** |actual - expected| <= tol * (1 + |expected|) element by element. */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    assert.ok(error <= tol * (1 + Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Runs ONNX bytes in onnxruntime-node on one input tensor; returns the (single) output. */
async function runOrt(bytes: Uint8Array, input: Float32Array, dims: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, dims) });
    return result[session.outputNames[0]].data as Float32Array;
  } finally {
    await session.release();
  }
}

const decode = (bytes: Uint8Array) => onnx.ModelProto.decode(bytes);
const encodeModel = (model: onnxProto.onnx.ModelProto) => onnx.ModelProto.encode(model).finish();
const bits = (values: Float32Array | Float64Array) =>
  new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** The op types of a graph's nodes, without the Identity and Constant nodes ecprune does not keep, sorted. */
function opTypes(bytes: Uint8Array): string[] {
  const ops = (decode(bytes).graph?.node ?? []).map((n) => n.opType ?? '');
  return ops.filter((op) => op !== 'Identity' && op !== 'Constant').sort();
}

/** The same layers bit for bit (float32 weights survive a float32 round trip exactly; alpha = 2 is exact too). */
function assertSameLayers(actual: Graph, expected: Graph, what: string): void {
  assert.equal(actual.layers.length, expected.layers.length, `${what}: layer count`);
  actual.layers.forEach((layer, l) => {
    const other = expected.layers[l];
    assert.deepEqual(
      [layer.name, layer.weight.rows, layer.weight.cols],
      [other.name, other.weight.rows, other.weight.cols],
      `${what}: layer ${l} name and shape`,
    );
    assert.deepEqual(bits(layer.weight.data), bits(other.weight.data), `${what}: layer ${l} weight bits`);
    assert.deepEqual(bits(layer.bias), bits(other.bias), `${what}: layer ${l} bias bits`);
  });
}

const withoutBytes = (t: OnnxTemplate) => ({ ...t, bytes: undefined, metadata: {}, irVersion: 0 });

/** The bytes of fixture `name` after `edit` changed its decoded ModelProto. */
function edited(
  name: string,
  edit: (graph: onnxProto.onnx.GraphProto, model: onnxProto.onnx.ModelProto) => void,
): Uint8Array {
  const model = decode(fixtureNamed(name).bytes);
  edit(model.graph as onnxProto.onnx.GraphProto, model);
  return onnx.ModelProto.encode(model).finish();
}
const node = (graph: onnxProto.onnx.GraphProto, name: string) =>
  graph.node.find((n) => n.name === name) as onnxProto.onnx.NodeProto;
const tensor = (graph: onnxProto.onnx.GraphProto, name: string) =>
  graph.initializer.find((t) => t.name === name) as onnxProto.onnx.TensorProto;

describe('readOnnx on PyTorch exports', () => {
  for (const f of fixtures) {
    it(`${f.name}: our forward pass matches PyTorch`, async () => {
      const y = await forward(f.model.graph, f.x, tsGemm);
      assertClose(y.data, f.y.data, f.name);
    });
  }

  for (const f of runnable) {
    it(`${f.name}: onnxruntime on the original file matches PyTorch and our forward pass`, async () => {
      const ortY = await runOrt(f.bytes, f.x.data, f.inputShape);
      assertClose(ortY, f.y.data, `${f.name} onnxruntime vs PyTorch`);
      assertClose(ortY, (await forward(f.model.graph, f.x, tsGemm)).data, `${f.name} onnxruntime vs ours`);
    });
  }

  it('reads the activations as graph nodes, with their parameters', () => {
    const ops = (name: string) =>
      fixtureNamed(name)
        .model.graph.nodes.filter((n) => n.op !== 'Dense')
        .map((n) => (typeof n.attrs.alpha === 'number' ? `${n.op}(${Math.fround(n.attrs.alpha)})` : n.op));
    // GELU before opset 20 is its Erf decomposition, differentiated as it stands
    assert.deepEqual(ops('mlp_activations'), [
      'Relu',
      `LeakyRelu(${Math.fround(0.2)})`,
      'Tanh',
      'Sigmoid',
      'Div',
      'Erf',
      'Add',
      'Mul',
      'Mul',
      'Softplus',
      'Elu(0.5)',
    ]);
    const chain = chainOf(fixtureNamed('mlp_relu_gemm').model.graph);
    assert.deepEqual(
      chain?.layers.map((l) => l.activation.kind),
      ['relu', 'relu', 'identity'],
      'a plain MLP still reads as a chain',
    );
  });

  it('keeps the structure in the template', () => {
    const named = fixtureNamed('mlp_opset11_named').model;
    assert.deepEqual(describeOnnx(named.template), {
      opset: 11,
      irVersion: 6,
      producer: 'pytorch 1.13.0',
      input: 'features [5, 4, 5]',
      output: 'logits [5, 3]',
      prefix: [],
      layers: [
        '/hidden/MatMul (MatMul): onnx::MatMul_9, no bias',
        '/out/Gemm (Gemm): out.weight, out.bias',
      ].map((l, i) => (i === 0 ? l.replace('onnx::MatMul_9', named.template.layers[0].weightName) : l)),
      head: [],
    });
    assert.deepEqual(named.graph.input, { name: 'features', shape: [4, 5] });
    assert.deepEqual(
      named.graph.nodes.map((n) => n.op),
      ['Reshape', 'Dense', 'Tanh', 'Dense'],
    );
    assert.equal(named.graph.layers[0].hasBias, false, 'Linear(bias=False) is a MatMul without Add');

    const relu = fixtureNamed('mlp_relu_gemm').model.template;
    assert.deepEqual(relu.input, { name: 'input', elemType: 1, dims: ['N', 1, 8, 8] });
    assert.deepEqual(relu.layers[0], {
      op: 'Gemm',
      nodeName: '/1/Gemm',
      weightName: '1.weight',
      weightDims: [32, 64],
      weightType: onnx.TensorProto.DataType.FLOAT,
      transB: true,
      alpha: 1,
      beta: 1,
      bias: { name: '1.bias', dims: [32], dataType: onnx.TensorProto.DataType.FLOAT },
      output: '/1/Gemm_output_0',
    });

    const matmul = fixtureNamed('mlp_matmul_add').model.template.layers;
    assert.deepEqual(
      matmul.map((l) => [l.op, l.addNodeName, l.bias?.name]),
      [
        ['MatMul', '/Add', 'b1'],
        ['MatMul', '/Add_1', 'b2'],
      ],
    );
    const edited = fixtureNamed('mlp_edited').model;
    assert.deepEqual(
      [edited.template.layers[0].transB, edited.template.layers[0].alpha, edited.template.layers[0].beta],
      [false, 2, 0.5],
    );
    // the Erf decomposition of GELU is differentiated as it stands
    assert.ok(['Div', 'Erf', 'Add', 'Mul'].every((op) => edited.graph.nodes.some((n) => n.op === op)));
  });

  it('reads a Gemm without C, and a Reshape shape from a value_ints Constant', async () => {
    const f = fixtureNamed('mlp_opset11_named');
    const bytes = edited('mlp_opset11_named', (g) => {
      node(g, '/out/Gemm').input.splice(2, 1);
      const constant = node(g, '/Constant');
      constant.attribute = [onnx.AttributeProto.create({ name: 'value_ints', ints: [-1, 20], type: 7 })];
    });
    const { graph, template } = readOnnx(bytes);
    assert.deepEqual([...(graph.constants.get('/Constant_output_0')?.data ?? [])], [-1, 20]);
    assert.equal(template.layers[1].bias, undefined);
    assert.deepEqual(graph.layers[1].bias, new Float32Array(3));
    // the bias, now nonzero, is written as a C input again
    const modified = modify(graph);
    const written = writeOnnx(modified, template, {});
    // the file still holds an unused 'out.bias' initializer: the new one gets a name of its own
    assert.equal(readOnnx(written).template.layers[1].bias?.name, 'out.bias_1');
    const ours = await forward(modified, f.x, tsGemm);
    assertClose(await runOrt(written, f.x.data, f.inputShape), ours.data, 'Gemm without C');
  });
});

describe('layer names', () => {
  it("a bias-free Linear (MatMul on 'onnx::MatMul_N') takes its module path, as its state_dict key would", () => {
    // node names as torch.onnx.export (torch 1.13, opset 17) writes them for
    // stem = Linear(bias=False); block.fc1 = Linear(bias=False); block.seq = Sequential(Linear(bias=False), ReLU())
    // whose state_dict keys are stem.weight, block.fc1.weight, block.seq.0.weight
    assert.equal(layerName('onnx::MatMul_11', '/stem/MatMul'), 'stem');
    assert.equal(layerName('onnx::MatMul_12', '/block/fc1/MatMul'), 'block.fc1');
    assert.equal(layerName('onnx::MatMul_13', '/block/seq/seq.0/MatMul'), 'block.seq.0');
    assert.equal(layerName('onnx::MatMul_18', '/0/MatMul'), '0', 'an nn.Sequential: 0.weight');
    assert.equal(layerName('fc1.weight', '/fc1/Gemm'), 'fc1');
    assert.equal(layerName('w1', '/MatMul'), 'w1', 'a named initializer: its name');
    assert.equal(layerName('onnx::MatMul_3', 'MatMul_0'), 'MatMul_0', 'no scope: the node');
  });
});

describe('writeOnnx', () => {
  for (const f of fixtures) {
    it(`${f.name}: write → read keeps weights bit for bit and the template`, () => {
      const written = writeOnnx(f.model.graph, f.model.template, {});
      const back = readOnnx(written);
      assertSameLayers(back.graph, f.model.graph, f.name);
      assert.deepEqual(withoutBytes(back.template), withoutBytes(f.model.template));
      assert.deepEqual(opTypes(written), opTypes(f.bytes));
    });
  }

  for (const f of runnable) {
    it(`${f.name}: modified weights → written file runs in onnxruntime like our forward pass`, async () => {
      const modified = modify(f.model.graph);
      const written = writeOnnx(modified, f.model.template, {
        ecprune_version: '0.1.0',
        method: 'test',
        sparsity: '0.5',
      });
      const ours = await forward(modified, f.x, tsGemm);
      assertClose(await runOrt(written, f.x.data, f.inputShape), ours.data, f.name);
      const back = readOnnx(written).graph;
      // a layer that gained a bias reads back with one
      assertSameLayers(
        { ...back, layers: back.layers.map((l) => ({ ...l, hasBias: true })) },
        modified,
        f.name,
      );
    });
  }

  it("writes the weights back in the file's form: Gemm transB layout, alpha and beta as they were", () => {
    const { graph, template } = fixtureNamed('mlp_edited').model; // layer 0: transB=0, alpha=2, beta=0.5
    const model = decode(writeOnnx(graph, template, {}));
    const g = model.graph as onnxProto.onnx.GraphProto;
    const before = decode(fixtureNamed('mlp_edited').bytes).graph as onnxProto.onnx.GraphProto;
    const gemm = (x: onnxProto.onnx.GraphProto) =>
      onnx.NodeProto.encode(x.node.find((n) => n.name === '/0/Gemm') as onnxProto.onnx.NodeProto).finish();
    assert.deepEqual(gemm(g), gemm(before), 'the Gemm node is as it was');
    const weight = g.initializer.find((t) => t.name === '0.weight') as onnxProto.onnx.TensorProto;
    assert.deepEqual(weight.dims.map(Number), [6, 5], 'stored n_in x n_out, as read');
    assert.equal(Number(model.opsetImport[0].version), 13);
    assertSameLayers(
      readOnnx(encodeModel(model)).graph,
      graph,
      'alpha and beta taken out and folded in again',
    );
  });

  it('merges metadata_props with the ones already in the file', () => {
    const { graph, template } = fixtureNamed('mlp_relu_gemm').model;
    const first = readOnnx(
      writeOnnx(graph, template, { ecprune_version: '0.1.0', method: 'ec', sparsity: '0.9' }),
    );
    assert.deepEqual(first.template.metadata, { ecprune_version: '0.1.0', method: 'ec', sparsity: '0.9' });
    const second = writeOnnx(graph, first.template, { sparsity: '0.95', calibration_samples: '512' });
    const props = decode(second).metadataProps.map((p) => [p.key, p.value]);
    assert.deepEqual(props, [
      ['ecprune_version', '0.1.0'],
      ['method', 'ec'],
      ['sparsity', '0.95'],
      ['calibration_samples', '512'],
    ]);
  });

  it('adds a bias input where the original layer had none once the bias is nonzero', () => {
    const f = fixtureNamed('mlp_opset11_named');
    const written = writeOnnx(modify(f.model.graph), f.model.template, {});
    assert.deepEqual(opTypes(written), ['Add', 'Gemm', 'MatMul', 'Reshape', 'Tanh']);
    assert.equal(
      readOnnx(written).template.layers[0].bias?.name,
      'hidden.bias',
      'named as the state_dict names it',
    );
  });

  it('sparse: weights become sparse_initializers that read back identical and run in onnxruntime', async () => {
    for (const f of runnable) {
      const modified = modify(f.model.graph);
      const written = writeOnnx(modified, f.model.template, {}, { sparse: true });
      const graph = decode(written).graph as onnxProto.onnx.GraphProto;
      const weightNames = f.model.template.layers.map((l) => l.weightName).sort();
      assert.deepEqual(graph.sparseInitializer.map((s) => s.values?.name).sort(), weightNames, f.name);
      for (const s of graph.sparseInitializer) {
        assert.equal(s.values?.dataType, onnx.TensorProto.DataType.FLOAT);
        assert.deepEqual(
          s.indices?.dims?.map(Number),
          s.values?.dims?.map(Number),
          'indices are [NNZ] positions',
        );
      }
      const back = readOnnx(written).graph;
      assertSameLayers(
        { ...back, layers: back.layers.map((l) => ({ ...l, hasBias: true })) },
        modified,
        f.name,
      );
      assertClose(
        await runOrt(written, f.x.data, f.inputShape),
        (await forward(modified, f.x, tsGemm)).data,
        `${f.name} sparse`,
      );
    }
  });

  it('without a template writes a fresh graph that onnxruntime runs (every activation; opset 20 for Gelu)', async () => {
    const f = fixtureNamed('mlp_activations');
    const written = writeOnnx(f.model.graph, undefined, { method: 'ec' });
    const model = decode(written);
    assert.equal(Number(model.irVersion), 8);
    assert.deepEqual(
      model.opsetImport.map((o) => [o.domain, Number(o.version)]),
      [['', 13]],
    );
    const input = model.graph?.input?.[0];
    assert.equal(input?.name, f.model.graph.input.name);
    assert.deepEqual(
      input?.type?.tensorType?.shape?.dim?.map((d) => d.dimParam ?? Number(d.dimValue)),
      ['batch', ...f.model.graph.input.shape],
    );
    assert.equal(model.graph?.output?.[0].name, f.model.graph.output);
    const back = readOnnx(written);
    assertSameLayers(back.graph, f.model.graph, 'fresh graph');
    assert.ok(back.template.layers.every((l) => l.op === 'Gemm' && l.transB));
    assert.deepEqual(back.template.metadata, { method: 'ec' });
    assertClose(await runOrt(written, f.x.data, f.inputShape), f.y.data, 'fresh graph vs PyTorch');
    const gelu = fixtureNamed('mlp_gelu_opset20');
    const withGelu = writeOnnx(gelu.model.graph, undefined, {});
    assert.equal(Number(decode(withGelu).opsetImport[0].version), 20);
    assertClose(
      await runOrt(withGelu, gelu.x.data, gelu.inputShape),
      gelu.y.data,
      'fresh Gelu graph vs PyTorch',
    );
  });

  it('writes the Gelu op at opset 20', () => {
    const { graph, template } = fixtureNamed('mlp_gelu_opset20').model;
    assert.ok(opTypes(writeOnnx(graph, template, {})).includes('Gelu'));
  });
});

describe('readOnnx on malformed files', () => {
  /** An EcpruneError of `code` whose message matches every pattern. */
  const failsWith =
    (code: string, ...patterns: RegExp[]) =>
    (error: unknown) => {
      assert.ok(error instanceof EcpruneError, `expected EcpruneError, got ${error}`);
      assert.equal(error.code, code, error.message);
      for (const pattern of patterns) assert.match(error.message, pattern);
      return true;
    };

  it('truncated or corrupt bytes: always an EcpruneError, never another exception', () => {
    const bytes = fixtureNamed('mlp_relu_gemm').bytes;
    assert.throws(
      () => readOnnx(bytes.subarray(0, bytes.length >> 1), 'cut.onnx'),
      failsWith('input', /^cut\.onnx: not a valid ONNX file: /),
    );
    assert.throws(() => readOnnx(new Uint8Array(0)), failsWith('input', /not a valid ONNX file/));
    assert.throws(
      () => readOnnx(new TextEncoder().encode('definitely not protobuf')),
      failsWith('input', /not a valid ONNX file/),
    );
    for (let end = 0; end < bytes.length; end += 37) {
      assert.throws(
        () => readOnnx(bytes.subarray(0, end)),
        (error: unknown) => error instanceof EcpruneError && ['input', 'unsupported'].includes(error.code),
        `cut at ${end}`,
      );
    }
    for (let at = 0; at < bytes.length; at += 13) {
      const corrupt = bytes.slice();
      corrupt[at] ^= 0xff;
      try {
        readOnnx(corrupt); // a flipped weight byte still makes a readable file
      } catch (error) {
        assert.ok(error instanceof EcpruneError, `byte ${at} flipped: ${error}`);
      }
    }
  });

  const cases: [
    string,
    string,
    (g: onnxProto.onnx.GraphProto, m: onnxProto.onnx.ModelProto) => void,
    string,
    RegExp[],
  ][] = [
    [
      'a Conv node',
      'mlp_activations',
      (g) => Object.assign(node(g, '/1/Relu'), { opType: 'Conv', name: '/1/Conv' }),
      'unsupported',
      [
        /node '\/1\/Conv': op 'Conv' is not supported \(ops before the first fully-connected layer may be anything/,
        /listed by `ecprune inspect --help`/,
      ],
    ],
    [
      'a missing initializer',
      'mlp_relu_gemm',
      (g) => g.initializer.splice(g.initializer.indexOf(tensor(g, '3.weight')), 1),
      'input',
      [/node '\/3\/Gemm'/, /initializer '3.weight' is missing/],
    ],
    [
      'a duplicate initializer',
      'mlp_relu_gemm',
      (g) => g.initializer.push(tensor(g, '1.bias')),
      'input',
      [/two initializers named '1.bias'/],
    ],
    [
      'a dangling input',
      'mlp_relu_gemm',
      (g) =>
        g.node.push(
          onnx.NodeProto.create({
            opType: 'Add',
            name: 'stray',
            input: ['nowhere', '1.bias'],
            output: ['stray_out'],
          }),
        ),
      'input',
      [/node 'stray'/, /input 'nowhere' is not produced by any node/],
    ],
    [
      'a cycle',
      'mlp_relu_gemm',
      // the graph output is fed back into the graph input
      (g) =>
        g.node.push(
          onnx.NodeProto.create({ opType: 'Identity', name: 'loop', input: ['output'], output: ['input'] }),
        ),
      'input',
      [
        /node '\/0\/Flatten': it reads tensor 'input', which node 'loop' writes after it: the graph has a cycle/,
      ],
    ],
    [
      'dims larger than the data',
      'mlp_relu_gemm',
      (g) => Object.assign(tensor(g, '1.weight'), { dims: [1e6, 1e6] }),
      'input',
      [/node '\/1\/Gemm'/, /\(1000000000000 values\) but holds 2048 values/],
    ],
    [
      'a huge sparse tensor',
      'mlp_sparse',
      (g) => Object.assign(g.sparseInitializer[0], { dims: [2 ** 20, 2 ** 20] }),
      'limit',
      [/node '\/0\/Gemm'/],
    ],
    [
      'a sparse index out of range',
      'mlp_sparse',
      (g) => Object.assign(g.sparseInitializer[1], { dims: [2, 2] }),
      'input',
      [/node '\/2\/Gemm'/, /points outside/],
    ],
    [
      'Gemm with transA=1',
      'mlp_relu_gemm',
      (g) => node(g, '/1/Gemm').attribute.push(onnx.AttributeProto.create({ name: 'transA', i: 1, type: 2 })),
      'unsupported',
      [/node '\/1\/Gemm': op 'Gemm' with transA=1/],
    ],
    [
      'an opset before 9',
      'mlp_relu_gemm',
      (_g, m) => Object.assign(m.opsetImport[0], { version: 8 }),
      'unsupported',
      [/opset 8/],
    ],
    [
      'two graph inputs',
      'mlp_relu_gemm',
      (g) => g.input.push(onnx.ValueInfoProto.create({ name: 'second' })),
      'unsupported',
      [/one of each/],
    ],
  ];
  for (const [what, name, edit, code, patterns] of cases) {
    it(`${what}: EcpruneError '${code}' naming the place`, () => {
      assert.throws(
        () => readOnnx(edited(name, edit), 'bad.onnx'),
        failsWith(code, /^bad\.onnx: /, ...patterns),
      );
    });
  }
});

describe('readOnnx on graphs', () => {
  it('a weight that does not fit the previous layer: the forward pass names the layer', async () => {
    const f = fixtureNamed('mlp_relu_gemm');
    const bytes = edited('mlp_relu_gemm', (g) => {
      g.node.splice(g.node.indexOf(node(g, '/3/Gemm')), 2);
      node(g, '/5/Gemm').input[0] = '/2/Relu_output_0';
    });
    const { graph } = readOnnx(bytes, 'bad.onnx');
    await assert.rejects(
      forward(graph, f.x, tsGemm),
      (error: unknown) =>
        error instanceof EcpruneError &&
        /node '\/5\/Gemm'/.test(error.message) &&
        /takes 16 features/.test(error.message),
    );
  });

  it('a fork is a graph: the forward pass still matches PyTorch on the original output', async () => {
    const f = fixtureNamed('mlp_relu_gemm');
    const bytes = edited('mlp_relu_gemm', (g) =>
      g.node.push(
        onnx.NodeProto.create({
          opType: 'Relu',
          name: 'extra',
          input: ['/2/Relu_output_0'],
          output: ['extra_out'],
        }),
      ),
    );
    const y = await forward(readOnnx(bytes).graph, f.x, tsGemm);
    assertClose(y.data, f.y.data, 'fork');
  });

  it('an unsupported op after the first layer, and a prefix tensor used after the cut, are refused', () => {
    const conv = (g: onnxProto.onnx.GraphProto) => {
      // a Conv before the first Gemm becomes a frozen prefix; its input read again later is refused
      node(g, '/0/Flatten').opType = 'Conv';
      node(g, '/0/Flatten').attribute = [];
    };
    const cut = readOnnx(edited('mlp_relu_gemm', conv));
    assert.deepEqual(cut.template.prefixOps, ['Conv']);
    assert.ok(cut.prefix !== undefined);
    assert.throws(
      () =>
        readOnnx(
          edited('mlp_relu_gemm', (g) => {
            conv(g);
            g.node.push(
              onnx.NodeProto.create({ opType: 'Relu', name: 'late', input: ['input'], output: ['late_out'] }),
            );
          }),
          'bad.onnx',
        ),
      /bad\.onnx: node 'late': it reads tensor 'input' of the frozen prefix/,
    );
  });

  it('several graph outputs: the first is measured; a BatchNormalization in training mode is refused', () => {
    const bytes = edited('mlp_relu_gemm', (g) => {
      g.output.push(onnx.ValueInfoProto.create({ name: '/2/Relu_output_0' }));
    });
    const { graph, template } = readOnnx(bytes);
    assert.equal(graph.output, 'output');
    assert.match(describeOnnx(template).output, /the first of 2 outputs/);
    assert.throws(
      () =>
        readOnnx(
          edited('mlp_relu_gemm', (g) => {
            Object.assign(node(g, '/2/Relu'), {
              opType: 'BatchNormalization',
              input: ['/1/Gemm_output_0', '1.bias', '1.bias', '1.bias', '1.bias'],
              output: ['/2/Relu_output_0', 'running_mean', 'running_var'],
            });
          }),
          'bad.onnx',
        ),
      /op 'BatchNormalization' in training mode/,
    );
  });
});

describe('writeOnnx on edited Gemm forms', () => {
  const f = () => fixtureNamed('mlp_relu_gemm');
  const check = async (bytes: Uint8Array, what: string) => {
    const { graph, template } = readOnnx(bytes);
    assertClose(
      await runOrt(bytes, f().x.data, f().inputShape),
      (await forward(graph, f().x, tsGemm)).data,
      what,
    );
    const modified = modify(graph);
    const written = writeOnnx(modified, template, {});
    assertClose(
      await runOrt(written, f().x.data, f().inputShape),
      (await forward(modified, f().x, tsGemm)).data,
      `${what}, modified`,
    );
    return graph;
  };

  it('a Gemm with beta = 0 has no bias; a new one is written with beta = 1', async () => {
    const bytes = edited('mlp_relu_gemm', (g) => {
      const gemm = node(g, '/1/Gemm');
      gemm.attribute = [
        ...gemm.attribute.filter((a) => a.name !== 'beta'),
        onnx.AttributeProto.create({ name: 'beta', f: 0, type: 1 }),
      ];
    });
    const graph = await check(bytes, 'beta = 0');
    assert.equal(graph.layers[0].hasBias, false);
  });

  it('a weight held by a Constant node is replaced in that node', async () => {
    const bytes = edited('mlp_relu_gemm', (g) => {
      const weight = tensor(g, '1.weight');
      g.initializer.splice(g.initializer.indexOf(weight), 1);
      g.node.unshift(
        onnx.NodeProto.create({
          opType: 'Constant',
          name: 'w',
          output: ['1.weight'],
          attribute: [onnx.AttributeProto.create({ name: 'value', t: weight, type: 4 })],
        }),
      );
    });
    await check(bytes, 'Constant weight');
  });
});
