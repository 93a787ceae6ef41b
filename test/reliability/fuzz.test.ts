/**
 * Fuzzing every parser: valid files (the committed fixtures), truncated at every length and mutated
 * at random (fast-check), must parse to a well-formed result or raise an EcpruneError: never
 * another exception, never a hang, never an allocation beyond a multiple of the input size (see
 * fuzz-targets.ts for the table, fuzz-worker.ts for the checks, alloc-guard.ts for the counting).
 *
 * The parsers run in worker threads so that this thread can stop one that hangs (no progress for
 * HANG_MS plus a size-derived allowance) and keep its input. Any failing input is written to
 * FUZZ_OUT (default: a temp folder) to be minimised into test/fixtures/regressions/.
 *
 * CI runs a fixed number of cases with a fixed seed (deterministic); for a longer hunt:
 *   FUZZ_RUNS=50000 FUZZ_SEED=$RANDOM node --import tsx --test test/reliability/fuzz.test.ts
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { FUZZ_TARGETS, targetOfFixture } from './fuzz-targets.js';
import type { FuzzReport, FuzzRequest } from './fuzz-worker.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2500);
const SEED = Number(process.env.FUZZ_SEED ?? 20260227);
const HANG_MS = 15_000;
const SHARED_INPUT_BYTES = 4 * 2 ** 20;
const REGRESSIONS = path.join(
  path.dirname(new URL(import.meta.url).pathname),
  '..',
  'fixtures',
  'regressions',
);
const OUT = process.env.FUZZ_OUT ?? path.join(tmpdir(), `ecprune-fuzz-${process.pid}`);

/** A worker thread that runs TypeScript (tsx registered inside it) with a watchdog on its parses. */
class FuzzWorker {
  private readonly shared = new SharedArrayBuffer(16 + SHARED_INPUT_BYTES);
  private readonly beat = new Int32Array(this.shared, 0, 4);
  private worker: Worker;
  private readonly ready: Promise<void>;

