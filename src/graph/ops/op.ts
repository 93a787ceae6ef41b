/**
 * What every op defines, side by side (micrograd style): how it runs forward, and its
 * vector-Jacobian product (VJP) — how cotangents of its outputs become cotangents of its inputs.
 * The graph walk (src/graph/run.ts) knows nothing about any op beyond this.
 */
import type { Gemm } from '../../gemm/gemm.js';
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
}

export function numberAttr(ctx: OpContext, name: string, fallback: number): number {
  const value = ctx.attrs[name];
  return typeof value === 'number' ? value : fallback;
}

export function intsAttr(ctx: OpContext, name: string): readonly number[] | undefined {
  const value = ctx.attrs[name];
  if (typeof value === 'number') return [value];
  return Array.isArray(value) ? (value as readonly number[]) : undefined;
}
