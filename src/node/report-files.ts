/**
 * Writes a study's report folder: results.json, results.csv, report.html, charts/<name>.svg and
 * charts/<name>.png. Each file is written atomically; a folder that already holds files is only
 * written into with `force`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { EcpruneError, option } from '../errors.js';
import type { SweepRow } from '../pipeline/sweep.js';
import { renderCharts } from '../report/charts.js';
import { reportHtml } from '../report/html.js';
import { type ReportInfo, resultsCsv, resultsJson } from '../report/results.js';
import { markdownTable } from '../report/table.js';
import { checkOutputPath, ensureParentDir, ioError, isFsError, writeOutputAtomic } from './files.js';

export interface ReportFolderOptions {
  /** write into a folder that is not empty, replacing files of the same names */
  readonly force?: boolean;
  /** files the run read: never written over */
  readonly inputs?: readonly string[];
}

/** The files written, relative to the folder. */
export const REPORT_FILES = ['results.json', 'results.csv', 'results.md', 'report.html'] as const;

/**
 * Chart SVG to PNG at twice the size. Text is drawn with the system's fonts (DejaVu Sans or
 * Liberation Sans on Debian); without any installed font the PNGs have no text, the SVGs do.
 */
export function svgToPng(svg: string): Uint8Array {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}

/**
 * Before any work: the folder is empty (or `force`), holds none of the inputs (its chart names are
 * only known at the end, so an input anywhere in it is refused), and can be created and written.
 */
export async function checkReportFolder(folder: string, options: ReportFolderOptions = {}): Promise<void> {
  const entries = await readdir(folder).catch((error) => {
    if (isFsError(error) && (error.code === 'ENOENT' || error.code === 'ENOTDIR')) return [];
    throw isFsError(error) ? ioError(error, folder) : error;
  });
  if (entries.length > 0 && !options.force) {
    throw new EcpruneError(
      'usage',
      `the report folder is not empty (use ${option('force')} to write into it)`,
      folder,
    );
  }
  const realFolder = await realpath(folder).catch(() => undefined);
  for (const input of options.inputs ?? []) {
    const realInput = await realpath(input).catch(() => undefined);
    if (
      realFolder !== undefined &&
      realInput !== undefined &&
      !path.relative(realFolder, realInput).startsWith('..')
    ) {
      throw new EcpruneError(
        'usage',
        `holds an input (${input}): refusing to write the report over it`,
        folder,
      );
    }
  }
  await checkOutputPath(path.join(folder, REPORT_FILES[0]), { force: true });
}

export async function isReportFolder(folder: string): Promise<boolean> {
  const entries = await readdir(folder).catch(() => [] as string[]);
  return REPORT_FILES.every((file) => entries.includes(file));
}

/**
 * Renders and writes the whole report; returns the path of report.html. A folder that does not
 * exist yet is written as a temp folder next to it and renamed into place when complete, so a
 * failed run (disk full, an error while rendering) leaves no half report and no folder it created;
 * an existing folder (empty, or with `force`) is written file by file, each atomically.
 */
export async function writeReportFolder(
  folder: string,
  rows: readonly SweepRow[],
  info: ReportInfo,
  options: ReportFolderOptions = {},
): Promise<string> {
  await checkReportFolder(folder, options);
  const exists = await stat(folder).then(
    () => true,
    () => false,
  );
  if (exists) {
    await writeReportFiles(folder, rows, info, options);
    return path.join(folder, 'report.html');
  }
  const created = await ensureParentDir(folder);
  const temp = path.join(
    path.dirname(folder),
    `.${path.basename(folder)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  try {
    await writeReportFiles(temp, rows, info, {});
    await rename(temp, folder).catch((error) => {
      throw isFsError(error) ? ioError(error, folder, 'write') : error;
    });
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    if (created !== undefined) await rm(created, { recursive: true, force: true });
    throw error;
  }
  return path.join(folder, 'report.html');
}

async function writeReportFiles(
  folder: string,
  rows: readonly SweepRow[],
  info: ReportInfo,
  options: ReportFolderOptions,
): Promise<void> {
  const chartsFolder = path.join(folder, 'charts');
  try {
    await mkdir(chartsFolder, { recursive: true });
  } catch (error) {
    throw isFsError(error) ? ioError(error, chartsFolder, 'create folder') : error;
  }
  const charts = await renderCharts(rows, {
    layerShapes: info.layerShapes,
    evaluatedOn: { name: info.data, heldOut: info.heldOut ?? true },
  });
  const write = (file: string, content: Uint8Array | string) =>
    writeOutputAtomic(path.join(folder, file), content, { force: options.force, inputs: options.inputs });
  await write('results.json', resultsJson(rows, info));
  await write('results.csv', resultsCsv(rows));
  // the table in markdown, with the command that made it, ready for docs/RESULTS.md
  await write('results.md', `${markdownTable(rows)}\n\nReproduce: \`${info.command}\`\n`);
  for (const chart of charts) {
    await write(path.join('charts', `${chart.name}.svg`), chart.svg);
    await write(path.join('charts', `${chart.name}.png`), svgToPng(chart.svg));
  }
  await write('report.html', reportHtml({ rows, info, charts }));
}
