// How many threads does an onnxruntime-node session create with intraOpNumThreads = N? (Linux: /proc/self/task)
import { readdirSync } from 'node:fs';
import { matrix } from '../../src/model/matrix.js';
import { createOrtGemm } from '../../src/node/ort-gemm.js';
const tasks = () => readdirSync('/proc/self/task').length;
const before = tasks();
const gemm = await createOrtGemm(Number(process.argv[2] ?? 0));
await gemm.matmul(matrix(256, 256), matrix(256, 256));
console.log(`intraOpNumThreads=${process.argv[2] ?? 0}: ${tasks() - before} new OS threads in the process`);
