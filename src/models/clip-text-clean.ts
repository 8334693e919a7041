// CLIP's prompt clean-up before tokenisation (openai/CLIP's basic_clean + whitespace_clean, the parts of
// ftfy.fix_text that need no statistics, Python's html.unescape): text in, normalised text out.

// Named HTML entities understood by `unescapeHtml` (with the `;`); the first group also without it, as
// HTML5's legacy names are. Numeric references (`&#233;`, `&#xe9;`) are always decoded.
const LEGACY_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  nbsp: '\u00a0',
  copy: '©',
  reg: '®',
  deg: '°',
  times: '×',
  divide: '÷',
  middot: '·',
  para: '¶',
  sect: '§',
  pound: '£',
  yen: '¥',
  cent: '¢',
  plusmn: '±',
  laquo: '«',
  raquo: '»',
  frac12: '½',
  frac14: '¼',
  frac34: '¾',
};
const ENTITIES: Record<string, string> = {
  ...LEGACY_ENTITIES,
  apos: "'",
  euro: '€',
  trade: '™',
  hellip: '…',
  mdash: '—',
  ndash: '–',
  lsquo: '‘',
  rsquo: '’',
  ldquo: '“',
  rdquo: '”',
  bull: '•',
};
// What HTML makes of the character references &#128; … &#159; (windows-1252).
const CP1252_C1 = '€\x81‚ƒ„…†‡ˆ‰Š‹Œ\x8dŽ\x8f\x90‘’“”•–—˜™š›œ\x9džŸ';
const ENTITY_RE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

/** One pass of HTML character-reference decoding, following the rules of Python's `html.unescape`. */
function unescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(ENTITY_RE, (whole, ref: string) => {
    if (ref.startsWith('#')) {
      const hex = ref[1] === 'x' || ref[1] === 'X';
      const cp = Number.parseInt(ref.slice(hex ? 2 : 1).replace(';', ''), hex ? 16 : 10);
      if (cp === 0) return '\ufffd';
      if (cp === 0x0d) return '\r';
      if (cp >= 0x80 && cp <= 0x9f) return CP1252_C1[cp - 0x80]!;
      if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return '\ufffd';
      if ((cp >= 0x01 && cp <= 0x08) || cp === 0x0b || (cp >= 0x0e && cp <= 0x1f) || cp === 0x7f) return '';
      if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return '';
      return String.fromCodePoint(cp);
    }
    const name = ref.endsWith(';') ? ref.slice(0, -1) : ref;
    if (ref.endsWith(';') && ENTITIES[name] !== undefined) return ENTITIES[name];
    // the longest legacy name that starts the reference, e.g. `&ampx` → `&x`
    for (let n = ref.length; n >= 2; n--) {
      const value = LEGACY_ENTITIES[ref.slice(0, n)];
      if (value !== undefined) return value + ref.slice(n);
    }
    return whole;
  });
}

// Python's `\s` as the `regex` module reads it (the White_Space property), used by CLIP's whitespace_clean.
const WHITESPACE_RUN = /\p{White_Space}+/gu;
// Control characters that ftfy.fix_text removes.
const isControl = (cp: number) =>
  cp <= 0x08 ||
  cp === 0x0b ||
  (cp >= 0x0e && cp <= 0x1f) ||
  cp === 0x7f ||
  (cp >= 0x206a && cp <= 0x206f) ||
  cp === 0xfeff ||
  (cp >= 0xfff9 && cp <= 0xfffc) ||
  (cp >= 0xe0000 && cp <= 0xe007f);
const LATIN_LIGATURES = /[\u0132\u0133\u013f\u0140\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g;
const WIDE_FORMS = /[\u3000\uff01-\uffee]/g;

/**
 * Normalises a prompt the way CLIP's tokenizer does before splitting it: the parts of `ftfy.fix_text`
 * that need no statistics (HTML entities when the text has no `<`, Latin ligatures and full-width forms
 * to their plain letters, curly quotes to straight ones, control characters removed, NFC), then
 * `html.unescape` twice, whitespace runs collapsed to one space, trimmed and lower-cased. ftfy's mojibake
 * repair (text decoded with the wrong codec) is not done.
 */
export function cleanText(text: string): string {
  let t = text.includes('<') ? text : unescapeHtml(text);
  t = t
    .replace(LATIN_LIGATURES, (ch) => ch.normalize('NFKC'))
    .replace(WIDE_FORMS, (ch) => ch.normalize('NFKC'))
    .replace(/[\u02bc\u2018-\u201b]/g, "'")
    .replace(/[\u201c-\u201f]/g, '"');
  t = Array.from(t)
    .filter((ch) => !isControl(ch.codePointAt(0)!))
    .join('')
    .normalize('NFC');
  t = unescapeHtml(unescapeHtml(t));
  return t.replace(WHITESPACE_RUN, ' ').trim().toLowerCase();
}
