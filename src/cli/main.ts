#!/usr/bin/env node
import { setDefaultGemm } from '../gemm/default.js';
import { installCleanupHandlers } from '../node/files.js';
import { lazyOrtGemm } from '../node/ort-gemm.js';
import { runCli } from './program.js';

setDefaultGemm(lazyOrtGemm());
// Ctrl-C at any time: temp files removed, exit 130 (143 for SIGTERM), never a partial output
installCleanupHandlers();
// `ecprune inspect model.onnx | head`: once the reader has gone, what is left to print is dropped
// quietly (not Node's EPIPE stack trace) and the command runs to its end (a prune still writes its model)
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
});
process.exitCode = await runCli(process.argv.slice(2));
