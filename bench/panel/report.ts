/**
 * docs/PANEL.md from the panel's results: per method × sparsity the median rank and the win rates
 * against magnitude, OBD, gradmag and OBS on held-out loss and accuracy; the choice of the default
 * recipe by the rule of issue #14; the goal per classifier; and the per-model tables.
 */
import type { PanelRow } from './run.js';

export interface PanelModelResult {
  readonly name: string;
  readonly task: 'classification' | 'regression';
  readonly data: string;
  readonly recipe: string;
  /** per method (and `dense`), one row per sparsity */
  readonly results: Record<string, PanelRow[]>;
}

export interface PanelResults {
  models: PanelModelResult[];
  methods: string[];
  sparsities: number[];
  seconds: number;
  command: string;
}

const BASELINES = ['magnitude', 'obd', 'gradmag', 'obs'];
/** Recipes that change surviving weights are not candidates for the bias-only default. */
const NOT_BIAS_ONLY = new Set(['obs']);
/** The rule: lose at most this many accuracy points (median over classifiers) to magnitude ... */
const MAX_ACCURACY_LOSS = 1;
/** ... at every sparsity up to this one. */
const RULE_MAX_SPARSITY = 0.9;

function rowOf(model: PanelModelResult, method: string, sparsity: number): PanelRow | undefined {
  const row = model.results[method]?.find((r) => r.sparsity === sparsity);
  return row && row.loss !== undefined ? row : undefined;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Ranks (1 = best, ties share the mean rank) of the methods that have a value. */
function ranks(values: Map<string, number>, higherIsBetter: boolean): Map<string, number> {
  const sorted = [...values.entries()].sort((a, b) => (higherIsBetter ? b[1] - a[1] : a[1] - b[1]));
  const out = new Map<string, number>();
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1][1] === sorted[i][1]) j++;
    for (let k = i; k <= j; k++) out.set(sorted[k][0], (i + j) / 2 + 1);
    i = j + 1;
  }
  return out;
}

interface MethodSummary {
  lossRank: number;
  accuracyRank: number;
  /** per baseline: [wins, models compared] on loss and on accuracy */
  lossWins: Record<string, [number, number]>;
  accuracyWins: Record<string, [number, number]>;
  /** median accuracy difference to magnitude over the classifiers, in points */
  accuracyVsMagnitude: number;
}

function summarise(results: PanelResults, method: string, sparsity: number): MethodSummary {
  const lossRanks: number[] = [];
  const accuracyRanks: number[] = [];
  const lossWins: Record<string, [number, number]> = {};
  const accuracyWins: Record<string, [number, number]> = {};
  const accuracyDifferences: number[] = [];
  for (const model of results.models) {
    const losses = new Map<string, number>();
    const accuracies = new Map<string, number>();
    for (const m of results.methods) {
      const row = rowOf(model, m, sparsity);
      if (row?.loss !== undefined) losses.set(m, row.loss);
      if (row?.accuracy !== undefined) accuracies.set(m, row.accuracy);
    }
    const own = rowOf(model, method, sparsity);
    if (!own) continue;
    lossRanks.push(ranks(losses, false).get(method)!);
    if (own.accuracy !== undefined) accuracyRanks.push(ranks(accuracies, true).get(method)!);
    for (const baseline of BASELINES) {
      const other = rowOf(model, baseline, sparsity);
      if (!other || baseline === method) continue;
      lossWins[baseline] ??= [0, 0];
      lossWins[baseline][0] += own.loss! < other.loss! ? 1 : 0;
      lossWins[baseline][1]++;
      if (own.accuracy !== undefined && other.accuracy !== undefined) {
        accuracyWins[baseline] ??= [0, 0];
        accuracyWins[baseline][0] += own.accuracy > other.accuracy ? 1 : 0;
        accuracyWins[baseline][1]++;
        if (baseline === 'magnitude') accuracyDifferences.push(100 * (own.accuracy - other.accuracy));
      }
    }
  }
  return {
    lossRank: median(lossRanks),
    accuracyRank: median(accuracyRanks),
    lossWins,
    accuracyWins,
    accuracyVsMagnitude: method === 'magnitude' ? 0 : median(accuracyDifferences),
  };
}