  constructor() {
    const tsx = import.meta.resolve('tsx/esm/api');
    const entry = new URL('./fuzz-worker.ts', import.meta.url).href;
    this.worker = new Worker(
      `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`,
      { eval: true, workerData: { shared: this.shared } },
    );
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('message', () => resolve());
      this.worker.once('error', reject);
    });
  }

  /** Runs one request; rejects with the hanging input's path when a parse makes no progress. */
  async run(request: FuzzRequest): Promise<FuzzReport> {
    await this.ready;
    return new Promise((resolve, reject) => {
      let lastCount = -1;
      let lastChange = Date.now();
      const watchdog = setInterval(() => {
        const count = Atomics.load(this.beat, 0);
        const busy = Atomics.load(this.beat, 2) === 1;
        if (count !== lastCount || !busy) {
          lastCount = count;
          lastChange = Date.now();
          return;
        }
        const length = Atomics.load(this.beat, 1);
        // a hang detector, not a timing test: seconds, plus 10 ms per KiB of input
        if (Date.now() - lastChange > HANG_MS + length / 100) {
          done();
          const input = new Uint8Array(this.shared, 16, Math.min(length, SHARED_INPUT_BYTES)).slice();
          mkdirSync(OUT, { recursive: true });
          const file = path.join(OUT, `${request.target}-hang-${Date.now()}.bin`);
          writeFileSync(file, input);
          void this.worker.terminate();
          reject(
            new Error(
              `${request.target}: a parse made no progress for ${HANG_MS} ms; its input is in ${file}`,
            ),
          );
        }
      }, 250);
      const done = () => {
        clearInterval(watchdog);
        this.worker.off('message', onMessage);
        this.worker.off('error', onError);
      };
      const onMessage = (report: FuzzReport) => {
        done();
        resolve(report);
      };
      const onError = (error: Error) => {
        done();
        reject(error);
      };
      this.worker.on('message', onMessage);
      this.worker.on('error', onError);
      this.worker.postMessage(request);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** Runs the requests on a few workers at once (a hung worker is replaced). */
function runAll(requests: FuzzRequest[]): Map<string, Promise<FuzzReport>> {
  const results = new Map<string, Promise<FuzzReport>>();
  const queue = requests.map((request) => {
    let settle!: { resolve: (r: FuzzReport) => void; reject: (e: unknown) => void };
    const promise = new Promise<FuzzReport>((resolve, reject) => {
      settle = { resolve, reject };
    });
    promise.catch(() => undefined); // awaited by its test
    results.set(`${request.kind}:${request.target}`, promise);
    return { request, settle };
  });
  const lanes = Math.max(1, Math.min(2, availableParallelism()));
  for (let lane = 0; lane < lanes; lane++) {
    void (async () => {
      let worker = new FuzzWorker();
      for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
        try {
          job.settle.resolve(await worker.run(job.request));
        } catch (error) {
          job.settle.reject(error);
          await worker.close().catch(() => undefined);
          worker = new FuzzWorker();
        }
      }
      await worker.close();
    })();
  }
  return results;
}

function describeFailures(report: FuzzReport): string {
  mkdirSync(OUT, { recursive: true });
  return report.failures
    .map((failure, i) => {
      const file = failure.file ?? path.join(OUT, `${report.target}-failure-${i}.bin`);
      if (!failure.file) writeFileSync(file, Buffer.from(failure.input, 'base64'));
      return `  ${file}: ${failure.error}`;
    })
    .join('\n');
}

/** The fixtures: everything in the folder but its README and the script that writes them. */
const regressionFiles = readdirSync(REGRESSIONS)
  .filter((name) => name !== 'README.md' && !name.startsWith('make_regressions.'))
  .map((name) => path.join(REGRESSIONS, name));

/**
 * Parsers with a known bug in a file this suite's owner does not maintain: their fuzz and replay
 * tests report as TODO (still run, not failed) until the fix lands; then delete the entry.
 */
const PENDING_FIXES: Record<string, string> = {};

describe('fuzzing the parsers', () => {
  let results: Map<string, Promise<FuzzReport>>;
  before(() => {
    const requests: FuzzRequest[] = FUZZ_TARGETS.map((target, i) => ({
      kind: 'fuzz',
      target: target.name,
      runs: RUNS,
      seed: SEED + i,
    }));
    for (const target of FUZZ_TARGETS) {
      const files = regressionFiles.filter((file) => targetOfFixture(file) === target);
      if (files.length > 0) requests.unshift({ kind: 'replay', target: target.name, files });
    }
    results = runAll(requests);
  });

  it('every regression fixture belongs to a parser of the table', () => {
    assert.ok(regressionFiles.length > 0, 'test/fixtures/regressions/ holds no fixture');
    for (const file of regressionFiles)
      assert.ok(targetOfFixture(file), `${file}: no parser named by its prefix`);
  });

  for (const target of FUZZ_TARGETS) {
    if (regressionFiles.some((file) => targetOfFixture(file) === target)) {
      it(`${target.name}: replays its regression fixtures`, {
        todo: PENDING_FIXES[target.name],
      }, async (t) => {
        const report = await results.get(`replay:${target.name}`)!;
        t.diagnostic(`${report.cases} fixtures in ${Math.round(report.ms)} ms`);
        assert.equal(report.failures.length, 0, `\n${describeFailures(report)}`);
      });
    }
    it(`${target.name}: truncated and mutated files parse or raise EcpruneError`, {
      todo: PENDING_FIXES[target.name],
    }, async (t) => {
      const report = await results.get(`fuzz:${target.name}`)!;
      if (report.skipped) return t.skip(report.skipped);
      const most = report.mostAllocated;
      t.diagnostic(
        `${report.cases} cases in ${Math.round(report.ms)} ms; the most one case allocated: ${most.bytes} bytes for ${most.inputBytes} input bytes`,
      );
      assert.equal(report.failures.length, 0, `\n${describeFailures(report)}`);
    });
  }
});
