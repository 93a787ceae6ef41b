import { EcpruneError } from '../errors.js';
import { ioError, isFsError } from '../node/files.js';

/** Exit codes: 0 success, 2 bad usage or bad input, 1 anything else (a bug), 130 interrupted. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof EcpruneError) return error.code === 'internal' ? 1 : 2;
  if (isFsError(error)) return 2;
  return 1;
}

/** The longest line an error prints: messages quote at most a short piece of any input (`quote`), so this only guards the rest. */
const MAX_LINE = 1000;

/**
 * `text` on one line: line breaks, tabs and other control characters (which messages quoting a
 * corrupt file's names or text, or an option's value, can contain) are written as escapes (`\n`,
 * `\u001b`), and a text longer than `MAX_LINE` is cut.
 */
export function oneLine(text: string): string {
  const cut =
    text.length > MAX_LINE ? `${text.slice(0, MAX_LINE)}… (${text.length - MAX_LINE} more characters)` : text;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it escapes
  return cut.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** One line for the user; the stack trace only with --debug. */
export function describeError(error: unknown, debug: boolean): string {
  if (debug && error instanceof Error && error.stack) return error.stack;
  if (error instanceof EcpruneError) return `ecprune: ${oneLine(error.messageWithFlags())}`;
  // a file-system error that was not wrapped where it happened: still the user's file, not a bug
  if (isFsError(error)) return `ecprune: ${oneLine(ioError(error, error.path ?? '').message)}`;
  const message = error instanceof Error ? error.message : String(error);
  return `ecprune: internal error: ${oneLine(message.split('\n')[0])} (run with --debug for details)`;
}
