// The colours of the Shapes world: a palette of saturated object colours, far apart in RGB, and a few
// background colours of two tones (dark, light) that stay far from every object colour, so that a pixel's
// colour alone tells object from background (ShapesEval relies on it; test/shapes/palette.test.ts checks
// the distances).

/** An 8-bit RGB triple. */
export type Rgb = readonly [number, number, number];

/** The object colours of the Shapes world. */
export const COLORS = ['red', 'orange', 'yellow', 'green', 'cyan', 'blue', 'purple', 'white'] as const;
/** One object colour. */
export type ColorName = (typeof COLORS)[number];

/** Object colours, 8-bit sRGB. The closest pair (orange, yellow) is ≈ 97 apart. */
export const PALETTE: Readonly<Record<ColorName, Rgb>> = {
  red: [215, 35, 35],
  orange: [245, 130, 20],
  yellow: [240, 225, 40],
  green: [40, 170, 60],
  cyan: [40, 200, 220],
  blue: [40, 70, 220],
  purple: [150, 50, 200],
  white: [245, 245, 245],
};

/** The background tones of the Shapes world. */
export const BACKGROUND_TONES = ['dark', 'light'] as const;
/** One background tone. */
export type BackgroundTone = (typeof BACKGROUND_TONES)[number];

/** Background colours by tone; each is ≥ 100 from every object colour. */
export const BACKGROUND_COLORS: Readonly<Record<BackgroundTone, readonly Rgb[]>> = {
  dark: [
    [22, 22, 28],
    [28, 36, 58],
    [48, 32, 32],
  ],
  light: [
    [200, 190, 160],
    [172, 178, 186],
    [186, 200, 176],
  ],
};

/** Whether a word names an object colour. */
export function isColorName(word: string): word is ColorName {
  return (COLORS as readonly string[]).includes(word);
}

/** Whether a word names a background tone. */
export function isBackgroundTone(word: string): word is BackgroundTone {
  return (BACKGROUND_TONES as readonly string[]).includes(word);
}

/** Euclidean distance of two RGB triples (any scale). */
export function rgbDistance(a: Rgb, b: Rgb): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/** The background tone whose nearest colour is closest to `rgb` (8-bit scale). */
export function nearestTone(rgb: Rgb): BackgroundTone {
  let best: BackgroundTone = 'dark';
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const tone of BACKGROUND_TONES) {
    for (const c of BACKGROUND_COLORS[tone]) {
      const d = rgbDistance(rgb, c);
      if (d < bestDistance) {
        bestDistance = d;
        best = tone;
      }
    }
  }
  return best;
}
