import type { Graph } from '../../src/graph/graph.js';

/** A pruned-and-compensated stand-in: every second weight zeroed, every bias shifted (bias-free layers too). */
export function modified(graph: Graph): Graph {
  return {
    ...graph,
    layers: graph.layers.map((layer) => ({
      ...layer,
      weight: { ...layer.weight, data: layer.weight.data.map((w, i) => (i % 2 === 0 ? 0 : w)) },
      bias: layer.bias.map((b, i) => b + 0.25 * ((i % 3) - 1) + 0.1),
    })),
  };
}
