// Pictures of attention: colour maps, a heat-map laid over an image (as DAAM's `plot_overlay_heat_map`: the
// image drawn with alpha 1 − heat over the colour-mapped heat), and labelled grids of tiles. Images are
// (1, 3, H, W) float32 tensors in [-1, 1], as everywhere in attnkit; heat-maps are (H, W) in [0, 1].

import { formatShape, Tensor } from '../tensor/index.js';
import { drawText, GLYPH_HEIGHT, GLYPH_WIDTH } from './font.js';

/** The colour maps a heat-map can be drawn with. */
export type ColorMapName = 'jet' | 'viridis' | 'gray';

const clamp01 = (v: number) => Math.min(Math.max(v, 0), 1);

/** Viridis as a degree-6 polynomial per channel (Matt Zucker's CC0 fit, error < 0.01 of matplotlib's table). */
const VIRIDIS = [
  [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
  [0.1050930431085774, 1.404613529898575, 1.384590162594685],
  [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
  [-4.634230498983486, -5.799100973351585, -19.33244095627987],
  [6.228269936347081, 14.17993336680509, 56.69055260068105],
  [4.776384997670288, -13.74514537774601, -65.35303263337234],
  [-5.435455855934631, 4.645852612178535, 26.3124352495832],
] as const;

/** The colour (r, g, b in [0, 1]) of a value in [0, 1] (clamped). */
export function colorMap(value: number, name: ColorMapName = 'jet'): [number, number, number] {
  const v = clamp01(value);
  if (name === 'gray') return [v, v, v];
  if (name === 'jet') {
    return [
      clamp01(1.5 - Math.abs(4 * v - 3)),
      clamp01(1.5 - Math.abs(4 * v - 2)),
      clamp01(1.5 - Math.abs(4 * v - 1)),
    ];
  }
  const c: [number, number, number] = [0, 0, 0];
  for (let k = VIRIDIS.length - 1; k >= 0; k--)
    for (let i = 0; i < 3; i++) c[i] = c[i]! * v + VIRIDIS[k]![i]!;
  return [clamp01(c[0]), clamp01(c[1]), clamp01(c[2])];
}

function mapShape(op: string, heat: Tensor): [number, number] {
  const s = heat.shape;
  if (s.length < 2 || s.slice(0, -2).some((d) => d !== 1)) {
    throw new Error(`${op}: expected a heat-map (H, W), got ${formatShape(s)}`);
  }
  return [s[s.length - 2]!, s[s.length - 1]!];
}

/** A heat-map (H, W) in [0, 1] as a colour image (1, 3, H, W) in [-1, 1]. */
export function colorize(heat: Tensor, name: ColorMapName = 'jet'): Tensor {
  const [h, w] = mapShape('colorize', heat);
  const out = new Float32Array(3 * h * w);
  heat.toArray().forEach((v, p) => {
    const c = colorMap(v, name);
    for (let i = 0; i < 3; i++) out[i * h * w + p] = 2 * c[i]! - 1;
  });
  return new Tensor(out, [1, 3, h, w]);
}

/**
 * The image drawn over the colour-mapped heat with alpha 1 − opacity·heat (DAAM's overlay): hot pixels show
 * the colour map, cold ones the image. `heat` must already have the image's size.
 */
export function overlayHeatMap(
  image: Tensor,
  heat: Tensor,
  opts: { colorMap?: ColorMapName; opacity?: number } = {},
): Tensor {
  const [h, w] = mapShape('overlayHeatMap', heat);
  if (
    image.rank !== 4 ||
    image.shape[0] !== 1 ||
    image.shape[1] !== 3 ||
    image.shape[2] !== h ||
    image.shape[3] !== w
  ) {
    throw new Error(
      `overlayHeatMap: image ${formatShape(image.shape)} and heat-map ${formatShape(heat.shape)} must be ` +
        `(1, 3, H, W) and (H, W) of the same size; upsample the map first (expandAs)`,
    );
  }
  const opacity = opts.opacity ?? 1;
  const img = image.toArray();
  const out = new Float32Array(img.length);
  heat.toArray().forEach((v, p) => {
    const a = clamp01(v) * opacity;
    const c = colorMap(v, opts.colorMap ?? 'jet');
    for (let i = 0; i < 3; i++) out[i * h * w + p] = (1 - a) * img[i * h * w + p]! + a * (2 * c[i]! - 1);
  });
  return new Tensor(out, [1, 3, h, w]);
}

/** Layout of `imageGrid`: tiles per row, labels, zoom, font size and gap. */
export interface GridOptions {
  /** Tiles per row (default: all in one row). */
  cols?: number;
  /** One label per tile, drawn above it. */
  labels?: readonly string[];
  /** Integer upscaling of each tile (nearest), for small images; default 1. */
  zoom?: number;
  /** Pixel size of the label font; default 1 (3×5 pixel glyphs), 2 for tiles ≥ 96 px. */
  fontScale?: number;
  /** Gap between tiles in pixels; default 2. */
  gap?: number;
}

/** Tiles (1, 3, h, w) of one size laid out in a grid, with optional labels, on a black background. */
export function imageGrid(tiles: readonly Tensor[], opts: GridOptions = {}): Tensor {
  if (tiles.length === 0) throw new Error('imageGrid: no tiles');
  const [, , h, w] = tiles[0]!.shape as [number, number, number, number];
  for (const t of tiles) {
    if (t.rank !== 4 || t.shape[0] !== 1 || t.shape[1] !== 3 || t.shape[2] !== h || t.shape[3] !== w) {
      throw new Error(`imageGrid: tiles must all be (1, 3, ${h}, ${w}), got ${formatShape(t.shape)}`);
    }
  }
  const zoom = opts.zoom ?? 1;
  const gap = opts.gap ?? 2;
  const cols = Math.min(opts.cols ?? tiles.length, tiles.length);
  const rows = Math.ceil(tiles.length / cols);
  const th = h * zoom;
  const tw = w * zoom;
  const font = opts.fontScale ?? (tw >= 96 ? 2 : 1);
  const label = opts.labels ? GLYPH_HEIGHT * font + 2 * gap : 0;
  const W = cols * tw + (cols + 1) * gap;
  const H = rows * (th + label) + (rows + 1) * gap;
  const out = new Float32Array(3 * H * W).fill(-1);
  tiles.forEach((tile, k) => {
    const x0 = gap + (k % cols) * (tw + gap);
    const y0 = gap + Math.floor(k / cols) * (th + label + gap);
    const src = tile.toArray();
    for (let i = 0; i < 3; i++) {
      for (let y = 0; y < th; y++) {
        for (let x = 0; x < tw; x++) {
          const v = src[i * h * w + Math.floor(y / zoom) * w + Math.floor(x / zoom)]!;
          out[i * H * W + (y0 + label + y) * W + x0 + x] = v;
        }
      }
    }
    const text = opts.labels?.[k];
    if (text) {
      const fit = Math.max(1, Math.floor((tw + font) / ((GLYPH_WIDTH + 1) * font)));
      drawText(out, W, H, x0, y0 + gap, text.slice(0, fit), { scale: font });
    }
  });
  return new Tensor(out, [1, 3, H, W]);
}

/** Images (1, 3, h, w) of one height side by side, with a gap. */
export function sideBySide(images: readonly Tensor[], gap = 2): Tensor {
  return imageGrid(images, { cols: images.length, gap });
}
