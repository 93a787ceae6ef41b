import cliProgress from 'cli-progress';

/** A progress callback `(done, total)` plus `stop()`; drawn only on an interactive terminal. */
export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

const silent: Progress = { update() {}, stop() {} };

/**
 * A bar on stderr with ETA, e.g. `statistics |████░░░░| 40% 4000/10000 samples eta 3s`.
 * Quiet when stderr is not a TTY (pipes, CI logs) or with --quiet, so logs stay clean.
 */
export function progressBar(label: string, unit: string, quiet = false): Progress {
  if (quiet || !process.stderr.isTTY) return silent;
  let bar: cliProgress.SingleBar | undefined;
  return {
    update(done, total) {
      if (bar === undefined) {
        bar = new cliProgress.SingleBar(
          {
            format: `${label.padEnd(12)} |{bar}| {percentage}% {value}/{total} ${unit} eta {eta_formatted}`,
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: true,
            etaBuffer: 50,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0);
      }
      bar.setTotal(total);
      bar.update(done);
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
