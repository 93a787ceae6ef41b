import { agreement, readNpyLayers } from '../lib.js';

const [a, b, countText] = process.argv.slice(2);
const count = Number(countText ?? 3);
for (const p of ['I', 'D'])
  console.log(p, agreement(await readNpyLayers(a, p, count), await readNpyLayers(b, p, count)));
