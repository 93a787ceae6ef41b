import { type Criterion, mapWeights } from './criterion.js';

/** |w|: the classic baseline. */
export const magnitudeScore: Criterion = (mlp) => mapWeights(mlp, (w) => Math.abs(w));
