// What a method may ask of the text side: which positions of the text states a word of a prompt covers, and
// how long those states are. Cross-attention's keys are these positions, so a method that edits or reads the
// maps of a word (Prompt-to-Prompt, DAAM, local blending) needs them — but never the text encoder itself.
// A model's tokenizer implements this interface (CLIPTokenizer; SDXL's two CLIP tokenizers and an MM-DiT's
// text side can too), and the pipeline hands it to the methods.

/** A whitespace-separated word of the cleaned prompt and the positions of its tokens (bos at 0). */
export interface WordTokens {
  word: string;
  indices: number[];
}

/** Options of a token lookup: the length of the text states the positions count in. */
export interface TokenLookupOptions {
  /** Length of the text states counted in (default the lookup's modelMaxLength). */
  maxLength?: number;
}

/** A prompt's ids as the text encoder sees them, without padding (what `ids` holds, one row per text). */
export interface UnpaddedOptions extends TokenLookupOptions {
  padding: false;
  /** Called with a message when truncation drops tokens. */
  onWarning?: (message: string) => void;
}

/** Positions count from the first text state (bos at 0); those past maxLength − 1 are never given. */
export interface TokenLookup {
  /** Number of text states cross-attention attends to (CLIP: 77). */
  readonly modelMaxLength: number;
  /** Every whitespace-separated word of the cleaned prompt with its positions (none where truncation cut it). */
  wordTokens(prompt: string, options?: TokenLookupOptions): readonly WordTokens[];
  /**
   * Positions of a word (a run of the prompt's words, every occurrence) or of the word at an index; throws
   * when the prompt lacks the word, gives none when truncation cut it off.
   */
  tokenIndices(prompt: string, word: string | number, options?: TokenLookupOptions): number[];
  /** `tokenIndices`, but a word truncation cut off entirely is an error that says so. */
  keptTokenIndices(prompt: string, word: string | number, options?: TokenLookupOptions): number[];
  /** The prompt's ids, unpadded: bos, the ids truncation keeps, eos (so the prompt's length in states). */
  call(prompt: string, options: UnpaddedOptions): { ids: number[][] };
}
