/**
 * Pivots a sweep's results.json into the compact markdown tables of docs/RESULTS.md: one row per
 * method, one column per sparsity, a table per fine-tuning length and scope.
 * Usage: npx tsx scripts/results-summary.ts reports/study/mnist [--metric loss|accuracy|mse|output]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface Row {
  method: string;
  scope: string;
  sparsity: number;
  finetuneEpochs: number;
  seed?: number;
  testLoss: number;
  accuracy?: number;
  outputMse: number;
}

const [folder, ...rest] = process.argv.slice(2);
if (!folder) {
  console.error(
    'usage: npx tsx scripts/results-summary.ts <report folder> [--metric loss|accuracy|mse|output]',
  );
  process.exit(2);
}
const metricIndex = rest.indexOf('--metric');
const results = JSON.parse(readFileSync(path.join(folder, 'results.json'), 'utf8')) as {
  command: string;
  model: string;
  rows: Row[];
};
const rows = results.rows.filter((r) => r.seed === undefined); // random: only the mean row
const classification = rows.some((r) => r.accuracy !== undefined);
const metrics =
  metricIndex >= 0 ? [rest[metricIndex + 1]] : classification ? ['loss', 'accuracy'] : ['mse', 'output'];

const format = (row: Row | undefined, metric: string): string => {
  if (!row) return '';
  if (metric === 'accuracy') return `${(100 * row.accuracy!).toFixed(2)}`;
  if (metric === 'output') return row.outputMse.toPrecision(3);
  return row.testLoss.toPrecision(4);
};
const label: Record<string, string> = {
  loss: 'test loss (cross-entropy)',
  accuracy: 'test accuracy (%)',
  mse: 'test MSE',
  output: 'output MSE against the dense network (test set)',
};

const dense = rows.find((r) => r.method === 'dense')!;
const sparsities = [...new Set(rows.filter((r) => r.method !== 'dense').map((r) => r.sparsity))].sort(
  (a, b) => a - b,
);
const methods = [...new Set(rows.filter((r) => r.method !== 'dense').map((r) => r.method))];
const out: string[] = [
  `Model: ${results.model}. Dense: ${format(dense, metrics[0])}${metrics[1] ? ` / ${format(dense, metrics[1])}` : ''}.`,
  '',
];
for (const scope of [...new Set(rows.map((r) => r.scope))]) {
  for (const epochs of [...new Set(rows.map((r) => r.finetuneEpochs))].sort((a, b) => a - b)) {
    for (const metric of metrics) {
      const title = `${label[metric]}, ${scope} scope, ${epochs === 0 ? 'one-shot (no fine-tuning)' : `after ${epochs} epoch${epochs > 1 ? 's' : ''} of fine-tuning`}`;
      out.push(`**${title}**`, '');
      out.push(`| method | ${sparsities.map((s) => `${Math.round(100 * s)} %`).join(' | ')} |`);
      out.push(`| :--- | ${sparsities.map(() => '---:').join(' | ')} |`);
      for (const method of methods) {
        const cells = sparsities.map((s) =>
          format(
            rows.find(
              (r) =>
                r.method === method &&
                r.sparsity === s &&
                r.scope === scope &&
                // dense-small is trained once per sparsity, not fine-tuned
                (method === 'dense-small' || r.finetuneEpochs === epochs),
            ),
            metric,
          ),
        );
        if (cells.some((c) => c !== '')) out.push(`| ${method} | ${cells.join(' | ')} |`);
      }
      out.push('');
    }
  }
}
out.push(`Reproduce: \`${results.command}\``);
console.log(out.join('\n'));
