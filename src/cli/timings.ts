import type { PhaseTimings } from '../timings.js';

/**
 * The phases of `score` and `prune`. With the graph (the default on onnxruntime) `compile` is
 * building the graph's onnxruntime session, and forward, sensitivity and statistics run fused and
 * are booked as `statistics` (`forward` is then the short run for the shift c); `--no-graph`
 * times them apart.
 */
export const CALIBRATION_PHASES = [
  'load',
  'compile',
  'forward',
  'sensitivity',
  'statistics',
  'select',
  'write',
] as const;

/**
 * The `--timings` clock of a command: `lap(phase)` books the time since the previous lap,
 * library calls add their own phases to `phases`, `print()` writes one JSON line to stderr:
 * {"load":12.1,"forward":80.3,...,"total":401.2} (milliseconds).
 */
export function startClock(phaseNames: readonly string[] = []) {
  const start = performance.now();
  let last = start;
  // the listed phases are always printed (0 when a run had none), so the line's keys do not vary
  const phases: PhaseTimings = Object.fromEntries(phaseNames.map((phase) => [phase, 0]));
  return {
    phases,
    lap(phase: string) {
      const now = performance.now();
      phases[phase] = (phases[phase] ?? 0) + now - last;
      last = now;
    },
    /** the time since the last lap was booked by a library call's own phases */
    skip() {
      last = performance.now();
    },
    print() {
      const rounded = Object.fromEntries(
        Object.entries(phases).map(([k, v]) => [k, Math.round(v * 10) / 10]),
      );
      console.error(JSON.stringify({ ...rounded, total: Math.round((performance.now() - start) * 10) / 10 }));
    },
  };
}
