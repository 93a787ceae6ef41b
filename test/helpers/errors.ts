import assert from 'node:assert/strict';
import { EcpruneError } from '../../src/errors.js';

/**
 * For `assert.throws`/`assert.rejects`: an EcpruneError of `code` attributed to `file` (and
 * mentioning `text`, when given).
 */
export function failsWith(code: string, file: string | undefined, text?: string) {
  return (error: unknown) => {
    assert.ok(error instanceof EcpruneError, `expected EcpruneError, got ${error}`);
    assert.equal(error.code, code, error.message);
    assert.equal(error.file, file);
    if (text !== undefined) assert.match(error.message, new RegExp(text));
    return true;
  };
}
