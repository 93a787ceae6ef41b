/**
 * A CLI command line: the command, its positional arguments, then the options in the order given.
 * A one-letter key is a short option (`o` → `-o`), any other a long one (`calib` → `--calib`);
 * `true` is a flag without a value.
 */
export function commandLine(
  command: string,
  positional: readonly string[],
  options: Readonly<Record<string, string | true>> = {},
): string[] {
  const argv = [command, ...positional];
  for (const [key, value] of Object.entries(options)) {
    argv.push(key.length === 1 ? `-${key}` : `--${key}`);
    if (value !== true) argv.push(value);
  }
  return argv;
}
