/**
 * Option parsing shared by the commands: every value is checked here, where the user's words are
 * still known, so that an error names the option (`--sparsity: expected a number in [0, 1), got 'x'`).
 */
import { InvalidArgumentError, Option } from 'commander';
import { EcpruneError } from '../errors.js';
import type { LossKind } from '../graph/loss.js';
import { parseArch } from '../io/arch.js';
import { isMethodName, METHOD_NAMES, type MethodName } from '../score/methods.js';
import type { Scope } from '../select/select.js';

export function parseSparsity(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && value < 1)) {
    throw new InvalidArgumentError(`expected a number in [0, 1), got '${text}'`);
  }
  return value;
}

export function parseNonNegative(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && value < Number.POSITIVE_INFINITY))
    throw new InvalidArgumentError(`expected a number >= 0, got '${text}'`);
  return value;
}

export function parseFraction(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && value <= 1))
    throw new InvalidArgumentError(`expected a number in [0, 1], got '${text}'`);
  return value;
}

export function parsePositiveInt(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1)
    throw new InvalidArgumentError(`expected a positive integer, got '${text}'`);
  return value;
}

export function parseNonNegativeInt(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0)
    throw new InvalidArgumentError(`expected an integer >= 0, got '${text}'`);
  return value;
}

export function parseMethod(text: string): MethodName {
  if (!isMethodName(text))
    throw new InvalidArgumentError(`unknown method '${text}' (choose from ${METHOD_NAMES.join(', ')})`);
  return text;
}

export function parseScope(text: string): Scope {
  if (text !== 'global' && text !== 'layer')
    throw new InvalidArgumentError(`unknown scope '${text}' (choose global or layer)`);
  return text;
}

export function parseLoss(text: string): LossKind {
  if (text !== 'ce' && text !== 'mse')
    throw new InvalidArgumentError(`unknown loss '${text}' (choose ce or mse)`);
  return text;
}

/** A comma-separated list, each item parsed by `parse`: `0.5,0.9` → [0.5, 0.9]. */
export function listOf<T>(parse: (text: string) => T): (text: string) => T[] {
  return (text) => {
    const items = text.split(',').map((item) => item.trim());
    if (items.some((item) => item === ''))
      throw new InvalidArgumentError(`expected a comma-separated list, got '${text}'`);
    return items.map(parse);
  };
}

/** The model files every command reads (and, by extension, writes). */
export const MODEL_FILES = '.onnx, TF.js model.json, .safetensors, PyTorch .pt/.pth or .npz';

/**
 * `--arch <spec>` for every command that loads a model: the layer widths and activations of a
 * weight-only model (.safetensors / .pt without ecprune metadata, .npz). Checked here, passed on as text.
 */
export function archOption(): Option {
  return new Option(
    '--arch <spec>',
    "widths and activations of a weight-only model (.safetensors, PyTorch .pt, .npz): '784,300,10:relu', 'relu', 'leaky_relu:0.1', 'relu/sigmoid'",
  ).argParser((text: string) => {
    try {
      parseArch(text);
    } catch (error) {
      throw error instanceof EcpruneError ? new InvalidArgumentError(error.detail) : error;
    }
    return text;
  });
}

/** `--exclude head,0`: layer names from the file, or indices. */
export function parseLayerList(text: string): string[] {
  return listOf((item) => item)(text);
}

/** `--layer-sparsity head:0.5,blocks.0.fc1:0.95`: name (or index) and sparsity, split at the last ':'. */
export function parseLayerSparsity(text: string): Record<string, number> {
  const targets: Record<string, number> = {};
  for (const item of parseLayerList(text)) {
    const colon = item.lastIndexOf(':');
    if (colon <= 0) throw new InvalidArgumentError(`expected name:sparsity, such as head:0.5, got '${item}'`);
    const name = item.slice(0, colon);
    if (Object.hasOwn(targets, name)) throw new InvalidArgumentError(`layer '${name}' is given twice`);
    targets[name] = parseSparsity(item.slice(colon + 1));
  }
  return targets;
}
