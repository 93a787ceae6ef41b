/**
 * The one error type the library throws for problems with its inputs.
 *
 * `code` says what kind of problem it is (the CLI maps `usage` and `input` to exit code 2 and
 * everything else to 1); `file` and `where` say where it was found, so that the message printed
 * for a user is one line naming the file and the place: `model.onnx: node 'Gemm_3': op 'Conv' is
 * not supported`.
 */
export type EcpruneErrorCode =
  | 'usage' // a bad option or argument
  | 'input' // a file or value that cannot be used (corrupt, wrong shape, NaN ...)
  | 'unsupported' // a valid file that uses something ecprune does not handle
  | 'limit' // the work would exceed a resource limit (memory)
  | 'io' // the file system refused (missing file, permission, disk full)
  | 'internal'; // a bug in ecprune

export class EcpruneError extends Error {
  override readonly name = 'EcpruneError';
  constructor(
    readonly code: EcpruneErrorCode,
    readonly detail: string,
    readonly file?: string,
    readonly where?: string,
  ) {
    super([file, where, detail].filter((part) => part !== undefined && part !== '').join(': '));
  }

  /** The same error, attributed to `file` (used where a parser learns the file name late). */
  inFile(file: string): EcpruneError {
    return this.file === undefined ? new EcpruneError(this.code, this.detail, file, this.where) : this;
  }
}

/** Shorthand for the most common case: a file whose content cannot be used. */
export function badInput(detail: string, file?: string, where?: string): EcpruneError {
  return new EcpruneError('input', detail, file, where);
}
