#!/usr/bin/env node
import { setDefaultGemm } from '../gemm/default.js';
import { lazyOrtGemm } from '../node/ort-gemm.js';
import { runCli } from './program.js';

setDefaultGemm(lazyOrtGemm());
process.exitCode = await runCli(process.argv.slice(2));
