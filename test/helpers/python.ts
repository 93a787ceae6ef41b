import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian's Python (the one with python3-numpy / python3-torch), never a pyenv one on PATH. */
export const PYTHON = '/usr/bin/python3';

/**
 * Why a test that runs `PYTHON` with `modules` must be skipped here, or undefined when it can run.
 * The tests read committed fixtures made by these modules; only the checks that a file ecprune
 * writes is read by the real consumer need them live (.ci/run installs them).
 */
export function pythonMissing(...modules: string[]): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is not installed`;
  if (modules.length === 0) return undefined;
  const probe = spawnSync(PYTHON, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
  return probe.status === 0
    ? undefined
    : `${PYTHON} cannot import ${modules.join(', ')} (apt-get install ${modules.map((m) => `python3-${m}`).join(' ')})`;
}
