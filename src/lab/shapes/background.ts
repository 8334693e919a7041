// The background of a Shapes image, for ShapesEval: a plane B(x, y) = a + b·x + c·y per channel, fitted by
// least squares to the pixels that look like background. A plane absorbs a brightness gradient; the
// 'noise' and 'stripes' textures average out.

/** Least-squares plane a + b·x + c·y per channel over the pixels where `use` is set. */
function fitPlane(rgb: Float32Array, use: Uint8Array, width: number, height: number): Float32Array {
  const plane = width * height;
  // normal equations of [1, x, y]
  const m = new Float64Array(9);
  const r = new Float64Array(9); // per channel: Σv, Σvx, Σvy
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      if (!use[p]) continue;
      const f = [1, x, y];
      for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) m[3 * i + j]! += f[i]! * f[j]!;
      for (let c = 0; c < 3; c++) for (let i = 0; i < 3; i++) r[3 * c + i]! += rgb[c * plane + p]! * f[i]!;
    }
  }
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const coef = solve3(m, [r[3 * c]!, r[3 * c + 1]!, r[3 * c + 2]!]);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) out[c * plane + y * width + x] = coef[0] + coef[1] * x + coef[2] * y;
    }
  }
  return out;
}

/** Solves the 3 × 3 system m·z = b by Cramer's rule; a singular m (too few pixels) gives the mean only. */
function solve3(m: Float64Array, b: readonly number[]): [number, number, number] {
  const det = (a: ArrayLike<number>) =>
    a[0]! * (a[4]! * a[8]! - a[5]! * a[7]!) -
    a[1]! * (a[3]! * a[8]! - a[5]! * a[6]!) +
    a[2]! * (a[3]! * a[7]! - a[4]! * a[6]!);
  const d = det(m);
  if (Math.abs(d) < 1e-9 * Math.max(1, m[0]! ** 3)) return [m[0]! > 0 ? b[0]! / m[0]! : 0, 0, 0];
  const col = (k: number) => {
    const a = Float64Array.from(m);
    for (let i = 0; i < 3; i++) a[3 * i + k] = b[i]!;
    return det(a) / d;
  };
  return [col(0), col(1), col(2)];
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * The background of an image given as planes of 8-bit levels (3 × height × width): a plane per channel,
 * fitted to the pixels within 40 levels of the border's median colour, then refitted to the pixels within
 * 30 levels of that first fit. Returns the fitted background in the same layout.
 */
export function fitBackground(rgb: Float32Array, width: number, height: number): Float32Array {
  const plane = width * height;
  const border: number[][] = [[], [], []];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (x >= 2 && y >= 2 && x < width - 2 && y < height - 2) continue;
      for (let c = 0; c < 3; c++) border[c]!.push(rgb[c * plane + y * width + x]!);
    }
  }
  const ref = border.map(median);
  const near = (bg: (c: number, p: number) => number, limit: number) =>
    Uint8Array.from({ length: plane }, (_, p) => {
      const d = Math.hypot(rgb[p]! - bg(0, p), rgb[plane + p]! - bg(1, p), rgb[2 * plane + p]! - bg(2, p));
      return d <= limit ? 1 : 0;
    });
  const first = fitPlane(
    rgb,
    near((c) => ref[c]!, 40),
    width,
    height,
  );
  return fitPlane(
    rgb,
    near((c, p) => first[c * plane + p]!, 30),
    width,
    height,
  );
}
