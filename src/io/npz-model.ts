/**
 * MLPs as NumPy `.npz` archives: `W0, b0, W1, b1, ...`, one pair per layer in order.
 *
 * - `W<l>` is n_out x n_in (PyTorch's Linear.weight layout: `y = W @ x + b`, or `x @ W.T + b` for a
 *   batch of rows); any float dtype, stored as float64 on output when it was float64, else float32.
 * - `b<l>` has n_out entries; a missing `b<l>` means zeros.
 * - `arch` (optional): the architecture string (see arch.ts) as UTF-8 bytes in a uint8 array;
 *   ecprune writes it, NumPy reads it back with `bytes(np.load(f)['arch']).decode()`. Without it
 *   the activations must be given (`--arch`), which also overrides it.
 */
import { badInput } from '../errors.js';
import { zerosLike } from '../model/matrix.js';
import { type Mlp, validateMlp } from '../model/mlp.js';
import { type Arch, archActivations, checkArchSizes, formatArch, parseArch, requireArch } from './arch.js';
import { floatValues, type NpyData } from './npy.js';
import { readNpz, writeNpz } from './npz.js';

const ARCH_MEMBER = 'arch';

/** Reads an `.npz` model; `arch` (from `--arch`) wins over the archive's own `arch` member. */
export function readNpzModel(bytes: Uint8Array, arch?: Arch, file?: string): Mlp {
  const arrays = readNpz(bytes, file);
  const names = [...arrays.keys()];
  const count = names.filter((name) => /^W\d+$/.test(name)).length;
  if (count === 0) throw badInput('has no weight arrays W0, W1, ... (expected W0, b0, W1, b1, ...)', file);
  const extra = names.find(
    (name) => name !== ARCH_MEMBER && !(/^[Wb]\d+$/.test(name) && Number(name.slice(1)) < count),
  );
  if (extra !== undefined)
    throw badInput(`unexpected array '${extra}' (expected W0..W${count - 1}, b0..b${count - 1}, arch)`, file);
  const weights = Array.from({ length: count }, (_, l) => {
    const weight = arrays.get(`W${l}`);
    if (weight?.shape.length !== 2) {
      throw badInput(
        weight ? `W${l} has shape [${weight.shape.join(', ')}], expected n_out x n_in` : `W${l} is missing`,
        file,
      );
    }
    return weight;
  });
  const chains = (rowsAxis: number) =>
    weights.every((w, l) => l === 0 || w.shape[1 - rowsAxis] === weights[l - 1].shape[rowsAxis]);
  if (!chains(0) && chains(1)) {
    throw badInput(
      'the W arrays chain as n_in x n_out (the Keras layout); ecprune expects n_out x n_in: store W.T',
      file,
    );
  }
  const stored = arrays.get(ARCH_MEMBER);
  const storedArch = stored && parseArch(new TextDecoder().decode(Uint8Array.from(stored.data)), file);
  const chosen = requireArch(arch ?? storedArch, file);
  const activations = archActivations(chosen, count, file);
  const mlp: Mlp = {
    layers: weights.map((weight, l) => {
      const [rows, cols] = weight.shape;
      const bias = arrays.get(`b${l}`);
      const weightData = floatValues(weight.data);
      return {
        weight: { rows, cols, data: weightData },
        bias: bias === undefined ? zerosLike(weightData, rows) : floatValues(bias.data),
        activation: activations[l],
      };
    }),
  };
  checkArchSizes(chosen, [weights[0].shape[1], ...weights.map((w) => w.shape[0])], file);
  return validateMlp(mlp, file);
}

/** Writes `W<l>` (n_out x n_in), `b<l>` (float64 as read, else float32) and the architecture string as `arch`. */
export function writeNpzModel(mlp: Mlp, compress = false): Uint8Array {
  const arrays: Record<string, { shape: number[]; data: NpyData }> = {};
  mlp.layers.forEach((layer, l) => {
    arrays[`W${l}`] = { shape: [layer.weight.rows, layer.weight.cols], data: layer.weight.data };
    arrays[`b${l}`] = { shape: [layer.bias.length], data: layer.bias };
  });
  const arch = new TextEncoder().encode(formatArch(mlp));
  arrays[ARCH_MEMBER] = { shape: [arch.length], data: arch };
  return writeNpz(arrays, compress);
}
