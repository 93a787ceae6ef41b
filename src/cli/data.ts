import { type Dataset, firstSamples } from '../data/dataset.js';
import { EcpruneError } from '../errors.js';
import { openDataFile, openNamedDataset, type Split } from '../node/datasets.js';

export interface DataChoice {
  /** a data file (.npy, .npz, .csv, IDX) */
  readonly file?: string;
  /** its targets (class ids or values), when they are in a separate file */
  readonly labels?: string;
  /** a built-in data set instead of a file: mnist, fashion-mnist, diffusion-sorption */
  readonly dataset?: string;
  /** which part of a built-in data set */
  readonly split: Split;
  /** use only the first n samples */
  readonly samples?: number;
  readonly labelColumn?: string;
  readonly key?: string;
}

/** The files a choice reads (so that no output is ever written over one of them). */
export function inputFiles(choice: Partial<DataChoice>): string[] {
  return [choice.file, choice.labels].filter((f): f is string => f !== undefined);
}

export async function openData(choice: DataChoice, what: string): Promise<Dataset> {
  if ((choice.file === undefined) === (choice.dataset === undefined)) {
    throw new EcpruneError('usage', `give the ${what} data as a file or as --dataset NAME (one of the two)`);
  }
  if (choice.dataset !== undefined && choice.labels !== undefined) {
    throw new EcpruneError('usage', `--dataset ${choice.dataset} has its own labels; drop --labels`);
  }
  const data =
    choice.file !== undefined
      ? await openDataFile(choice.file, {
          targets: choice.labels,
          labelColumn: choice.labelColumn,
          key: choice.key,
        })
      : await openNamedDataset(choice.dataset!, choice.split);
  if (data.samples === 0) throw new EcpruneError('input', 'has no samples', data.name);
  return choice.samples === undefined ? data : firstSamples(data, choice.samples);
}
