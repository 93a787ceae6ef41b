// Time to stream a .npy calibration file in batches of 1000 (the `other` share of score()).
import { openDataFile } from '../../src/node/datasets.js';

const file = process.argv[2];
for (let r = 0; r < 3; r++) {
  const f0 = process.resourceUsage().minorPageFault;
  const t = performance.now();
  let rows = 0;
  for await (const batch of (await openDataFile(file)).batches(1000)) rows += batch.x.rows;
  const ms = performance.now() - t;
  console.log(
    `${rows} rows: ${ms.toFixed(1)} ms = ${(ms / (rows / 1000)).toFixed(2)} ms per batch of 1000, ${process.resourceUsage().minorPageFault - f0} minor faults`,
  );
}
