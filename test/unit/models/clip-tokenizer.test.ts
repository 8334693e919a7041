import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cleanText } from '../../../src/models/clip-text-clean.js';
import { bytesToUnicode, CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'tiny-sd-a');
const TOKENIZER_DIR = join(FIXTURE, 'tokenizer');
const goldens = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer_goldens.json'), 'utf8')) as {
  prompts: string[];
  ids: number[][];
};
const tok = CLIPTokenizer.fromDirectorySync(TOKENIZER_DIR);
// From the fixture's tokenizer_config.json / README: 16 tokens, bos 998, eos = pad 999.
const BOS = 998;
const EOS = 999;

const scratch = mkdtempSync(join(tmpdir(), 'attnkit-clip-tokenizer-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A tokenizer folder in the scratch dir with the fixture's vocab and merges and the given extra files. */
function tokenizerFolder(
  name: string,
  files: Record<string, string> = {},
  copy = ['vocab.json', 'merges.txt'],
) {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  for (const f of copy) copyFileSync(join(TOKENIZER_DIR, f), join(dir, f));
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
}

// --- loading ---------------------------------------------------------------------------------------------

test('fromDirectory reads the config of the golden folder', async () => {
  const asyncTok = await CLIPTokenizer.fromDirectory(TOKENIZER_DIR);
  for (const t of [tok, asyncTok]) {
    assert.equal(t.modelMaxLength, 16);
    assert.equal(t.vocabSize, 1000);
    assert.deepEqual([t.bosTokenId, t.eosTokenId, t.padTokenId, t.unkTokenId], [BOS, EOS, EOS, EOS]);
  }
  assert.deepEqual(asyncTok.encode(goldens.prompts[0]!), goldens.ids[0]);
});

test('without tokenizer_config.json: 77 tokens, pad = eos (Stable Diffusion 1.x)', () => {
  const t = CLIPTokenizer.fromDirectorySync(tokenizerFolder('no-config'));
  assert.equal(t.modelMaxLength, 77);
  assert.equal(t.padTokenId, EOS);
  assert.deepEqual(t.call('a').ids[0]!.slice(0, 4), [BOS, 320, EOS, EOS]);
});

test('pad_token "!" (Stable Diffusion 2.x) pads with the id of "!"', () => {
  const dir = tokenizerFolder('sd2', {
    'tokenizer_config.json': JSON.stringify({ model_max_length: 8, pad_token: '!' }),
  });
  const t = CLIPTokenizer.fromDirectorySync(dir);
  assert.equal(t.padTokenId, 0); // "!" is the first byte symbol of the vocabulary
  assert.deepEqual(t.call('a red').ids[0], [BOS, 320, 651, EOS, 0, 0, 0, 0]);
});

test('special tokens saved as AddedToken objects; special_tokens_map.json overrides the config', () => {
  const added = (content: string) => ({ __type: 'AddedToken', content, lstrip: false, rstrip: false });
  const dir = tokenizerFolder('added-token', {
    'tokenizer_config.json': JSON.stringify({ model_max_length: 6, pad_token: added('<|endoftext|>') }),
    'special_tokens_map.json': JSON.stringify({ pad_token: added('!'), bos_token: added('<|startoftext|>') }),
  });
  const t = CLIPTokenizer.fromDirectorySync(dir);
  assert.equal(t.modelMaxLength, 6);
  assert.equal(t.padTokenId, 0);
  assert.equal(t.bosTokenId, BOS);
});

test('a missing vocab.json or merges.txt names the file and what the folder needs', async () => {
  for (const missing of ['vocab.json', 'merges.txt']) {
    const dir = tokenizerFolder(`missing-${missing}`, {}, [
      missing === 'vocab.json' ? 'merges.txt' : 'vocab.json',
    ]);
    const expected = (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, new RegExp(`${join(dir, missing).replaceAll('.', '\\.')} is missing`));
      assert.match(err.message, /needs vocab\.json .* and merges\.txt/);
      return true;
    };
    assert.throws(() => CLIPTokenizer.fromDirectorySync(dir), expected);
    await assert.rejects(CLIPTokenizer.fromDirectory(dir), expected);
  }
});

test('pointing at a model folder suggests its tokenizer/ subfolder; a missing folder says so', () => {
  assert.throws(() => CLIPTokenizer.fromDirectorySync(FIXTURE), /Did you mean .*tokenizer\?/);
  assert.throws(() => CLIPTokenizer.fromDirectorySync(join(scratch, 'nope')), /nope is not a folder/);
});

test('a malformed merges line or vocab.json is reported with the file', () => {
  const badMerges = tokenizerFolder('bad-merges', { 'merges.txt': '#version: 0.2\na b\nc d e\n' }, [
    'vocab.json',
  ]);
  assert.throws(() => CLIPTokenizer.fromDirectorySync(badMerges), /merges\.txt line 3 is "c d e"/);
  const badVocab = tokenizerFolder('bad-vocab', { 'vocab.json': '{"a": 0,' }, ['merges.txt']);
  assert.throws(() => CLIPTokenizer.fromDirectorySync(badVocab), /vocab\.json is not valid JSON/);
});

// --- byte table and BPE ----------------------------------------------------------------------------------

test('bytesToUnicode: printable Latin-1 bytes stand for themselves, the other 68 take U+0100…', () => {
  const table = bytesToUnicode();
  assert.equal(table.length, 256);
  assert.equal(new Set(table).size, 256);
  assert.equal(table[0x21], '!');
  assert.equal(table[0x7e], '~');
  assert.equal(table[0xe9], 'é');
  assert.equal(table[0x00], '\u0100'); // first non-printable byte
  assert.equal(table[0x20], '\u0120'); // space: 33rd non-printable ("Ġ")
  assert.equal(table[0x7f], '\u0121'); // DEL follows
  assert.equal(table[0xad], '\u0143'); // soft hyphen: the 68th and last
});

test('BPE merges the lowest-ranked pair first, left to right, with </w> on the last symbol', () => {
  const symbols = ['a', 'b', 'c', 'a</w>', 'b</w>', 'c</w>', 'ab', 'bc</w>', 'aa', 'aab</w>'];
  const vocab = Object.fromEntries(symbols.map((s, i) => [s, i]));
  const make = (merges: string[]) =>
    new CLIPTokenizer({ vocab, merges, bosToken: 'a', eosToken: 'b', unkToken: 'c' });
  const spell = (t: CLIPTokenizer, text: string) => t.encode(text).map((id) => t.idToToken(id));
  // "abc" = a b c</w>: with "a b" ranked first → ab c</w>; with "b c</w>" first → a bc</w>.
  assert.deepEqual(spell(make(['a b', 'b c</w>']), 'abc'), ['ab', 'c</w>']);
  assert.deepEqual(spell(make(['b c</w>', 'a b']), 'abc'), ['a', 'bc</w>']);
  // "aaab" = a a a b</w>: "a a" merges the first two only (non-overlapping), then "aa b</w>"… is not a merge.
  assert.deepEqual(spell(make(['a a']), 'aaab'), ['aa', 'a', 'b</w>']);
  // A merge result missing from the vocabulary becomes the unk token.
  assert.deepEqual(spell(make(['c c</w>']), 'cc'), ['c']);
});

// --- goldens ---------------------------------------------------------------------------------------------

test('every golden prompt gives exactly the ids of openai/CLIP', () => {
  assert.equal(goldens.prompts.length, goldens.ids.length);
  for (const [i, prompt] of goldens.prompts.entries()) {
    assert.deepEqual(tok.encode(prompt), goldens.ids[i], `prompt ${JSON.stringify(prompt)}`);
  }
});

test('clean-up: case, whitespace, HTML entities, curly quotes, full-width forms, ligatures, NFC', () => {
  assert.equal(cleanText('  A  Small\tYELLOW\nstar  '), 'a small yellow star');
  assert.equal(cleanText('&amp;lt;b&amp;gt; &#233;&#xE9; &copy &hellip;'), '<b> éé © …');
  assert.equal(cleanText('a < b &amp;amp;'), 'a < b &'); // with a "<", no extra unescape pass
  const same = (a: string, b: string) => assert.deepEqual(tok.encode(a), tok.encode(b), `${a} vs ${b}`);
  same('the cat’s hat isn’t red', "the cat's hat isn't red");
  same('ＲＥＤ ｃｉｒｃｌｅ', 'red circle');
  same('ﬁsh', 'fish');
  same('cafe\u0301', 'café');
  same('A RED Circle', 'a red circle');
  same('a\u0000 red\u200b', 'a red\u200b'); // control character removed (zero-width space is not one)
});

test('unicode and punctuation map byte by byte', () => {
  // 猫 = E7 8C AB: E7 is printable (id 106 + 0xE7 − 0xAE), 8C is remapped (id 221 + 0x8C − 0x7F),
  // AB printable (94 + 0xAB − 0xA1) and last, so its "</w>" form (+ 256). The fixture has no merges for them.
  assert.deepEqual(tok.encode('猫'), [163, 234, 104 + 256]);
  // 🙂 = F0 9F 99 82.
  assert.deepEqual(tok.encode('🙂'), [
    106 + 0xf0 - 0xae,
    221 + 0x9f - 0x7f,
    221 + 0x99 - 0x7f,
    221 + 0x82 - 0x7f + 256,
  ]);
  // Digits are single tokens; a run of punctuation is one pre-token.
  assert.deepEqual(tok.encode('12'), [16 + 256, 17 + 256]);
  assert.deepEqual(tok.encode('1').concat(tok.encode('2')), tok.encode('12'));
  // Special tokens typed in the text stay whole.
  assert.deepEqual(tok.encode('<|startoftext|>a<|endoftext|>'), [BOS, 320, EOS]);
});

test('decode inverts encode up to spacing at word ends', () => {
  assert.equal(
    tok.decode(tok.encode('A red circle above a blue square')),
    'a red circle above a blue square',
  );
  assert.equal(tok.decode(tok.encode('café 猫 🙂')), 'café 猫 🙂');
  assert.equal(tok.decode(tok.call('a red circle').ids[0]!, { skipSpecialTokens: true }), 'a red circle');
  assert.throws(() => tok.decode([5000]), /id 5000 is not in the vocabulary/);
});

// --- batching --------------------------------------------------------------------------------------------

test('call: bos, ids, eos, then padding to model_max_length with mask 0', () => {
  const out = tok.call(['a red circle', 'the cat']);
  assert.deepEqual(out.ids[0], [BOS, 320, 651, 625, ...Array(12).fill(EOS)]);
  assert.deepEqual(out.attentionMask[0], [1, 1, 1, 1, 1, ...Array(11).fill(0)]);
  assert.deepEqual(out.ids[1]!.slice(0, 4), [BOS, 547, 731, EOS]);
  assert.deepEqual(out.truncated, [false, false]);
  assert.deepEqual(tok.call('a red circle').ids, [out.ids[0]]);
});

test('call: an empty prompt is bos, eos and padding', () => {
  for (const empty of ['', '   \n ']) {
    const out = tok.call(empty);
    assert.deepEqual(out.ids[0], [BOS, EOS, ...Array(14).fill(EOS)]);
    assert.deepEqual(out.attentionMask[0], [1, 1, ...Array(14).fill(0)]);
  }
  assert.deepEqual(tok.encode(''), []);
  assert.deepEqual(tok.call('', { padding: false }).ids, [[BOS, EOS]]);
});

test('call: padding false / longest, maxLength, truncation off', () => {
  assert.deepEqual(tok.call('a red', { padding: false }).ids, [[BOS, 320, 651, EOS]]);
  const longest = tok.call(['a', 'a red circle'], { padding: 'longest' });
  assert.deepEqual(longest.ids, [
    [BOS, 320, EOS, EOS, EOS],
    [BOS, 320, 651, 625, EOS],
  ]);
  assert.deepEqual(longest.attentionMask[0], [1, 1, 1, 0, 0]);
  assert.deepEqual(tok.call('a red circle', { maxLength: 6 }).ids[0], [BOS, 320, 651, 625, EOS, EOS]);
  const long = goldens.prompts[9]!; // 40 × "a"
  const untruncated = tok.call(long, { truncation: false, onWarning: assert.fail });
  assert.equal(untruncated.ids[0]!.length, 42);
  assert.deepEqual(untruncated.truncated, [false]);
  assert.throws(() => tok.call('a', { maxLength: 1 }), /maxLength must be an integer ≥ 2/);
});

test('call: truncation keeps the first maxLength − 2 ids and warns with the dropped text', () => {
  const warnings: string[] = [];
  const onWarning = (m: string) => warnings.push(m);
  const out = tok.call([goldens.prompts[9]!, 'a red'], { onWarning });
  assert.deepEqual(out.ids[0], [BOS, ...Array(14).fill(320), EOS]);
  assert.deepEqual(out.attentionMask[0], Array(16).fill(1));
  assert.deepEqual(out.truncated, [true, false]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /truncated because CLIP can only handle sequences up to 16 tokens/);
  assert.ok(warnings[0]!.endsWith(`"${Array(26).fill('a').join(' ')}"`), warnings[0]);

  // Exactly 14 ids fit without a warning; 15 drop the last one.
  const a = (n: number) => Array(n).fill('a').join(' ');
  warnings.length = 0;
  assert.deepEqual(tok.call(a(14), { onWarning }).truncated, [false]);
  assert.equal(warnings.length, 0);
  assert.deepEqual(tok.call(`${a(14)} red`, { onWarning }).truncated, [true]);
  assert.ok(warnings[0]!.endsWith('tokens: "red"'));
});

// --- word ↔ token positions ------------------------------------------------------------------------------

test('tokenIndices: one-token words, repeated words, punctuation, phrases, case', () => {
  assert.deepEqual(tok.tokenIndices('a red circle', 'circle'), [3]);
  assert.deepEqual(tok.tokenIndices('a red circle above a blue square', 'a'), [1, 5]);
  // golden ids: a small yellow star , on the left ! !</w>  → "star" is position 4, its comma 5
  assert.deepEqual(tok.tokenIndices(goldens.prompts[1]!, 'star'), [4]);
  assert.deepEqual(tok.tokenIndices(goldens.prompts[1]!, 'yellow star'), [3, 4]);
  assert.deepEqual(tok.tokenIndices(goldens.prompts[1]!, 'LEFT'), [8]);
  assert.deepEqual(tok.tokenIndices(goldens.prompts[1]!, 3), [4, 5]); // the word "star,"
  assert.throws(() => tok.tokenIndices('a red circle', 'square'), /"square" is not a word of the prompt/);
  assert.throws(() => tok.tokenIndices('a red circle', 3), /out of range; the prompt has 3 words/);
});

test('tokenIndices: a word split in several BPE tokens gives all of their positions', () => {
  const prompt = goldens.prompts[5]!; // "an unseenword zxqv"
  const golden = goldens.ids[5]!;
  const unseen = tok.tokenIndices(prompt, 'unseenword');
  assert.deepEqual(unseen, [2, 3, 4, 5, 6, 7]);
  assert.equal(tok.decode(unseen.map((i) => golden[i - 1]!)), 'unseenword');
  const zxqv = tok.tokenIndices(prompt, 'zxqv');
  assert.deepEqual(zxqv, [8, 9, 10, 11]);
  assert.equal(tok.decode(zxqv.map((i) => golden[i - 1]!)), 'zxqv');
  // Positions beyond the 16-token window are dropped.
  assert.deepEqual(tok.tokenIndices(`a a a a a a a a a a a a ${prompt}`, 'zxqv'), []);
  // keptTokenIndices: the same positions, and a word cut off entirely is an error that names it (by word or index)
  const long = `a a a a a a a a a a a a ${prompt}`;
  assert.deepEqual(tok.keptTokenIndices(`a a a a a a a a a ${prompt}`, 'unseenword'), [11, 12, 13, 14]);
  assert.throws(
    () => tok.keptTokenIndices(long, 'zxqv'),
    /"zxqv" lies past the first 16 tokens of the prompt/,
  );
  assert.throws(() => tok.keptTokenIndices(long, 14), /"zxqv" lies past the first 16 tokens/);
  assert.deepEqual(tok.tokenIndices(`a a a a a a a a a ${prompt}`, 'unseenword'), [11, 12, 13, 14]);
  assert.deepEqual(
    tok.tokenIndices(`a a a a a a a a a ${prompt}`, 'unseenword', { maxLength: 77 }),
    [11, 12, 13, 14, 15, 16],
  );
});

test('wordTokens: each whitespace word of the cleaned prompt and its positions', () => {
  const words = tok.wordTokens(goldens.prompts[2]!); // "the cat's hat isn't red"
  assert.deepEqual(
    words.map((w) => w.word),
    ['the', "cat's", 'hat', "isn't", 'red'],
  );
  // The positions cover 1…12 in order, one run per word, and each run decodes back to its word's pieces.
  assert.deepEqual(
    words.flatMap((w) => w.indices),
    Array.from({ length: 12 }, (_, i) => i + 1),
  );
  const golden = goldens.ids[2]!;
  assert.deepEqual(
    words.map((w) => tok.decode(w.indices.map((i) => golden[i - 1]!))),
    ['the', "cat 's", 'hat', "isn 't", 'red'],
  );
  assert.deepEqual(tok.wordTokens(''), []);
  assert.deepEqual(tok.wordTokens('A  RED'), [
    { word: 'a', indices: [1] },
    { word: 'red', indices: [2] },
  ]);
});
