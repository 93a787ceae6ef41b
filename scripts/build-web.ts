/**
 * Builds the browser demo into web/dist/ (or --outdir): web/app.ts bundled by esbuild (browser,
 * ESM, minified) as app.js, index.html, the demo model and data, and the onnxruntime-web wasm
 * files the page loads from its own folder. Fails when the bundle would import a Node built-in.
 * With --serve, then serves the folder on http://127.0.0.1:8080 (--port) until stopped.
 *
 *   npx tsx scripts/build-web.ts [--outdir DIR] [--serve] [--port N]
 */
import { copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build, type Metafile } from 'esbuild';
import { ORT_WEB_FILES } from '../src/gemm/ort-web-gemm.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const WEB_ENTRY = path.join(ROOT, 'web', 'app.ts');
export const WEB_DIST = path.join(ROOT, 'web', 'dist');

const BUILTINS = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));

/** Every import of a Node built-in in a bundle's metafile, as 'importer -> module'. */
export function nodeBuiltinImports(metafile: Metafile): string[] {
  return Object.entries(metafile.inputs).flatMap(([file, input]) =>
    input.imports
      .filter((entry) => entry.path.startsWith('node:') || BUILTINS.has(entry.path))
      .map((entry) => `${file} -> ${entry.path}`),
  );
}

/** Bundles `entry` for browsers as the demo is built (esbuild itself rejects unresolvable Node built-ins). */
export function bundleForBrowser(entry: string, options: { outfile?: string; minify?: boolean } = {}) {
  return build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: options.minify ?? true,
    metafile: true,
    write: options.outfile !== undefined,
    outfile: options.outfile,
    logLevel: 'silent',
  });
}

/** Builds the demo into `outdir` (emptied first); returns the bundle's size in bytes. */
export async function buildWeb(outdir = WEB_DIST): Promise<{ bundleBytes: number; totalBytes: number }> {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const outfile = path.join(outdir, 'app.js');
  const { metafile } = await bundleForBrowser(WEB_ENTRY, { outfile });
  const builtins = nodeBuiltinImports(metafile);
  if (builtins.length > 0)
    throw new Error(`the browser bundle imports Node built-ins:\n  ${builtins.join('\n  ')}`);
  copyFileSync(path.join(ROOT, 'web', 'index.html'), path.join(outdir, 'index.html'));
  cpSync(path.join(ROOT, 'web', 'demo'), path.join(outdir, 'demo'), { recursive: true });
  const ortDist = path.join(ROOT, 'node_modules', 'onnxruntime-web', 'dist');
  for (const file of ORT_WEB_FILES) copyFileSync(path.join(ortDist, file), path.join(outdir, file));
  const files = [
    'app.js',
    'index.html',
    ...ORT_WEB_FILES,
    'demo/model.onnx',
    'demo/calib.npy',
    'demo/labels.npy',
    'demo/test.npy',
    'demo/test-labels.npy',
  ];
  return {
    bundleBytes: statSync(outfile).size,
    totalBytes: files.reduce((sum, file) => sum + statSync(path.join(outdir, file)).size, 0),
  };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.npy': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Serves the files of `dir` on 127.0.0.1 (`port` 0: a free one), cross-origin isolated (COOP +
 * COEP headers) so that onnxruntime-web may use threads. Resolves once listening.
 */
export function serveStatic(dir: string, port = 0): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    const urlPath = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname);
    const file = path.join(dir, urlPath.endsWith('/') ? `${urlPath}index.html` : urlPath);
    let body: Buffer;
    try {
      if (!file.startsWith(dir + path.sep)) throw new Error('outside the folder');
      body = readFileSync(file);
    } catch {
      response.writeHead(404).end('not found');
      return;
    }
    response.writeHead(200, {
      'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cache-Control': 'no-cache',
    });
    response.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const actual = typeof address === 'object' && address !== null ? address.port : port;
      resolve({ server, url: `http://127.0.0.1:${actual}/` });
    });
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      outdir: { type: 'string' },
      serve: { type: 'boolean' },
      port: { type: 'string', default: '8080' },
    },
  });
  const outdir = path.resolve(values.outdir ?? WEB_DIST);
  const { bundleBytes, totalBytes } = await buildWeb(outdir);
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;
  console.log(
    `built ${path.relative(process.cwd(), outdir) || '.'}: app.js ${mb(bundleBytes)}, ${mb(totalBytes)} with the wasm and the demo`,
  );
  if (values.serve) {
    const { server, url } = await serveStatic(outdir, Number(values.port));
    console.log(`serving ${url} (Ctrl-C to stop)`);
    stopWithAncestors(() => server.close(() => process.exit(0)));
  }
}

/**
 * Calls `stop` once any process above this one has gone. `npm run serve:web` runs npm → sh → tsx
 * → this script; a SIGTERM to npm ends npm and sh but not tsx, which would keep the server (and
 * its port) alive with no parent. The ancestors come from /proc (Linux); elsewhere only the
 * direct parent is watched.
 */
function stopWithAncestors(stop: () => void): void {
  const ancestors: number[] = [];
  for (let pid = process.ppid; pid > 1 && ancestors.length < 8; ) {
    ancestors.push(pid);
    try {
      // /proc/<pid>/stat: "pid (command) state ppid ..."; the command may hold spaces and ')'
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  setInterval(() => {
    if (!ancestors.every(alive)) stop();
  }, 500).unref();
}
