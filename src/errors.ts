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

/**
 * The options messages name, each in the library's words and as the command-line flag. A message
 * writes `option('force')`; the library's error reads "the `force` option", and the CLI prints
 * the same error with "--force" (`messageWithFlags`), so each speaks its own user's terms.
 */
export const OPTIONS = {
  force: { library: 'the `force` option', flag: '--force' },
  arch: { library: 'the `arch` option', flag: '--arch' },
  loss: { library: 'the `loss` option', flag: '--loss' },
  calibrationLabels: { library: "the calibration Dataset's targets", flag: '--calib-labels' },
  labels: { library: "the test Dataset's targets", flag: '--labels' },
  data: { library: 'openDataFile', flag: '--data' },
  noGraph: { library: 'withoutGraphs(gemm)', flag: '--no-graph' },
  nonlinearSamples: { library: 'the `nonlinearSamples` option', flag: '--nonlinear-samples' },
  structureWeight: { library: "`structure: 'weight'`", flag: '--structure weight' },
  exclude: { library: 'the `exclude` option', flag: '--exclude' },
  layerSparsity: { library: 'the `layerSparsity` option', flag: '--layer-sparsity' },
  maxLossIncrease: { library: 'the `maxLossIncrease` option', flag: '--max-loss-increase' },
  minAccuracy: { library: 'the `minAccuracy` option', flag: '--min-accuracy' },
  heldOut: { library: 'the held-out Dataset', flag: '--data' },
} as const;

export type OptionName = keyof typeof OPTIONS;

/** An option named in an error message (see `OPTIONS`). */
export function option(name: OptionName): string {
  return `\u2039${name}\u203a`;
}

const OPTION_TOKEN = /\u2039([A-Za-z]+)\u203a/g;

function renderOptions(text: string, form: 'library' | 'flag'): string {
  return text.replace(OPTION_TOKEN, (token, name: string) => OPTIONS[name as OptionName]?.[form] ?? token);
}

/** A library message (a warning) as the command line says it: options named by their flags. */
export function withFlags(text: string): string {
  return renderOptions(text, 'flag');
}

export class EcpruneError extends Error {
  override readonly name = 'EcpruneError';
  constructor(
    readonly code: EcpruneErrorCode,
    readonly detail: string,
    readonly file?: string,
    readonly where?: string,
  ) {
    super(
      renderOptions(
        [file, where, detail].filter((part) => part !== undefined && part !== '').join(': '),
        'library',
      ),
    );
  }

  /** The message as the command line says it: options named by their flags. */
  messageWithFlags(): string {
    return renderOptions(
      [this.file, this.where, this.detail].filter((part) => part !== undefined && part !== '').join(': '),
      'flag',
    );
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

/** The most characters of a file's content an error message quotes. */
const QUOTE_LIMIT = 80;

/**
 * `value` (a name, a shape, any JSON value taken from a file) as it is quoted in an error message:
 * JSON-escaped, and cut after `limit` characters with `…`, so that a hostile file can make neither
 * a long message nor a deep recursion (nesting is followed only while there is room to print it).
 */
export function quote(value: unknown, limit = QUOTE_LIMIT): string {
  let out = '';
  const put = (item: unknown): void => {
    if (out.length > limit) return;
    if (Array.isArray(item)) {
      out += '[';
      for (let i = 0; i < item.length && out.length <= limit; i++) {
        if (i > 0) out += ', ';
        put(item[i]);
      }
      out += ']';
    } else if (typeof item === 'object' && item !== null) {
      out += '{';
      let first = true;
      for (const key in item) {
        if (out.length > limit) break;
        if (!first) out += ', ';
        first = false;
        out += `${JSON.stringify(key.slice(0, limit + 1))}: `;
        put((item as Record<string, unknown>)[key]);
      }
      out += '}';
    } else if (typeof item === 'string') out += JSON.stringify(item.slice(0, limit + 1));
    else out += String(item);
  };
  put(value);
  return out.length > limit ? `${out.slice(0, limit)}…` : out;
}
