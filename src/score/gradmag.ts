import { EcpruneError, option } from '../errors.js';
import { type Criterion, mapWeights } from './criterion.js';

/** First-order Taylor saliency |w · dL/dw| with L the mean training loss over the calibration set. */
export const gradmagScore: Criterion = (mlp, statistics) =>
  mapWeights(mlp, (w, l, _i, _j, flat) => {
    const gradient = statistics.layers[l].lossGradient;
    if (gradient === undefined)
      throw new EcpruneError(
        'usage',
        `gradmag needs labels and a loss (${option('calibrationLabels')}, ${option('loss')})`,
      );
    return Math.abs(w * gradient[flat]);
  });
