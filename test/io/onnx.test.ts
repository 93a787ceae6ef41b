import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { EcpruneError } from '../../src/errors.js';
import { tsGemm } from '../../src/gemm/ts-gemm.js';
import { forward } from '../../src/graph/run.js';
import { readNpy } from '../../src/io/npy.js';
import { describeOnnx, type OnnxModel, type OnnxTemplate, readOnnx, writeOnnx } from '../../src/io/onnx.js';
import { type Matrix, matrix } from '../../src/model/matrix.js';
import { cloneMlp, type Mlp } from '../../src/model/mlp.js';

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
const bits = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** The op types of a graph's nodes, without the Identity and Constant nodes ecprune does not keep, sorted. */
function opTypes(bytes: Uint8Array): string[] {
  const ops = (decode(bytes).graph?.node ?? []).map((n) => n.opType ?? '');
  return ops.filter((op) => op !== 'Identity' && op !== 'Constant').sort();
}

/** A pruned-and-compensated stand-in: every second weight zeroed, every bias shifted. */
function modify(mlp: Mlp): Mlp {
  const out = cloneMlp(mlp);
  for (const layer of out.layers) {
    for (let i = 0; i < layer.weight.data.length; i += 2) layer.weight.data[i] = 0;
    for (let i = 0; i < layer.bias.length; i++) layer.bias[i] += 0.25 * ((i % 3) - 1) + 0.1;
  }
  return out;
}

function assertSameMlp(actual: Mlp, expected: Mlp, what: string): void {
  assert.equal(actual.layers.length, expected.layers.length, `${what}: layer count`);
  actual.layers.forEach((layer, l) => {
    const other = expected.layers[l];
    assert.deepEqual(
      [layer.weight.rows, layer.weight.cols],
      [other.weight.rows, other.weight.cols],
      `${what}: layer ${l} shape`,
    );
    assert.deepEqual(bits(layer.weight.data), bits(other.weight.data), `${what}: layer ${l} weight bits`);
    assert.deepEqual(bits(layer.bias), bits(other.bias), `${what}: layer ${l} bias bits`);
    assert.deepEqual(layer.activation, other.activation, `${what}: layer ${l} activation`);
  });
}

