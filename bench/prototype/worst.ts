import { readNpyLayers } from '../lib.js';

const [a, b, prefix] = process.argv.slice(2);
const A = await readNpyLayers(a, prefix, 3),
  B = await readNpyLayers(b, prefix, 3);
let max = 0;
for (const l of B) for (const v of l) max = Math.max(max, Math.abs(v));
for (let l = 0; l < 3; l++) {
  let worst = 0,
    wi = -1,
    n2 = 0,
    d2 = 0;
  for (let i = 0; i < B[l].length; i++) {
    const d = A[l][i] - B[l][i];
    n2 += B[l][i] ** 2;
    d2 += d * d;
    if (Math.abs(B[l][i]) > 1e-3 * max) {
      const r = Math.abs(d) / Math.abs(B[l][i]);
      if (r > worst) {
        worst = r;
        wi = i;
      }
    }
  }
  console.log(
    `layer ${l}: norm rel ${Math.sqrt(d2 / n2).toExponential(2)}, worst ${worst.toExponential(2)} at ${wi} (${A[l][wi]} vs ${B[l][wi]})`,
  );
}
