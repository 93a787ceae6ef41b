import { createRandom } from '../data/random.js';
import { type Criterion, mapWeights } from './criterion.js';

/** Uniform scores from a seeded generator: the floor every criterion must beat. */
export const randomScore: Criterion = (mlp, _statistics, options) => {
  const random = createRandom(options.seed ?? 0);
  return mapWeights(mlp, () => random.next());
};
