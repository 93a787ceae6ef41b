import { EcpruneError } from '../errors.js';
import { isFsError } from '../node/files.js';

/** Exit codes: 0 success, 2 bad usage or bad input, 1 anything else (a bug), 130 interrupted. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof EcpruneError) return error.code === 'internal' ? 1 : 2;
  if (isFsError(error)) return 2;
  return 1;
}

/** One line for the user; the stack trace only with --debug. */
export function describeError(error: unknown, debug: boolean): string {
  if (debug && error instanceof Error && error.stack) return error.stack;
  if (error instanceof EcpruneError) return `ecprune: ${error.message}`;
  const message = error instanceof Error ? error.message : String(error);
  return `ecprune: internal error: ${message.split('\n')[0]} (run with --debug for details)`;
}
