// Loss curves as a PNG, drawn directly into pixels (no plotting dependency): one panel per curve, the raw
// per-step values in light grey, an exponential moving average in colour, log-scaled y, with the axis
// range written in a 3×5 pixel font.

import { Tensor, writePng } from '../index.js';

export interface Curve {
  title: string;
  values: number[];
  colour: readonly [number, number, number];
}

// 3×5 glyphs, rows top to bottom, 3 bits each (4 = left column)
const FONT: Record<string, number[]> = {
  '0': [7, 5, 5, 5, 7],
  '1': [2, 6, 2, 2, 7],
  '2': [7, 1, 7, 4, 7],
  '3': [7, 1, 7, 1, 7],
  '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7],
  '6': [7, 4, 7, 5, 7],
  '7': [7, 1, 1, 1, 1],
  '8': [7, 5, 7, 5, 7],
  '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2],
  '-': [0, 0, 7, 0, 0],
  ' ': [0, 0, 0, 0, 0],
  a: [0, 7, 1, 7, 7],
  b: [4, 4, 7, 5, 7],
  c: [0, 7, 4, 4, 7],
  d: [1, 1, 7, 5, 7],
  e: [7, 5, 7, 4, 7],
  g: [7, 5, 7, 1, 7],
  i: [2, 0, 2, 2, 2],
  k: [4, 5, 6, 5, 5],
  l: [6, 2, 2, 2, 7],
  m: [0, 5, 7, 5, 5],
  n: [0, 6, 5, 5, 5],
  o: [0, 7, 5, 5, 7],
  p: [7, 5, 7, 4, 4],
  r: [0, 7, 4, 4, 4],
  s: [7, 4, 7, 1, 7],
  t: [2, 7, 2, 2, 3],
  u: [0, 5, 5, 5, 7],
  v: [0, 5, 5, 5, 2],
  x: [0, 5, 2, 5, 5],
  '(': [1, 2, 2, 2, 1],
  ')': [4, 2, 2, 2, 4],
  '=': [0, 7, 0, 7, 0],
  '/': [1, 1, 2, 4, 4],
};

class Canvas {
  readonly rgb: Float32Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.rgb = new Float32Array(3 * width * height).fill(255);
  }
  set(x: number, y: number, c: readonly number[]): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const plane = this.width * this.height;
    for (let k = 0; k < 3; k++) this.rgb[k * plane + y * this.width + x] = c[k] as number;
  }
  line(x0: number, y0: number, x1: number, y1: number, c: readonly number[]): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++) this.set(x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n, c);
  }
  text(x: number, y: number, s: string, c: readonly number[], scale = 2): void {
    for (const ch of s.toLowerCase()) {
      const rows = FONT[ch] ?? FONT[' '];
      rows?.forEach((bits, r) => {
        for (let col = 0; col < 3; col++) {
          if (!(bits & (4 >> col))) continue;
          for (let dy = 0; dy < scale; dy++) {
            for (let dx = 0; dx < scale; dx++) this.set(x + col * scale + dx, y + r * scale + dy, c);
          }
        }
      });
      x += 4 * scale;
    }
  }
  tensor(): Tensor {
    return new Tensor(
      Float32Array.from(this.rgb, (v) => v / 127.5 - 1),
      [1, 3, this.height, this.width],
    );
  }
}

/** Exponential moving average with bias correction (as TensorBoard's smoothing). */
export function smooth(values: readonly number[], beta = 0.98): number[] {
  let m = 0;
  return values.map((v, i) => {
    m = beta * m + (1 - beta) * v;
    return m / (1 - beta ** (i + 1));
  });
}

const fmt = (v: number) => (v >= 0.01 ? v.toFixed(3) : v.toExponential(1));

/** Writes one panel per curve, side by side, to `path`. */
export function plotCurves(
  path: string,
  curves: readonly Curve[],
  panel = { width: 420, height: 300 },
): void {
  const canvas = new Canvas(panel.width * curves.length, panel.height);
  const grey = [200, 200, 200];
  const ink = [40, 40, 40];
  curves.forEach((curve, k) => {
    const ox = k * panel.width;
    const [left, right, top, bottom] = [ox + 56, ox + panel.width - 14, 30, panel.height - 30];
    const vals = curve.values.filter((v) => v > 0 && Number.isFinite(v));
    canvas.text(left, 8, curve.title, ink);
    if (vals.length === 0) return;
    const avg = smooth(curve.values);
    const lo = Math.log(Math.min(...vals));
    const hi = Math.log(Math.max(...vals));
    const y = (v: number) => bottom - ((Math.log(v) - lo) / Math.max(1e-9, hi - lo)) * (bottom - top);
    const x = (i: number) => left + (i / Math.max(1, curve.values.length - 1)) * (right - left);
    curve.values.forEach((v, i) => {
      if (v > 0) canvas.set(x(i), y(v), grey);
    });
    for (let i = 1; i < avg.length; i++)
      canvas.line(x(i - 1), y(avg[i - 1] as number), x(i), y(avg[i] as number), curve.colour);
    canvas.line(left, top, left, bottom, ink);
    canvas.line(left, bottom, right, bottom, ink);
    canvas.text(ox + 4, top, fmt(Math.exp(hi)), ink);
    canvas.text(ox + 4, bottom - 10, fmt(Math.exp(lo)), ink);
    canvas.text(left, bottom + 8, '0', ink);
    const steps = String(curve.values.length);
    canvas.text(right - 8 * steps.length - 40, bottom + 8, `step ${steps}`, ink);
  });
  writePng(path, canvas.tensor());
}

/** The loss curves of a Shapes run folder (stages that have a checkpoint). */
export function plotRun(
  path: string,
  histories: { vae?: Record<string, number>[]; unet?: Record<string, number>[] },
  unetTarget: 'eps' | 'v' = 'eps',
): void {
  const curves: Curve[] = [];
  if (histories.vae) {
    curves.push({
      title: 'vae l2 reconstruction',
      values: histories.vae.map((h) => h.rec as number),
      colour: [200, 60, 40],
    });
  }
  if (histories.unet) {
    curves.push({
      title: `unet ${unetTarget} mse`,
      // the unweighted ε- (or v-) MSE where the history has it (Min-SNR, object weighting and grounding change `loss`)
      values: histories.unet.map((h) => (h.mse ?? h.loss) as number),
      colour: [40, 90, 200],
    });
  }
  plotCurves(path, curves);
}
