/**
 * PROTOTYPE: a `.npy` (C-order little-endian float32) data set that reads each batch straight into
 * one reused Float32Array (fs read into its bytes): no intermediate Uint8Array, no decode copy, no
 * fresh pages per batch. Valid when the consumer is done with a batch before asking for the next
 * (collectStatistics is).
 */
import { open } from 'node:fs/promises';
import type { Dataset } from '../../src/data/dataset.js';
import { npyDataOffset, parseNpyHeader } from '../../src/io/npy.js';

export async function reusedNpyDataset(file: string): Promise<Dataset> {
  const handle = await open(file, 'r');
  const prefix = new Uint8Array(12);
  await handle.read(prefix, 0, 12, 0);
  const head = new Uint8Array(npyDataOffset(prefix, file));
  await handle.read(head, 0, head.length, 0);
  await handle.close();
  const header = parseNpyHeader(head, file);
  if (header.dtype !== '<f4' || header.fortranOrder || header.shape.length !== 2)
    throw new Error('prototype: float32 C-order 2-D only');
  const [rows, cols] = header.shape;
  return {
    name: file,
    samples: rows,
    features: cols,
    async *batches(batchSize: number) {
      const fh = await open(file, 'r');
      const buffer = new Float32Array(Math.min(batchSize, rows) * cols);
      const bytes = new Uint8Array(buffer.buffer);
      try {
        for (let start = 0; start < rows; start += batchSize) {
          const n = Math.min(batchSize, rows - start);
          const length = n * cols * 4;
          for (let done = 0; done < length; ) {
            const { bytesRead } = await fh.read(
              bytes,
              done,
              length - done,
              header.dataOffset + start * cols * 4 + done,
            );
            if (bytesRead === 0) throw new Error('truncated');
            done += bytesRead;
          }
          yield { x: { rows: n, cols, data: buffer.subarray(0, n * cols) } };
        }
      } finally {
        await fh.close();
      }
    },
  };
}
