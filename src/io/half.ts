// float16 / bfloat16 ↔ float32 bit patterns: exact conversions (NaN payloads kept, ties to even when rounding),
// used by the safetensors reader and writer.

let f16Table: Uint32Array | null = null;

/** float32 bit pattern of every float16 bit pattern (NaN payloads kept). */
function float16Table(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = float16BitsToFloat32Bits(h);
  f16Table = table;
  return table;
}

function float16BitsToFloat32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf, NaN
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // normal: rebias 15 → 127
  if (mant === 0) return sign >>> 0; // ±0
  // subnormal: mant · 2^-24, normalised for float32
  let e = 113; // exponent field of 2^-14
  let m = mant;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** The float32 value of a float16 bit pattern. */
export function float16ToFloat32(bits: number): number {
  const u = new Uint32Array([float16BitsToFloat32Bits(bits & 0xffff)]);
  return new Float32Array(u.buffer)[0]!;
}

/** The float32 value of a bfloat16 bit pattern (the top half of a float32). */
export function bfloat16ToFloat32(bits: number): number {
  const u = new Uint32Array([(bits & 0xffff) << 16]);
  return new Float32Array(u.buffer)[0]!;
}

/** The float16 bit pattern nearest to a float32 bit pattern, ties to even; overflow → ±inf, NaN stays NaN. */
export function float32BitsToFloat16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13); // inf, quiet NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // float16 subnormal (or zero): significand · 2^(e - 14 - 10) in units of 2^-24
    if (e < -10) return sign; // below half the smallest subnormal
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half; // a carry to 0x400 is the smallest normal, correctly encoded
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++; // a carry may reach 0x7c00 = inf
  return sign | half;
}

/** The bfloat16 bit pattern nearest to a float32 bit pattern, ties to even; NaN stays (quiet) NaN. */
export function float32BitsToBfloat16Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x0040) & 0xffff; // NaN: keep it NaN, quiet
  const rounded = x + 0x7fff + ((x >>> 16) & 1); // up past halfway, or at halfway when the kept bit is odd
  return (rounded >>> 16) & 0xffff; // a carry into the exponent is the next binade (or inf), as it should be
}

/** The bfloat16 bit pattern nearest to `value` (rounded to float32 first), ties to even. */
export function float32ToBfloat16(value: number): number {
  const f = new Float32Array([value]);
  return float32BitsToBfloat16Bits(new Uint32Array(f.buffer)[0]!);
}

/**
 * Writes the float32 bit patterns of `count` F16 or BF16 values from `src` into `out` starting at `at`.
 * BF16 is the top half of a float32 (a 16-bit shift); F16 goes through a 65,536-entry table.
 */
export function halfToFloat32Bits(
  dtype: 'F16' | 'BF16',
  src: Uint16Array,
  count: number,
  out: Uint32Array,
  at: number,
): void {
  if (dtype === 'BF16') {
    for (let i = 0; i < count; i++) out[at + i] = src[i]! << 16;
    return;
  }
  const table = float16Table();
  for (let i = 0; i < count; i++) out[at + i] = table[src[i]!]!;
}

/** The float16 bit pattern nearest to `value` (rounded to float32 first), ties to even. */
export function float32ToFloat16(value: number): number {
  const f = new Float32Array([value]);
  return float32BitsToFloat16Bits(new Uint32Array(f.buffer)[0]!);
}
