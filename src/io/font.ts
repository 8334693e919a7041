// A 3×5 pixel bitmap font for labels on image grids (token names under heat-maps). Letters are drawn as
// capitals; each glyph is five rows of three pixels, top row first.

const GLYPHS: Record<string, string> = {
  a: '010101111101101',
  b: '110101110101110',
  c: '011100100100011',
  d: '110101101101110',
  e: '111100110100111',
  f: '111100110100100',
  g: '011100101101011',
  h: '101101111101101',
  i: '111010010010111',
  j: '001001001101010',
  k: '101101110101101',
  l: '100100100100111',
  m: '101111111101101',
  n: '110101101101101',
  o: '010101101101010',
  p: '110101110100100',
  q: '010101101110011',
  r: '110101110101101',
  s: '011100010001110',
  t: '111010010010010',
  u: '101101101101111',
  v: '101101101101010',
  w: '101101111111101',
  x: '101101010101101',
  y: '101101010010010',
  z: '111001010100111',
  '0': '111101101101111',
  '1': '010110010010111',
  '2': '110001010100111',
  '3': '110001010001110',
  '4': '101101111001001',
  '5': '111100110001110',
  '6': '011100111101111',
  '7': '111001010010010',
  '8': '111101111101111',
  '9': '111101111001110',
  '-': '000000111000000',
  '.': '000000000000010',
  ',': '000000000010100',
  "'": '010010000000000',
  ':': '000010000010000',
  '=': '000111000111000',
  '<': '001010100010001',
  '>': '100010001010100',
  '|': '010010010010010',
  '/': '001001010100100',
  _: '000000000000111',
  '#': '101111101111101',
  '?': '110001010000010',
  '!': '010010010000010',
  '(': '001010010010001',
  ')': '100010010010100',
  '+': '000010111010000',
  ' ': '000000000000000',
};

const UNKNOWN = '111101101101111';

export const GLYPH_WIDTH = 3;
export const GLYPH_HEIGHT = 5;

/** Width in pixels of `text` at `scale` (one blank column between glyphs). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * (GLYPH_WIDTH + 1) - 1) * scale;
}

/**
 * Draws `text` into a planar RGB float image (3 planes of width × height, values in [-1, 1]) with its top-left
 * corner at (x, y); pixels outside the image are skipped.
 */
export function drawText(
  planes: Float32Array,
  width: number,
  height: number,
  x: number,
  y: number,
  text: string,
  opts: { scale?: number; color?: readonly [number, number, number] } = {},
): void {
  const scale = opts.scale ?? 1;
  const color = opts.color ?? [1, 1, 1];
  const plane = width * height;
  [...text.toLowerCase()].forEach((ch, k) => {
    const glyph = GLYPHS[ch] ?? UNKNOWN;
    const gx = x + k * (GLYPH_WIDTH + 1) * scale;
    for (let r = 0; r < GLYPH_HEIGHT; r++) {
      for (let c = 0; c < GLYPH_WIDTH; c++) {
        if (glyph[r * GLYPH_WIDTH + c] !== '1') continue;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const px = gx + c * scale + dx;
            const py = y + r * scale + dy;
            if (px < 0 || py < 0 || px >= width || py >= height) continue;
            for (let ch3 = 0; ch3 < 3; ch3++) planes[ch3 * plane + py * width + px] = color[ch3]!;
          }
        }
      }
    }
  });
}
