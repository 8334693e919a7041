// Quoting untrusted JSON in error messages: a bounded preview that never walks more than it prints.

/**
 * A JSON-like preview of a parsed JSON value (a config, a safetensors header), at most `max` characters; it walks only as much of the value as it
 * prints, so a huge or deeply nested value (JSON.stringify would overflow the stack) costs nothing.
 */
export function jsonPreview(v: unknown, max = 80): string {
  if (v === undefined) return 'nothing';
  let out = '';
  const put = (s: string): boolean => {
    out += s;
    return out.length <= max;
  };
  const walk = (x: unknown): boolean => {
    if (typeof x === 'string') return put(JSON.stringify(x.slice(0, max)));
    if (Array.isArray(x)) {
      if (!put('[')) return false;
      for (let i = 0; i < x.length; i++) if ((i > 0 && !put(',')) || !walk(x[i])) return false;
      return put(']');
    }
    if (typeof x === 'object' && x !== null) {
      if (!put('{')) return false;
      let first = true;
      for (const key in x) {
        if (!Object.hasOwn(x, key)) continue;
        if ((!first && !put(',')) || !walk(key) || !put(':') || !walk((x as Record<string, unknown>)[key]))
          return false;
        first = false;
      }
      return put('}');
    }
    return put(typeof x === 'number' && !Number.isFinite(x) ? 'null' : String(x)); // as JSON writes it
  };
  walk(v);
  return out.length > max ? `${out.slice(0, max - 3)}...` : out;
}
