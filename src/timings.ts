/** Milliseconds spent per phase (`forward`, `sensitivity`, `statistics`, `select`, ...), summed. */
export type PhaseTimings = Record<string, number>;

/** Runs `work`, adding its duration to `timings[phase]` when timings are being collected. */
export async function timePhase<T>(
  timings: PhaseTimings | undefined,
  phase: string,
  work: () => Promise<T> | T,
): Promise<T> {
  if (timings === undefined) return work();
  const start = performance.now();
  try {
    return await work();
  } finally {
    timings[phase] = (timings[phase] ?? 0) + performance.now() - start;
  }
}