/** The goal of issue #14 on one classifier at one sparsity: CE below magnitude's, accuracy within 2 points. */
function goalHolds(model: PanelModelResult, method: string, sparsity: number): boolean | undefined {
  const own = rowOf(model, method, sparsity);
  const magnitude = rowOf(model, 'magnitude', sparsity);
  if (!own || !magnitude || own.accuracy === undefined || magnitude.accuracy === undefined) return undefined;
  return own.loss! < magnitude.loss! && own.accuracy >= magnitude.accuracy - 0.02;
}

/** [cases where the goal holds, cases] over the classifiers at 80 % and 90 %. */
function goalCount(results: PanelResults, method: string): [number, number] {
  const cases = results.models.flatMap((m) => [0.8, 0.9].map((s) => goalHolds(m, method, s)));
  const measured = cases.filter((c) => c !== undefined);
  return [measured.filter((c) => c).length, measured.length];
}

/** Median loss rank over every model and sparsity (the rule's ranking). */
function overallLossRank(results: PanelResults, method: string): number {
  const all: number[] = [];
  for (const model of results.models) {
    for (const sparsity of results.sparsities) {
      const losses = new Map<string, number>();
      for (const m of results.methods) {
        const row = rowOf(model, m, sparsity);
        if (row?.loss !== undefined) losses.set(m, row.loss);
      }
      const rank = ranks(losses, false).get(method);
      if (rank !== undefined) all.push(rank);
    }
  }
  return median(all);
}

const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '–');
const wins = (w?: [number, number]) => (w ? `${w[0]}/${w[1]}` : '–');

