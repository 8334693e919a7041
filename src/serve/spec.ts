// What a client may ask the server to run: the four job kinds (generate, maps, segment, edit) as typed specs and
// the JSON schemas fastify validates request bodies against before anything is queued. Every size that drives
// an allocation or a loop is bounded here, so a request cannot ask for more than the limits say.

/** The attention functions a job may pick (the names `attnkit generate --attention` takes). */
export const ATTENTION_FUNCTIONS = [
  'softmax',
  'flash',
  'chunked',
  'sliced',
  'linear-elu',
  'linear-relu',
  'agent',
  'window',
] as const;

/** The job kinds, one route each: POST /api/jobs/<kind>. */
export const JOB_KINDS = ['generate', 'maps', 'segment', 'edit'] as const;
/** A job kind. */
export type JobKind = (typeof JOB_KINDS)[number];

/** The bounds of the server: a request outside them is a 400 naming the field. */
export const LIMITS = {
  promptChars: 400,
  steps: 100,
  imageSide: 1024,
  seed: 2 ** 31 - 1,
  guidance: 50,
  words: 16,
  wordChars: 64,
  blockCache: 50,
  /** Attention heads a request may pick from (SD 1.5 has 8 per layer, SDXL up to 20). */
  heads: 64,
  /** Layers a maps request may name (SD 1.5 has 16 cross-attention layers, SDXL 70). */
  layers: 128,
  /** Request bodies over this many bytes are refused with 413 before they are parsed. */
  bodyBytes: 64 * 1024,
} as const;

/** The efficient-attention options every job kind takes (the flags of `attnkit generate`). */
export interface EfficiencyOptions {
  /** Attention function (default: the fused flash kernel). */
  attention?: (typeof ATTENTION_FUNCTIONS)[number];
  /** Token merging ratio on self-attention (ToMe, Bolya & Hoffman 2023), in [0, 1). */
  tome?: number;
  /** Block caching: reuse every attention block for n − 1 of each n steps (1 = off). */
  blockCache?: number;
}

/** What every job has: the model by name (never a path), the seed, steps and guidance. */
export interface CommonSpec extends EfficiencyOptions {
  model?: string;
  seed?: number;
  steps?: number;
  guidance?: number;
}

/** Text to image. */
export interface GenerateSpec extends CommonSpec {
  kind: 'generate';
  prompt: string;
  negative?: string;
  width?: number;
  height?: number;
}

/** A UNet place, as `AttentionCall.place` names it: the down, mid or up blocks. */
export type UNetPlace = 'down' | 'mid' | 'up';

/**
 * Text to image with DAAM's per-word cross-attention heat-maps, aggregated over the layers (the `AttentionCall`
 * fields: steps, map sides, places, module paths) and heads a request chooses.
 */
export interface MapsSpec extends CommonSpec {
  kind: 'maps';
  prompt: string;
  /** Steps aggregated, [start, end) (default every step). */
  mapSteps?: [number, number];
  /** Map sides aggregated, e.g. [16] (default every side). */
  resolutions?: number[];
  /** UNet places aggregated (default down and up: DAAM leaves the mid block out). */
  places?: UNetPlace[];
  /**
   * Cross-attention layers aggregated, by module path as the attention store names them
   * (`up_blocks.2.attentions.0.transformer_blocks.0.attn2`); default every layer of the chosen places and sides.
   */
  layers?: string[];
  /** One attention head (0-based) instead of the mean over heads (the default). */
  head?: number;
}

/** A word's mask from its cross-attention (DAAM map + threshold), as `attnkit segment`. */
export interface SegmentSpec extends CommonSpec {
  kind: 'segment';
  prompt: string;
  word: string;
  /** In [0, 1] after min–max normalisation (default 0.4, DAAM's). */
  threshold?: number;
}

