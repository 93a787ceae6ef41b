/**
 * The first layer's keep-mask drawn as images, for image inputs: which pixels each neuron still
 * sees after pruning. EC removes weights on (nearly) constant pixels first, since the bias absorbs
 * them; magnitude has no notion of that.
 */
import { imageSide, type SweepRow } from '../pipeline/sweep.js';
import { encodeGreyPng, pngDataUri } from './png.js';

export interface MaskPanel {
  readonly method: string;
  /** every neuron's mask as a side × side tile, in neuron order, kept weights black */
  readonly tiles: string;
  /** per pixel, how many neurons keep its weight (darker = more), scaled to the busiest pixel */
  readonly heatmap: string;
  readonly neurons: number;
  /** weights of layer 0 kept */
  readonly kept: number;
  /** neurons left with no input weight */
  readonly emptyNeurons: number;
  /** pixels no neuron reads any more */
  readonly unusedPixels: number;
}

export interface MaskComparison {
  readonly sparsity: number;
  readonly side: number;
  readonly panels: MaskPanel[];
}

const TILE_COLUMNS = 20;
/** masks are drawn at the highest sparsity up to this one (at 95 % EC keeps ~1 % of layer 0: mostly blank tiles) */
const MASK_SPARSITY = 0.9;
const GAP = 1;

/**
 * Panels for `methods` (default EC and magnitude) at the highest sparsity up to 90 % (else the
 * lowest above) that all of them have a layer-0 mask for (global scope, no fine-tuning); undefined
 * when the inputs are not images.
 */
export function maskComparison(
  rows: readonly SweepRow[],
  features: number,
  methods: readonly string[] = ['ec', 'magnitude'],
): MaskComparison | undefined {
  const side = imageSide(features);
  if (side === undefined) return undefined;
  const withMask = rows.filter(
    (row) =>
      row.keptFirstLayer && row.scope === 'global' && row.finetuneEpochs === 0 && row.seed === undefined,
  );
  const sparsities = [...new Set(withMask.map((row) => row.sparsity))].filter((s) =>
    methods.every((method) => withMask.some((row) => row.method === method && row.sparsity === s)),
  );
  if (sparsities.length === 0) return undefined;
  const high = sparsities.filter((s) => s <= MASK_SPARSITY);
  const sparsity = high.length > 0 ? Math.max(...high) : Math.min(...sparsities);
  const panels = methods.map((method) => {
    const row = withMask.find((r) => r.method === method && r.sparsity === sparsity)!;
    return maskPanel(method, row.keptFirstLayer!, side);
  });
  return { sparsity, side, panels };
}

function maskPanel(method: string, mask: Uint8Array, side: number): MaskPanel {
  const pixels = side * side;
  const neurons = mask.length / pixels;
  const perPixel = new Float64Array(pixels);
  let kept = 0;
  let emptyNeurons = 0;
  for (let i = 0; i < neurons; i++) {
    let keptHere = 0;
    for (let j = 0; j < pixels; j++) {
      const keep = mask[i * pixels + j];
      keptHere += keep;
      perPixel[j] += keep;
    }
    kept += keptHere;
    if (keptHere === 0) emptyNeurons++;
  }
  const busiest = Math.max(1, ...perPixel);
  const heat = Uint8Array.from(perPixel, (count) => Math.round(255 * (1 - count / busiest)));
  return {
    method,
    tiles: pngDataUri(tileImage(mask, neurons, side)),
    heatmap: pngDataUri(encodeGreyPng(side, side, heat)),
    neurons,
    kept,
    emptyNeurons,
    unusedPixels: perPixel.filter((count) => count === 0).length,
  };
}

function tileImage(mask: Uint8Array, neurons: number, side: number): Uint8Array {
  const columns = Math.min(TILE_COLUMNS, neurons);
  const tileRows = Math.ceil(neurons / columns);
  const width = columns * (side + GAP) + GAP;
  const height = tileRows * (side + GAP) + GAP;
  const grey = new Uint8Array(width * height).fill(190); // the gaps
  for (let i = 0; i < neurons; i++) {
    const left = GAP + (i % columns) * (side + GAP);
    const top = GAP + Math.floor(i / columns) * (side + GAP);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++)
        grey[(top + y) * width + left + x] = mask[i * side * side + y * side + x] ? 0 : 255;
    }
  }
  return encodeGreyPng(width, height, grey);
}
