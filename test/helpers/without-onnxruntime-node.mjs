// `node --import <this file>`: the process runs as if onnxruntime-node were not installed (what
// npm leaves behind where its install script fails), so the backend fallback can be tested here.
import { register } from 'node:module';

const hook = `export async function resolve(specifier, context, next) {
  if (specifier === 'onnxruntime-node') {
    const error = new Error("Cannot find package 'onnxruntime-node'");
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);