const withoutMetadata = (t: OnnxTemplate) => ({ ...t, metadata: {} });

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
      const y = await forward(f.model.mlp, f.x, tsGemm);
      assertClose(y.data, f.y.data, f.name);
    });
  }

  for (const f of runnable) {
    it(`${f.name}: onnxruntime on the original file matches PyTorch and our forward pass`, async () => {
      const ortY = await runOrt(f.bytes, f.x.data, f.inputShape);
      assertClose(ortY, f.y.data, `${f.name} onnxruntime vs PyTorch`);
      assertClose(ortY, (await forward(f.model.mlp, f.x, tsGemm)).data, `${f.name} onnxruntime vs ours`);
    });
  }

  it('reads the activations and their parameters', () => {
    const kinds = fixtureNamed('mlp_activations').model.mlp.layers.map((l) => l.activation);
    assert.deepEqual(kinds, [
      { kind: 'relu' },
      { kind: 'leaky_relu', alpha: 0.2 },
      { kind: 'tanh' },
      { kind: 'sigmoid' },
      { kind: 'gelu' },
      { kind: 'softplus' },
      { kind: 'elu', alpha: 0.5 },
      { kind: 'identity' },
    ]);
    assert.deepEqual(
      fixtureNamed('mlp_opset9').model.mlp.layers.map((l) => l.activation),
      [{ kind: 'gelu' }, { kind: 'elu', alpha: 1 }, { kind: 'identity' }],
    );
  });

  it('keeps the structure in the template', () => {
    const named = fixtureNamed('mlp_opset11_named').model.template;
    assert.deepEqual(describeOnnx(named), {
      opset: 11,
      irVersion: 6,
      producer: 'pytorch 1.13.0',
      input: 'features [5, 4, 5]',
      output: 'logits [5, 3]',
    });
    assert.deepEqual(named.preprocess, {
      op: 'Reshape',
      nodeName: '/Reshape',
      shapeName: '/Constant_output_0',
      shape: [-1, 20],
    });
    assert.equal(named.layers[0].op, 'MatMul');
    assert.equal(named.layers[0].biasName, undefined, 'Linear(bias=False) is a MatMul without Add');

    const relu = fixtureNamed('mlp_relu_gemm').model.template;
    assert.deepEqual(relu.input, { name: 'input', elemType: 1, dims: ['N', 1, 8, 8] });
    assert.deepEqual(relu.preprocess, { op: 'Flatten', nodeName: '/0/Flatten', axis: 1 });
    assert.deepEqual(relu.layers[0], {
      op: 'Gemm',
      nodeName: '/1/Gemm',
      weightName: '1.weight',
      transB: true,
      biasName: '1.bias',
      activation: { kind: 'relu', nodeNames: ['/2/Relu'] },
    });

    const matmul = fixtureNamed('mlp_matmul_add').model.template.layers;
    assert.deepEqual(
      matmul.map((l) => [l.op, l.addNodeName, l.biasName, l.biasFirst]),
      [
        ['MatMul', '/Add', 'b1', false],
        ['MatMul', '/Add_1', 'b2', true],
      ],
    );
    const edited = fixtureNamed('mlp_edited').model.template.layers;
    assert.equal(edited[0].transB, false);
    assert.deepEqual(edited[1].activation, {
      kind: 'gelu',
      nodeNames: ['/3/Div', '/3/Erf', '/3/Add', '/3/Mul', '/3/Mul_1'],
    });
  });

  it('reads a Gemm without C, and a Reshape shape from a value_ints Constant', async () => {
    const f = fixtureNamed('mlp_opset11_named');
    const bytes = edited('mlp_opset11_named', (g) => {
      node(g, '/out/Gemm').input.splice(2, 1);
      const constant = node(g, '/Constant');
      constant.attribute = [onnx.AttributeProto.create({ name: 'value_ints', ints: [-1, 20], type: 7 })];
    });
    const { mlp, template } = readOnnx(bytes);
    assert.deepEqual(template.preprocess, f.model.template.preprocess);
    assert.equal(template.layers[1].biasName, undefined);
    assert.deepEqual(mlp.layers[1].bias, new Float32Array(3));
    // the bias, now nonzero, is written as a C input again
    const modified = modify(mlp);
    const written = writeOnnx(modified, template, {});
    assert.equal(readOnnx(written).template.layers[1].biasName, '/out/Gemm.bias');
    const ours = await forward(modified, f.x, tsGemm);
    assertClose(await runOrt(written, f.x.data, f.inputShape), ours.data, 'Gemm without C');
  });
});

