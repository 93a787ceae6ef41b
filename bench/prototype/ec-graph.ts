/**
 * PROTOTYPE (not the library): the whole per-batch EC computation of src/score/statistics.ts
 * (exact 'output' sensitivities; ReLU hidden layers, identity output) as ONE ONNX graph run by
 * onnxruntime-node, so that every elementwise step (bias, ReLU, act', the cotangent masking, Σ_k g²,
 * the centred [A−c | (A−c)²]) runs in C++ on ORT's thread pool instead of single-threaded JS loops,
 * intermediate buffers come from ORT's arena (no fresh pages per batch), and there is one
 * session.run per batch instead of ~10 GEMM calls. The float64 sums across batches stay in JS.
 *
 * Per batch (B samples, layers 0..L-1, K = n_{L-1} outputs):
 *   forward      Z_l = Gemm(A_{l-1}, W_l, b_l, transB), A_l = Relu(Z_l), D_l = Cast(Z_l > 0)
 *   output layer s = 1 (identity): M = Σ_n [A−c | (A−c)²] (one row, the same for every k), m0 = B
 *   layer L-2    g = W_{L-1}[None] * D_{L-2}[:, None]  (B, K, n)  — the one-hot GEMM is a broadcast
 *                s = D_{L-2}² · Σ_k W_{L-1}[k, :]²      (closed form, no pass over g)
 *   layers < L-2 g = MatMul(g, W_{l+1}) * D_l[:, None];  s = ReduceSumSquare(g, axis 1)
 *   statistics   M_l = Gemm(s, [A−c | (A−c)²], transA),  m0_l = ReduceSum(s, axis 0)
 * The shift c (mean of the first batch) is obtained by running the first batch once with c = 0
 * (the graph also outputs the batch means of every layer input).
 */

import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import type { Dataset } from '../../src/data/dataset.js';
import type { Mlp } from '../../src/model/mlp.js';
import type { CalibrationStatistics, LayerStatistics } from '../../src/score/statistics.js';
import type { PhaseTimings } from '../../src/timings.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

export interface GraphOptions {
  batchSize?: number;
  threads?: number;
  spinning?: boolean;
  timings?: PhaseTimings;
}

function floatInitializer(name: string, dims: number[], data: Float32Array) {
  return {
    name,
    dims,
    dataType: FLOAT,
    rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  };
}

function int64Initializer(name: string, values: number[]) {
  const data = new BigInt64Array(values.map(BigInt));
  return { name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(data.buffer) };
}

function valueInfo(name: string, dims: (number | string)[]) {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** The ONNX model of one batch's EC statistics for `mlp` (weights as initializers). */
export function ecGraphBytes(mlp: Mlp): Uint8Array {
  const L = mlp.layers.length;
  if (L < 2) throw new Error('prototype: at least 2 layers');
  mlp.layers.forEach((layer, l) => {
    const want = l === L - 1 ? 'identity' : 'relu';
    if (layer.activation.kind !== want) throw new Error(`prototype: layer ${l} must be ${want}`);
  });
  const sizes = [mlp.layers[0].weight.cols, ...mlp.layers.map((layer) => layer.weight.rows)];
  const K = sizes[L];
  const nodes: object[] = [];
  const inits: object[] = [];
  const inputs = [valueInfo('X', ['B', sizes[0]])];
  const outputs: object[] = [];
  const attrInt = (name: string, i: number) => ({ name, i, type: onnx.AttributeProto.AttributeType.INT });
  const attrInts = (name: string, ints: number[]) => ({
    name,
    ints,
    type: onnx.AttributeProto.AttributeType.INTS,
  });
  const node = (opType: string, input: string[], output: string[], attribute: object[] = []) =>
    nodes.push({ opType, input, output, attribute, name: output[0] });
  inits.push(int64Initializer('axis0', [0]), int64Initializer('axis1', [1]));
  inits.push(floatInitializer('zero', [], new Float32Array([0])));

  // forward
  let a = 'X';
  const layerInput: string[] = [];
  const deriv: string[] = [];
  for (let l = 0; l < L; l++) {
    const { weight, bias } = mlp.layers[l];
    inits.push(
      floatInitializer(`W${l}`, [weight.rows, weight.cols], weight.data),
      floatInitializer(`b${l}`, [weight.rows], bias),
    );
    layerInput.push(a);
    node('Gemm', [a, `W${l}`, `b${l}`], [`Z${l}`], [attrInt('transB', 1)]);
    if (l < L - 1) {
      node('Relu', [`Z${l}`], [`A${l}`]);
      node('Greater', [`Z${l}`, 'zero'], [`G${l}`]);
      node('Cast', [`G${l}`], [`D${l}`], [attrInt('to', FLOAT)]);
      deriv.push(`D${l}`);
      a = `A${l}`;
    }
  }
  // centred inputs and batch means
  for (let l = 0; l < L; l++) {
    inputs.push(valueInfo(`c${l}`, [sizes[l]]));
    node('Sub', [layerInput[l], `c${l}`], [`E${l}`]);
    node('Mul', [`E${l}`, `E${l}`], [`Q${l}`]);
    node('Concat', [`E${l}`, `Q${l}`], [`C${l}`], [attrInt('axis', 1)]);
    node('ReduceMean', [layerInput[l]], [`mean${l}`], [attrInts('axes', [0]), attrInt('keepdims', 0)]);
    outputs.push(valueInfo(`mean${l}`, [sizes[l]]));
  }
  // output layer: s = 1
  node('ReduceSum', [`C${L - 1}`, 'axis0'], [`M${L - 1}`], [attrInt('keepdims', 1)]);
  outputs.push(valueInfo(`M${L - 1}`, [1, 2 * sizes[L - 1]]));
  // layer L-2: g = W_{L-1}[None] * D[:, None], s = D² Σ_k W²  (ReLU: D² = D)
  const WL = mlp.layers[L - 1].weight;
  const q = new Float32Array(WL.cols);
  for (let k = 0; k < WL.rows; k++) for (let j = 0; j < WL.cols; j++) q[j] += WL.data[k * WL.cols + j] ** 2;
  inits.push(floatInitializer('qL', [WL.cols], q), floatInitializer('W3d', [1, K, WL.cols], WL.data));
  let g = '';
  for (let l = L - 2; l >= 0; l--) {
    node('Unsqueeze', [deriv[l], 'axis1'], [`Du${l}`]);
    if (l === L - 2) {
      node('Mul', ['W3d', `Du${l}`], [`g${l}`]);
      node('Mul', [deriv[l], 'qL'], [`s${l}`]);
    } else {
      node('MatMul', [g, `W${l + 1}`], [`h${l}`]);
      node('Mul', [`h${l}`, `Du${l}`], [`g${l}`]);
      node('ReduceSumSquare', [`g${l}`], [`s${l}`], [attrInts('axes', [1]), attrInt('keepdims', 0)]);
    }
    g = `g${l}`;
    node('Gemm', [`s${l}`, `C${l}`], [`M${l}`], [attrInt('transA', 1)]);
    node('ReduceSum', [`s${l}`, 'axis0'], [`m0_${l}`], [attrInt('keepdims', 0)]);
    outputs.push(valueInfo(`M${l}`, [sizes[l + 1], 2 * sizes[l]]), valueInfo(`m0_${l}`, [sizes[l + 1]]));
  }
  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'ecprune-prototype',
    graph: { name: 'ec', node: nodes, initializer: inits, input: inputs, output: outputs },
  });
  return onnx.ModelProto.encode(model).finish();
}

