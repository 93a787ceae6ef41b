/**
 * The fuzz worker thread: runs fast-check over one parser at a time, as asked by fuzz.test.ts.
 * Before every parse it publishes a heartbeat and the input in shared memory, so that the main
 * thread can stop a parse that hangs and keep the input that made it hang.
 */
import { installAllocationGuard, withAllocationBudget } from './alloc-guard.js';

installAllocationGuard(); // before anything that allocates is loaded: see alloc-guard.ts

const { parentPort, workerData } = await import('node:worker_threads');
const { readFileSync } = await import('node:fs');
const fc = (await import('fast-check')).default;
const { EcpruneError } = await import('../../src/errors.js');
const { describeError } = await import('../../src/cli/errors.js');
const { FUZZ_TARGETS } = await import('./fuzz-targets.js');
const { mutate, mutationsArbitrary } = await import('./mutations.js');

export interface FuzzRequest {
  readonly kind: 'fuzz' | 'replay';
  readonly target: string;
  /** fuzz: random cases, besides every truncation of the seeds */
  readonly runs?: number;
  readonly seed?: number;
  /** replay: the files */
  readonly files?: readonly string[];
}

export interface FuzzFailure {
  readonly input: string; // base64
  readonly error: string;
  readonly file?: string;
}

export interface FuzzReport {
  readonly target: string;
  readonly cases: number;
  readonly ms: number;
  readonly failures: readonly FuzzFailure[];
  readonly skipped?: string;
  /** the most bytes one case allocated in total, and that case's input size */
  readonly mostAllocated: { readonly bytes: number; readonly inputBytes: number };
}

const { shared } = workerData as { shared: SharedArrayBuffer };
const beat = new Int32Array(shared, 0, 4); // [cases started, input length, busy, -]
const input = new Uint8Array(shared, 16);

const MiB = 2 ** 20;
let mostAllocated = { bytes: 0, inputBytes: 0 };

/** One parse under the guards; undefined when it behaved, else what went wrong. */
function runCase(
  parse: (bytes: Uint8Array) => unknown,
  check: ((result: unknown) => void) | undefined,
  bytes: Uint8Array,
  factor: number,
): string | undefined {
  input.set(bytes.subarray(0, Math.min(bytes.length, input.length)));
  Atomics.store(beat, 1, bytes.length);
  Atomics.add(beat, 0, 1);
  Atomics.store(beat, 2, 1);
  const limit = factor * bytes.length + MiB;
  // a copy: a parser may keep views on its input, and mutated seeds are reused
  const measured = withAllocationBudget(limit, () => parse(bytes.slice()));
  Atomics.store(beat, 2, 0);
  if (measured.used > mostAllocated.bytes) mostAllocated = { bytes: measured.used, inputBytes: bytes.length };
  if (measured.exceeded) {
    return `allocation beyond the budget: a request of ${measured.largest} bytes (budget ${limit} for ${bytes.length} input bytes)`;
  }
  const { error } = measured;
  if (error !== undefined) {
    if (!(error instanceof EcpruneError)) {
      const e = error as Error;
      return `${e?.name ?? 'thrown'}: ${e?.message ?? String(error)}\n${(e?.stack ?? '').split('\n').slice(1, 6).join('\n')}`;
    }
    if (error.code === 'internal') return `an internal error for bad input: ${error.message}`;
    // what the CLI prints for it must be one line (messages may quote a corrupt file's text)
    const printed = describeError(error, false);
    if (error.detail.trim() === '' || printed.includes('\n'))
      return `not a one-line message: ${JSON.stringify(printed)}`;
    return undefined;
  }
  try {
    check?.(measured.result);
  } catch (e) {
    return `a malformed result: ${(e as Error).message}`;
  }
  return undefined;
}

const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

async function handle(request: FuzzRequest): Promise<FuzzReport> {
  const target = FUZZ_TARGETS.find((t) => t.name === request.target)!;
  const started = performance.now();
  mostAllocated = { bytes: 0, inputBytes: 0 };
  const parse = await target.load();
  const seeds = parse ? await target.seeds() : [];
  if (!parse || seeds.length === 0) {
    return {
      target: target.name,
      cases: 0,
      ms: 0,
      failures: [],
      skipped: 'module or seeds not available',
      mostAllocated,
    };
  }
  const factor = target.allocationFactor ?? 64;
  const failures: FuzzFailure[] = [];
  let cases = 0;
  const run = (bytes: Uint8Array, file?: string) => {
    cases++;
    const error = runCase(parse, target.check, bytes, factor);
    if (error !== undefined && failures.length < 5)
      failures.push({ input: base64(bytes), error, ...(file ? { file } : {}) });
    return error;
  };

  if (request.kind === 'replay') {
    for (const file of request.files ?? []) run(new Uint8Array(readFileSync(file)), file);
    return { target: target.name, cases, ms: performance.now() - started, failures, mostAllocated };
  }

  // the seeds themselves must parse
  for (const seed of seeds) {
    const error = runCase(parse, target.check, seed, factor);
    cases++;
    if (error !== undefined) failures.push({ input: base64(seed), error: `a valid seed failed: ${error}` });
  }
  // every truncation of every seed (a stride for large seeds)
  for (const seed of seeds) {
    const step = Math.max(1, Math.floor(seed.length / 1500));
    for (let length = 0; length < seed.length; length += step) run(seed.subarray(0, length));
  }
  // random mutations, shrunk to a small failing case by fast-check
  const result = fc.check(
    fc.property(fc.nat({ max: seeds.length - 1 }), mutationsArbitrary, (which, mutations) => {
      const error = run(mutate(seeds[which], mutations));
      if (error !== undefined) throw new Error(error);
    }),
    { numRuns: request.runs ?? 1000, seed: request.seed ?? 1, endOnFailure: false },
  );
  if (result.failed && result.counterexample) {
    const [which, mutations] = result.counterexample;
    const bytes = mutate(seeds[which], mutations);
    failures.unshift({
      input: base64(bytes),
      error: `minimal case (seed ${which}, ${JSON.stringify(mutations, (_key, value) => (typeof value === 'bigint' ? `${value}n` : value))}): ${result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance)}`,
    });
  }
  return { target: target.name, cases, ms: performance.now() - started, failures, mostAllocated };
}

parentPort!.on('message', async (request: FuzzRequest | { kind: 'exit' }) => {
  if (request.kind === 'exit') {
    parentPort!.close();
    return;
  }
  parentPort!.postMessage(await handle(request));
});
parentPort!.postMessage({ ready: true });
