/**
 * What every op defines, side by side (micrograd style): how it runs forward, and its
 * vector-Jacobian product (VJP) — how cotangents of its outputs become cotangents of its inputs.
 * The graph walk (src/graph/run.ts) knows nothing about any op beyond this.
 */
import type { Gemm } from '../../gemm/gemm.js';
import type { OnnxNodes } from '../emit/onnx-nodes.js';
import type { AttributeValue, DenseLayer } from '../graph.js';
import type { Tensor } from '../tensor.js';

export interface OpContext {
  readonly attrs: Readonly<Record<string, AttributeValue>>;
  /** per input: whether it is a data tensor (first dimension = batch) or a constant / shape value */
  readonly batched: readonly boolean[];
  readonly layers: readonly DenseLayer[];
  readonly gemm: Gemm;
}

export interface VjpArgs {
  /** the forward pass's inputs (undefined for omitted optional inputs) and outputs */
  readonly inputs: readonly (Tensor | undefined)[];
  readonly outputs: readonly Tensor[];
  /** cotangents of the outputs (B·R rows; undefined where nothing flows back) */
  readonly gradOutputs: readonly (Tensor | undefined)[];
  /** R: cotangent rows per sample */
  readonly repeat: number;
}

export interface Op {
  forward(inputs: readonly (Tensor | undefined)[], ctx: OpContext): Tensor[] | Promise<Tensor[]>;
  /**
   * Cotangents of the data inputs (entries for constants may be undefined). Absent for ops that
   * only compute shapes or constants: no cotangent flows through them.
   */
  vjp?(args: VjpArgs, ctx: OpContext): (Tensor | undefined)[] | Promise<(Tensor | undefined)[]>;
  /** the same forward and VJP written as ONNX nodes (src/graph/emit); absent: not emitted */
  emit?: OpEmit;
}

/**
 * What an op's emission sees of one node. Forward values are [B, ...]; cotangents carry R rows per
 * sample as [B, R, ...] (or [1, R, ...] while they do not depend on the sample), so forward values
 * broadcast against them as [B, 1, ...] (`beside`).
 */
export interface EmitContext {
  readonly nodes: OnnxNodes;
  readonly attrs: Readonly<Record<string, AttributeValue>>;
  readonly batched: readonly boolean[];
  readonly layers: readonly DenseLayer[];
  /** per input: the per-sample shape of a data tensor, the full shape of a constant */
  readonly inputShapes: readonly (readonly number[] | undefined)[];
  /** per output: the per-sample shape */
  readonly outputShapes: readonly (readonly number[])[];
  /** per input: the value of a constant or shape input (undefined for data tensors) */
  readonly inputValues: readonly (Tensor | undefined)[];
  /** input i in the emitted graph: the data tensor [B, ...], or the constant as a float initializer */
  input(i: number): string;
  /** input i to broadcast against cotangents: [B, 1, ...] for data, the constant as it is */
  beside(i: number): string;
  /** output i to broadcast against cotangents, [B, 1, ...] (once the forward is emitted) */
  besideOutput(i: number): string;
}

export interface OpEmit {
  /** the node's outputs (data tensors), emitted */
  forward(ctx: EmitContext): string[];
  /** cotangents of the data inputs from those of the outputs, emitted */
  vjp?(gradOutputs: readonly (string | undefined)[], ctx: EmitContext): (string | undefined)[];
  /**
   * For elementwise ops of one data tensor: the VJP is g ⊙ this [B, 1, ...] factor. The emission
   * then keeps the factor beside the cotangent instead of multiplying it in, so a layer's
   * Σ_k g² is (Σ_k h²) ⊙ factor²: no [B, K, n] product where only the sum is needed.
   */
  factor?(ctx: EmitContext): string;
  /** the factor is 0 or 1 (its square is itself) */
  readonly maskFactor?: boolean;
}

export function numberAttr(ctx: Pick<OpContext, 'attrs'>, name: string, fallback: number): number {
  const value = ctx.attrs[name];
  return typeof value === 'number' ? value : fallback;
}

export function intsAttr(ctx: Pick<OpContext, 'attrs'>, name: string): readonly number[] | undefined {
  const value = ctx.attrs[name];
  if (typeof value === 'number') return [value];
  return Array.isArray(value) ? (value as readonly number[]) : undefined;
}
