import { Command } from 'commander';
import { denseNodeOf, type Graph } from '../../graph/graph.js';
import { SUPPORTED_OPS } from '../../graph/ops/index.js';
import { describeOnnx } from '../../io/onnx.js';
import { formatActivation } from '../../model/activations.js';
import { nonzeroWeightCount, weightCount } from '../../model/mlp.js';
import { loadModel } from '../../node/models.js';
import { archOption, MODEL_FILES } from '../options.js';

/** The ops that consume a layer's output, as `Relu` or `BatchNormalization, Add`. */
function after(graph: Graph, l: number): string {
  const z = denseNodeOf(graph, l).outputs[0];
  const ops = graph.nodes.filter((node) => node.inputs.includes(z)).map((node) => node.op);
  return ops.length > 0 ? ops.join(', ') : graph.output === z ? '(output)' : '';
}

/**
 * The ops after the last fully-connected layer, in graph order: the head of a graph read without
 * an ONNX template (TF.js), whose Dense activations are nodes of their own.
 */
function headOps(graph: Graph): string[] {
  const dense = graph.nodes.map((node) => node.op === 'Dense');
  return graph.nodes.slice(dense.lastIndexOf(true) + 1).map((node) => node.op);
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description(
      'the graph: frozen prefix, the fully-connected layers EC prunes (shapes, parameters, sparsity), head',
    )
    .argument('<model>', `the model (${MODEL_FILES})`)
    .addOption(archOption())
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `\nExample:\n  $ ecprune inspect pruned.onnx\n\nOps ecprune runs and differentiates (ONNX names; TF.js layers map onto them), besides the\nfully-connected layers (Gemm, MatMul + Add, Dense); ops before the first layer may be anything:\n  ${SUPPORTED_OPS.join(', ')}`,
    )
    .action(async (modelFile: string, flags) => {
      const model = await loadModel(modelFile, { arch: flags.arch });
      const { graph, mlp, format } = model;
      const layers = graph.layers.map((layer, l) => {
        const weights = layer.weight.data.length;
        const nonzero = nonzeroWeightCount({ layers: [layer] });
        return {
          layer: l,
          name: layer.name,
          shape: [layer.weight.rows, layer.weight.cols],
          activation: mlp ? formatActivation(mlp.layers[l].activation) : after(graph, l),
          weights,
          nonzero,
          biases: layer.hasBias ? layer.bias.length : 0,
          sparsity: 1 - nonzero / weights,
        };
      });
      const total = weightCount(graph);
      const nonzero = nonzeroWeightCount(graph);
      const onnx = model.onnx && describeOnnx(model.onnx);
      const ops = new Map<string, number>();
      for (const node of graph.nodes) if (node.op !== 'Dense') ops.set(node.op, (ops.get(node.op) ?? 0) + 1);
      const summary = {
        file: modelFile,
        format,
        chain: mlp !== undefined,
        prefix: onnx?.prefix ?? [],
        ops: Object.fromEntries(ops),
        head: onnx?.head ?? headOps(graph),
        layers,
        weights: total,
        nonzero,
        sparsity: 1 - nonzero / total,
      };
      if (flags.json) {
        console.log(JSON.stringify(summary));
        return;
      }
      console.log(
        `${modelFile} (${format}): ${graph.layers.length} fully-connected layers, ${total.toLocaleString('en')} weights, ` +
          `${nonzero.toLocaleString('en')} non-zero, sparsity ${(100 * summary.sparsity).toFixed(2)} %`,
      );
      if (!mlp) {
        const counted = [...ops].map(([op, n]) => (n > 1 ? `${op} x${n}` : op)).join(', ');
        console.log(`  graph: ${counted || 'no other ops'}`);
      }
      if (summary.prefix.length > 0) {
        console.log(
          `  frozen prefix (runs in onnxruntime, written back unchanged): ${summary.prefix.join(', ')}`,
        );
      }
      if (summary.head.length > 0) console.log(`  head: ${summary.head.join(', ')}`);
      // names (what --exclude takes) and the ops after a layer in full, a cut one misleads ('BatchNormaliza'):
      // each column as wide as its widest entry
      const nameWidth = Math.max(20, ...layers.map((row) => row.name.length));
      const thenWidth = Math.max(14, ...layers.map((row) => row.activation.length));
      console.log(
        `  layer  ${'name'.padEnd(nameWidth)}  shape (out x in)  ${'then'.padEnd(thenWidth)}  weights   non-zero  sparsity`,
      );
      for (const row of layers) {
        console.log(
          `  ${String(row.layer).padEnd(5)}  ${row.name.padEnd(nameWidth)}  ${`${row.shape[0]} x ${row.shape[1]}`.padEnd(16)}  ${row.activation.padEnd(thenWidth)}  ` +
            `${row.weights.toLocaleString('en').padStart(9)}  ${row.nonzero.toLocaleString('en').padStart(9)}  ${(100 * row.sparsity).toFixed(2).padStart(8)} %` +
            (row.biases === 0 ? '  (no bias)' : ''),
        );
      }
    });
}