/** Training-free editing: Prompt-to-Prompt, MasaCtrl or Plug-and-Play, as `attnkit edit`. */
export interface EditSpec extends CommonSpec {
  kind: 'edit';
  source: string;
  /** Default: the source (a pure reweighting). */
  target?: string;
  method?: 'p2p' | 'masactrl' | 'pnp';
  /** Prompt-to-Prompt's edit (default auto from the prompts). */
  p2p?: 'auto' | 'replace' | 'refine' | 'reweight';
  /** Prompt-to-Prompt reweighting: word → scale of its cross-attention. */
  reweight?: Record<string, number>;
  /** LocalBlend: only the regions of these words change. */
  blend?: string[];
}

/** A job as a request asks for it (its kind from the route). */
export type JobSpec = GenerateSpec | MapsSpec | SegmentSpec | EditSpec;

type Schema = Record<string, unknown>;

const text = (maxLength: number): Schema => ({ type: 'string', minLength: 1, maxLength });
const int = (minimum: number, maximum: number): Schema => ({ type: 'integer', minimum, maximum });
const word = text(LIMITS.wordChars);

function common(models: readonly string[]): Record<string, Schema> {
  return {
    model: { type: 'string', enum: [...models] },
    seed: int(0, LIMITS.seed),
    steps: int(1, LIMITS.steps),
    guidance: { type: 'number', minimum: 0, maximum: LIMITS.guidance },
    attention: { type: 'string', enum: [...ATTENTION_FUNCTIONS] },
    tome: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
    blockCache: int(1, LIMITS.blockCache),
  };
}

function object(properties: Record<string, Schema>, required: string[]): Schema {
  return { type: 'object', additionalProperties: false, required, properties };
}

/** The body schema of POST /api/jobs/<kind>, with the server's model names as the only models. */
export function jobSchema(kind: JobKind, models: readonly string[]): Schema {
  const c = common(models);
  const side = { type: 'integer', minimum: 8, maximum: LIMITS.imageSide, multipleOf: 8 };
  switch (kind) {
    case 'generate':
      return object(
        {
          ...c,
          prompt: text(LIMITS.promptChars),
          negative: text(LIMITS.promptChars),
          width: side,
          height: side,
        },
        ['prompt'],
      );
    case 'maps':
      return object(
        {
          ...c,
          prompt: text(LIMITS.promptChars),
          mapSteps: {
            type: 'array',
            minItems: 2,
            maxItems: 2,
            items: int(0, LIMITS.steps),
          },
          resolutions: { type: 'array', minItems: 1, maxItems: 8, items: int(1, LIMITS.imageSide) },
          places: {
            type: 'array',
            minItems: 1,
            maxItems: 3,
            uniqueItems: true,
            items: { type: 'string', enum: [...UNET_PLACES] },
          },
          layers: {
            type: 'array',
            minItems: 1,
            maxItems: LIMITS.layers,
            items: { type: 'string', maxLength: 200, pattern: '^[a-z0-9_]+(\\.[a-z0-9_]+)*$' },
          },
          head: int(0, LIMITS.heads - 1),
        },
        ['prompt'],
      );
    case 'segment':
      return object(
        {
          ...c,
          prompt: text(LIMITS.promptChars),
          word,
          threshold: { type: 'number', minimum: 0, maximum: 1 },
        },
        ['prompt', 'word'],
      );
    case 'edit':
      return object(
        {
          ...c,
          source: text(LIMITS.promptChars),
          target: text(LIMITS.promptChars),
          method: { type: 'string', enum: ['p2p', 'masactrl', 'pnp'] },
          p2p: { type: 'string', enum: ['auto', 'replace', 'refine', 'reweight'] },
          reweight: {
            type: 'object',
            maxProperties: LIMITS.words,
            propertyNames: { maxLength: LIMITS.wordChars },
            additionalProperties: { type: 'number', minimum: -10, maximum: 10 },
          },
          blend: { type: 'array', minItems: 1, maxItems: LIMITS.words, items: word },
        },
        ['source'],
      );
  }
}

/**
 * What the schema cannot say: relations between fields. Returns the problem (naming the field) or undefined.
 */
