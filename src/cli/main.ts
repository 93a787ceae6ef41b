#!/usr/bin/env node
import { setDefaultGemm } from '../gemm/default.js';
import { installCleanupHandlers } from '../node/files.js';
import { lazyOrtGemm } from '../node/ort-gemm.js';
import { runCli } from './program.js';

setDefaultGemm(lazyOrtGemm());
// Ctrl-C at any time: temp files removed, exit 130 (143 for SIGTERM), never a partial output
installCleanupHandlers();
process.exitCode = await runCli(process.argv.slice(2));