describe('writeOnnx', () => {
  for (const f of fixtures) {
    it(`${f.name}: write → read keeps weights bit for bit and the template`, () => {
      const written = writeOnnx(f.model.mlp, f.model.template, {});
      const back = readOnnx(written);
      assertSameMlp(back.mlp, f.model.mlp, f.name);
      assert.deepEqual(withoutMetadata(back.template), withoutMetadata(f.model.template));
      assert.deepEqual(opTypes(written), opTypes(f.bytes));
    });
  }

  for (const f of runnable) {
    it(`${f.name}: modified weights → written file runs in onnxruntime like our forward pass`, async () => {
      const modified = modify(f.model.mlp);
      const written = writeOnnx(modified, f.model.template, {
        ecprune_version: '0.1.0',
        method: 'test',
        sparsity: '0.5',
      });
      const ours = await forward(modified, f.x, tsGemm);
      assertClose(await runOrt(written, f.x.data, f.inputShape), ours.data, f.name);
      assertSameMlp(readOnnx(written).mlp, modified, f.name);
    });
  }

  it('writes plain float32 raw_data weights and keeps the Gemm transB layout with alpha = beta = 1', () => {
    const { mlp, template } = fixtureNamed('mlp_edited').model; // layer 0: transB=0, alpha=2, beta=0.5
    const model = decode(writeOnnx(mlp, template, {}));
    const graph = model.graph as onnxProto.onnx.GraphProto;
    for (const t of graph.initializer) {
      assert.equal(t.dataType, onnx.TensorProto.DataType.FLOAT, `${t.name}`);
      assert.ok((t.rawData?.length ?? 0) > 0 && (t.floatData?.length ?? 0) === 0, `${t.name} is raw_data`);
    }
    const gemm = graph.node.find((n) => n.name === '/0/Gemm') as onnxProto.onnx.NodeProto;
    const attrs = Object.fromEntries(
      gemm.attribute.map((a) => [
        a.name,
        a.type === onnx.AttributeProto.AttributeType.FLOAT ? a.f : Number(a.i),
      ]),
    );
    assert.deepEqual(attrs, { alpha: 1, beta: 1, transB: 0 });
    const weight = graph.initializer.find((t) => t.name === '0.weight') as onnxProto.onnx.TensorProto;
    assert.deepEqual(weight.dims.map(Number), [6, 5], 'stored n_in x n_out, as read');
    assert.equal(Number(model.opsetImport[0].version), 13);
  });

  it('merges metadata_props with the ones already in the file', () => {
    const { mlp, template } = fixtureNamed('mlp_relu_gemm').model;
    const first = readOnnx(
      writeOnnx(mlp, template, { ecprune_version: '0.1.0', method: 'ec', sparsity: '0.9' }),
    );
    assert.deepEqual(first.template.metadata, { ecprune_version: '0.1.0', method: 'ec', sparsity: '0.9' });
    const second = writeOnnx(mlp, first.template, { sparsity: '0.95', calibration_samples: '512' });
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
    const written = writeOnnx(modify(f.model.mlp), f.model.template, {});
    assert.deepEqual(opTypes(written), ['Add', 'Gemm', 'MatMul', 'Reshape', 'Tanh']);
    assert.equal(readOnnx(written).template.layers[0].biasName, '/hidden/MatMul.bias');
  });

  it('sparse: weights become sparse_initializers that read back identical and run in onnxruntime', async () => {
    for (const f of runnable) {
      const modified = modify(f.model.mlp);
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
      assertSameMlp(readOnnx(written).mlp, modified, f.name);
      assertClose(
        await runOrt(written, f.x.data, f.inputShape),
        (await forward(modified, f.x, tsGemm)).data,
        `${f.name} sparse`,
      );
    }
  });

  it('without a template writes a default Gemm graph that onnxruntime runs (every activation, opset 17)', async () => {
    const f = fixtureNamed('mlp_activations');
    const written = writeOnnx(f.model.mlp, undefined, { method: 'ec' });
    const model = decode(written);
    assert.equal(Number(model.irVersion), 8);
    assert.deepEqual(
      model.opsetImport.map((o) => [o.domain, Number(o.version)]),
      [['', 17]],
    );
    const input = model.graph?.input?.[0];
    assert.equal(input?.name, 'input');
    assert.deepEqual(
      input?.type?.tensorType?.shape?.dim?.map((d) => d.dimParam ?? Number(d.dimValue)),
      ['batch', 12],
    );
    assert.equal(model.graph?.output?.[0].name, 'output');
    assert.ok(!opTypes(written).includes('Gelu'), 'GELU is the Erf decomposition before opset 20');
    const back = readOnnx(written);
    assertSameMlp(back.mlp, f.model.mlp, 'default graph');
    assert.ok(back.template.layers.every((l) => l.op === 'Gemm' && l.transB));
    assert.deepEqual(back.template.metadata, { method: 'ec' });
    assertClose(await runOrt(written, f.x.data, [f.x.rows, f.x.cols]), f.y.data, 'default graph vs PyTorch');
  });

  it('writes the Gelu op at opset 20', () => {
    const { mlp, template } = fixtureNamed('mlp_gelu_opset20').model;
    assert.ok(opTypes(writeOnnx(mlp, template, {})).includes('Gelu'));
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
      [/node '\/1\/Conv': op 'Conv' is not supported \(ecprune reads Gemm\/MatMul\+Add MLPs/],
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
      'a weight that does not fit the previous layer',
      'mlp_relu_gemm',
      (g) => {
        g.node.splice(g.node.indexOf(node(g, '/3/Gemm')), 2);
        node(g, '/5/Gemm').input[0] = '/2/Relu_output_0';
      },
      'input',
      [/node '\/5\/Gemm'/, /takes 16 inputs but the previous layer has 32 outputs/],
    ],
    [
      'a fork (not one chain)',
      'mlp_relu_gemm',
      (g) =>
        g.node.push(
          onnx.NodeProto.create({
            opType: 'Relu',
            name: 'extra',
            input: ['/2/Relu_output_0'],
            output: ['extra_out'],
          }),
        ),
      'input',
      [/not one chain/],
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
      [/node '\/0\/Flatten': the node is reached twice: the graph has a cycle/],
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