export function checkSpec(spec: JobSpec): string | undefined {
  const steps = spec.steps ?? defaultSteps(spec.kind);
  const reader =
    spec.kind === 'maps' || spec.kind === 'segment'
      ? `a ${spec.kind} job`
      : spec.kind === 'edit' && (spec.method ?? 'p2p') === 'p2p'
        ? 'a p2p edit'
        : undefined;
  if (reader && spec.attention && !FORM_PROBABILITIES.includes(spec.attention))
    return (
      `body/attention: ${reader} reads attention probabilities, which ${spec.attention} never forms; leave ` +
      'attention out (the layers no method reads run flash) or pick softmax, agent or window'
    );
  if (spec.kind === 'edit' && spec.method === 'masactrl' && steps <= MASACTRL_START)
    return `body/steps: MasaCtrl starts at step ${MASACTRL_START}; give at least ${MASACTRL_START + 1} steps`;
  if (spec.kind === 'maps' && spec.mapSteps) {
    const [a, b] = spec.mapSteps;
    if (!(a < b && b <= steps))
      return `body/mapSteps [${a}, ${b}) is not a range of the ${steps} steps; give 0 ≤ start < end ≤ steps`;
  }
  if (spec.kind === 'maps' && spec.layers) {
    const places = spec.places ?? DAAM_PLACES;
    for (const path of spec.layers) {
      const place = placeOfLayer(path);
      if (!place)
        return `body/layers: '${path}' is not a layer of the down, mid or up blocks; name cross-attention layers as the maps job's maps.json lists them`;
      if (!places.includes(place))
        return `body/layers: '${path}' is in the ${place} blocks, which body/places (${places.join(', ')}) leaves out; add ${place} to places or leave the layer out`;
    }
  }
  if (spec.kind === 'segment' && !promptWords(spec.prompt).includes(spec.word.toLowerCase()))
    return `body/word '${spec.word}' is not a word of the prompt; pick one of: ${promptWords(spec.prompt).join(', ')}`;
  if (spec.kind === 'edit') {
    const method = spec.method ?? 'p2p';
    if (method !== 'p2p' && (spec.p2p || spec.reweight || spec.blend))
      return `body/${spec.p2p ? 'p2p' : spec.reweight ? 'reweight' : 'blend'} is a Prompt-to-Prompt option; it does nothing with method ${method}`;
    const words = promptWords(`${spec.source} ${spec.target ?? ''}`);
    for (const w of [...Object.keys(spec.reweight ?? {}), ...(spec.blend ?? [])])
      if (!words.includes(w.toLowerCase()))
        return `body/${spec.blend?.includes(w) ? 'blend' : 'reweight'}: '${w}' is not a word of the prompts`;
  }
  return undefined;
}

/** The UNet places, in forward order. */
export const UNET_PLACES: readonly UNetPlace[] = ['down', 'mid', 'up'];

/** The places a maps job aggregates by default: DAAM hooks the down and up blocks only. */
export const DAAM_PLACES: readonly UNetPlace[] = ['down', 'up'];

/** The UNet place of a layer's module path (diffusers naming), or undefined outside the down, mid and up blocks. */
export function placeOfLayer(path: string): UNetPlace | undefined {
  const head = path.split('.')[0];
  return head === 'down_blocks'
    ? 'down'
    : head === 'mid_block'
      ? 'mid'
      : head === 'up_blocks'
        ? 'up'
        : undefined;
}

/**
 * The attention functions a job that reads probabilities (heat-maps, Prompt-to-Prompt) can run with: softmax
 * forms them; agent and window attention act on self-attention only, so the cross-attention maps stay explicit.
 */
const FORM_PROBABILITIES: readonly string[] = ['softmax', 'agent', 'window'];

/** MasaCtrl's first step of mutual self-attention (its default, `attnkit edit --start-step`). */
const MASACTRL_START = 4;

/** The steps a job runs when the request names none (the CLI's defaults are for quality; these for a browser). */
export function defaultSteps(kind: JobKind): number {
  return kind === 'edit' ? 20 : 15;
}

/** The lower-case words of a prompt, as a user would type them. */
export function promptWords(prompt: string): string[] {
  return prompt.toLowerCase().match(/[\p{L}\p{N}'-]+/gu) ?? [];
}