export function renderPanel(
  results: PanelResults,
  libraryDefault: string,
): { markdown: string; chosen: string } {
  const { methods, sparsities } = results;
  const classifiers = results.models.filter((m) => m.task === 'classification');
  const lines: string[] = [];
  const out = (line = '') => lines.push(line);

  // the default by the rule of issue #14
  const candidates = methods
    .filter((m) => !NOT_BIAS_ONLY.has(m))
    .map((m) => ({
      method: m,
      rank: overallLossRank(results, m),
      worst: Math.min(
        ...sparsities
          .filter((s) => s <= RULE_MAX_SPARSITY)
          .map((s) => summarise(results, m, s).accuracyVsMagnitude),
      ),
    }))
    .sort((a, b) => a.rank - b.rank);
  const eligible = candidates.filter((c) => c.worst >= -MAX_ACCURACY_LOSS);
  const chosen = (eligible[0] ?? candidates[0]).method;

  out('# The panel of models');
  out();
  out(
    `${results.models.length} networks (${classifiers.length} classifiers, ${results.models.length - classifiers.length} regressions), ` +
      'trained with PyTorch as users train them and exported with `torch.onnx.export` ' +
      '(bench/panel/train_panel.py), each pruned with 1,000 calibration samples of its training data ' +
      'and measured on held-out test data (cross-entropy and accuracy for classifiers, MSE for regressions).',
  );
  out(
    'Only gradmag and the `loss` variants use the calibration labels; every other method uses the inputs alone.',
  );
  out();
  const totalMs = results.models
    .flatMap((m) => Object.values(m.results).flat())
    .reduce((sum, r) => sum + (r.ms ?? 0), 0);
  out(
    `Command: \`${results.command}\` (this run: ${results.seconds} s wall time, cached networks and results reused; ` +
      `pruning time summed over all rows: ${Math.round(totalMs / 1000)} s; 2-core shared machine).`,
  );
  out();
  out('## The default');
  out();
  out(
    `Rule (issue #14): among the bias-only recipes, the best median held-out loss rank over all models and sparsities, ` +
      `among those whose median accuracy loss to magnitude over the classifiers is at most ${MAX_ACCURACY_LOSS} point at every sparsity up to ${100 * RULE_MAX_SPARSITY} %.`,
  );
  out();
  out(
    '| recipe | median loss rank | worst median accuracy vs magnitude, ≤ 90 % (points) | eligible | goal holds (classifiers, 80/90 %) |',
  );
  out('|---|---:|---:|---|---:|');
  for (const c of candidates)
    out(
      `| ${c.method} | ${fmt(c.rank)} | ${fmt(c.worst)} | ${c.worst >= -MAX_ACCURACY_LOSS ? 'yes' : 'no'} | ${wins(goalCount(results, c.method))} |`,
    );
  out();
  out(
    eligible.length > 0
      ? `Chosen: **${chosen}**. The library's and the CLI's default: **${libraryDefault}**${chosen === libraryDefault ? '' : ' (differs: update DEFAULT_RECIPE)'}.`
      : `No recipe meets the rule; the best by loss rank is **${chosen}**. The library's and the CLI's default: **${libraryDefault}**.`,
  );
  out();

  out('## The goal per classifier: the default vs magnitude at 80 % and 90 %');
  out();
  out(
    `Goal: held-out cross-entropy below magnitude's and accuracy within 2 points. Recipe: ${libraryDefault}.`,
  );
  out();
  out('| model | sparsity | CE default | CE magnitude | acc default | acc magnitude | holds |');
  out('|---|---:|---:|---:|---:|---:|---|');
  let holds = 0;
  let cases = 0;
  for (const model of classifiers) {
    for (const sparsity of [0.8, 0.9]) {
      const own = rowOf(model, libraryDefault, sparsity);
      const magnitude = rowOf(model, 'magnitude', sparsity);
      const ok = goalHolds(model, libraryDefault, sparsity);
      if (!own || !magnitude || ok === undefined) continue;
      cases++;
      holds += ok ? 1 : 0;
      out(
        `| ${model.name} | ${100 * sparsity} % | ${fmt(own.loss!, 3)} | ${fmt(magnitude.loss!, 3)} | ${fmt(100 * own.accuracy!, 2)} | ${fmt(100 * magnitude.accuracy!, 2)} | ${ok ? 'yes' : 'no'} |`,
      );
    }
  }
  out();
  out(`Holds in ${holds} of ${cases} cases.`);
  out();

  out('## Per method and sparsity');
  out();
  out(
    'Median rank among all methods on held-out loss (and accuracy, classifiers), the median accuracy difference to ' +
      'magnitude (points, classifiers), and wins (strictly better) / models against each baseline on held-out loss, then accuracy.',
  );
  for (const sparsity of sparsities) {
    out();
    out(`### ${100 * sparsity} %`);
    out();
    out(
      `| method | loss rank | acc rank | acc − magnitude | ${BASELINES.map((b) => `loss vs ${b}`).join(' | ')} | ${BASELINES.map((b) => `acc vs ${b}`).join(' | ')} |`,
    );
    out(
      `|---|---:|---:|---:|${BASELINES.map(() => '---:|').join('')}${BASELINES.map(() => '---:|').join('')}`,
    );
    for (const method of methods) {
      const s = summarise(results, method, sparsity);
      out(
        `| ${method} | ${fmt(s.lossRank)} | ${fmt(s.accuracyRank)} | ${fmt(s.accuracyVsMagnitude)} | ${BASELINES.map((b) => wins(s.lossWins[b])).join(' | ')} | ${BASELINES.map((b) => wins(s.accuracyWins[b])).join(' | ')} |`,
      );
    }
  }
  out();

  out('## Per model');
  out();
  out(
    'Held-out loss (CE or MSE), and accuracy in % for classifiers; `–`: the method does not apply (OBS needs a chain).',
  );
  for (const model of results.models) {
    const dense = model.results.dense?.[0];
    out();
    out(`### ${model.name} (${model.data}: ${model.recipe})`);
    out();
    out(
      `Dense: loss ${fmt(dense?.loss ?? Number.NaN, 4)}${dense?.accuracy === undefined ? '' : `, accuracy ${fmt(100 * dense.accuracy, 2)} %`}.`,
    );
    out();
    out(`| method | ${sparsities.map((s) => `${100 * s} %`).join(' | ')} |`);
    out(`|---|${sparsities.map(() => '---:|').join('')}`);
    for (const method of methods) {
      const cells = sparsities.map((s) => {
        const row = rowOf(model, method, s);
        if (!row) return '–';
        return row.accuracy === undefined
          ? fmt(row.loss!, 5)
          : `${fmt(row.loss!, 3)} / ${fmt(100 * row.accuracy, 1)}`;
      });
      out(`| ${method} | ${cells.join(' | ')} |`);
    }
  }
  return { markdown: `${lines.join('\n')}\n`, chosen };
}
