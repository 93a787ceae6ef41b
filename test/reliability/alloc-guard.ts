/**
 * Counts the bytes parsers ask for, for the fuzz tests: replaces the global typed-array and
 * ArrayBuffer constructors with proxies that add up every allocation made while a budget is
 * active, and refuse (throw `AllocationBudgetExceeded`) one that would exceed it, before it is
 * made, so that a parser believing a forged size never actually allocates terabytes.
 *
 * Import this module first, before any parser or library (fflate and protobufjs keep their own
 * reference to `Uint8Array` from load time): only code loaded afterwards is counted. Meant for the
 * fuzz worker thread only; views (`subarray`, `new Uint8Array(buffer, offset, length)`) and
 * Node's own Buffers are not counted, since they allocate nothing or are not the parsers' doing.
 */

export class AllocationBudgetExceeded extends Error {
  override readonly name = 'AllocationBudgetExceeded';
}

const CONSTRUCTORS = [
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
  'ArrayBuffer',
] as const;

interface Budget {
  limit: number;
  used: number;
  /** the largest single request, and whether one was refused */
  largest: number;
  exceeded: boolean;
}

let active: Budget | undefined;

/** Bytes a constructor call allocates: a length, or a copy of an array-like or iterable. */
function requestedBytes(name: string, bytesPerElement: number, args: unknown[]): number {
  const [first] = args;
  if (typeof first === 'number') return name === 'ArrayBuffer' ? first : first * bytesPerElement;
  if (first === undefined || first === null) return 0;
  if (
    first instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer !== 'undefined' && first instanceof SharedArrayBuffer)
  ) {
    return 0; // a view on existing memory
  }
  const length = (first as { length?: unknown }).length;
  if (typeof length === 'number') return length * bytesPerElement;
  return 0; // an iterable: its size is not known before; the copy is counted as 0 (rare in parsers)
}

let installed = false;

export function installAllocationGuard(): void {
  if (installed) return;
  installed = true;
  const globals = globalThis as unknown as Record<string, unknown>;
  for (const name of CONSTRUCTORS) {
    const original = globals[name] as (new (...args: unknown[]) => object) & { BYTES_PER_ELEMENT?: number };
    if (typeof original !== 'function') continue;
    const bytesPerElement = original.BYTES_PER_ELEMENT ?? 1;
    globals[name] = new Proxy(original, {
      construct(target, args, newTarget) {
        if (active !== undefined) {
          const bytes = requestedBytes(name, bytesPerElement, args);
          if (Number.isFinite(bytes) && bytes > 0) {
            active.largest = Math.max(active.largest, bytes);
            if (active.used + bytes > active.limit) {
              active.exceeded = true;
              throw new AllocationBudgetExceeded(
                `${name} of ${bytes} bytes would take the parse to ${active.used + bytes} bytes (budget ${active.limit})`,
              );
            }
            active.used += bytes;
          }
        }
        // a subclass (newTarget !== proxy) keeps its own prototype
        return Reflect.construct(target, args, newTarget === globals[name] ? target : newTarget);
      },
    });
  }
}

export interface Measured<T> {
  readonly result?: T;
  readonly error?: unknown;
  readonly used: number;
  readonly largest: number;
  /** a request over the budget was refused (even if the parser caught and rewrapped the error) */
  readonly exceeded: boolean;
}

/** Runs `fn` with an allocation budget of `limit` bytes; never throws. */
export function withAllocationBudget<T>(limit: number, fn: () => T): Measured<T> {
  const budget: Budget = { limit, used: 0, largest: 0, exceeded: false };
  const outer = active;
  active = budget;
  try {
    const result = fn();
    return { result, used: budget.used, largest: budget.largest, exceeded: budget.exceeded };
  } catch (error) {
    return { error, used: budget.used, largest: budget.largest, exceeded: budget.exceeded };
  } finally {
    active = outer;
  }
}