export async function ecStatisticsGraph(
  mlp: Mlp,
  data: Dataset,
  o: GraphOptions = {},
): Promise<CalibrationStatistics> {
  const session = await ort.InferenceSession.create(ecGraphBytes(mlp), {
    intraOpNumThreads: o.threads ?? 0,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    ...(o.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
  });
  try {
    const L = mlp.layers.length;
    const sizes = [mlp.layers[0].weight.cols, ...mlp.layers.map((layer) => layer.weight.rows)];
    const layers: LayerStatistics[] = mlp.layers.map((layer) => ({
      shift: new Float64Array(layer.weight.cols),
      m0: new Float64Array(layer.weight.rows),
      m1: new Float64Array(layer.weight.data.length),
      m2: new Float64Array(layer.weight.data.length),
    }));
    const shifts = sizes.slice(0, L).map((n) => new Float32Array(n));
    let done = 0;
    for await (const batch of data.batches(o.batchSize ?? 1000)) {
      const B = batch.x.rows;
      const feeds: Record<string, ort.Tensor> = { X: new ort.Tensor('float32', batch.x.data, [B, sizes[0]]) };
      const feedShifts = () => {
        for (let l = 0; l < L; l++) feeds[`c${l}`] = new ort.Tensor('float32', shifts[l], [sizes[l]]);
      };
      const start = performance.now();
      if (done === 0) {
        feedShifts();
        const first = await session.run(feeds);
        for (let l = 0; l < L; l++) {
          const mean = first[`mean${l}`].data as Float32Array;
          shifts[l].set(mean);
          for (let j = 0; j < sizes[l]; j++) layers[l].shift[j] = shifts[l][j];
        }
      }
      feedShifts();
      const out = await session.run(feeds);
      const mid = performance.now();
      // float64 sums across batches
      for (let l = 0; l < L; l++) {
        const M = out[`M${l}`].data as Float32Array;
        const m0Batch = l === L - 1 ? undefined : (out[`m0_${l}`].data as Float32Array);
        addMoments(layers[l], M, m0Batch, sizes[l], sizes[l + 1], B);
      }
      if (o.timings) {
        o.timings.graph = (o.timings.graph ?? 0) + mid - start;
        o.timings.accumulate = (o.timings.accumulate ?? 0) + performance.now() - mid;
      }
      done += B;
    }
    return { samples: done, layers };
  } finally {
    await session.release();
  }
}

/** stats += one batch's moments (M: n_out x 2 n_in, or 1 x 2 n_in shared by all rows when m0Batch is undefined: s = 1). */
function addMoments(
  stats: LayerStatistics,
  M: Float32Array,
  m0Batch: Float32Array | undefined,
  nIn: number,
  nOut: number,
  B: number,
): void {
  const { m0, m1, m2 } = stats;
  for (let i = 0; i < nOut; i++) {
    m0[i] += m0Batch === undefined ? B : m0Batch[i];
    const row = m0Batch === undefined ? 0 : i * 2 * nIn;
    const off = i * nIn;
    for (let j = 0; j < nIn; j++) {
      m1[off + j] += M[row + j];
      m2[off + j] += M[row + nIn + j];
    }
  }
}
