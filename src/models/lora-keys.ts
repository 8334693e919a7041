// The key layouts LoRA files come in, and what one key names: the model part, the module (or, for kohya-ss
// files, the module's flattened name, resolved against the model in lora-file.ts) and which tensor it is.
//
//   peft       PEFT / diffusers ≥ 0.24: `unet.<module>.lora_A.weight` (A, "down"), `.lora_B.weight` (B, "up"),
//              optional `<module>.alpha`; prefixes unet. / text_encoder. / text_encoder_2. (none: the UNet)
//   diffusers  diffusers ≤ 0.23's attention processors: `unet.<attention>.processor.to_q_lora.down.weight` / `up`
//              (to_out_lora = to_out.0), the text encoder's `<self_attn>.to_q_lora.down.weight` (= q_proj) and
//              `<module>.lora_linear_layer.down.weight`, other modules `<module>.lora.down.weight`
//   kohya      kohya-ss sd-scripts: `lora_unet_<flat>.lora_down.weight`, `.lora_up.weight`, `.alpha`, and
//              `lora_te_` (`lora_te1_`, `lora_te2_` for SDXL's encoders); <flat> is the module path with every
//              '.' an '_', in diffusers' names or in the original LDM UNet's (input_blocks_4_1_…)
//
// Scaling: kohya and PEFT files carry α per module and the update is α/r·B·A (no α: B·A); diffusers ≤ 0.23
// files carry none: B·A, as diffusers' LoRALinearLayer with network_alpha None.

/** The layouts of LoRA files attnkit reads. */
export type LoraLayout = 'peft' | 'diffusers' | 'kohya';

/** The model parts a LoRA adapts. */
export type LoraPart = 'unet' | 'textEncoder' | 'textEncoder2';

/** What one key of a LoRA file names. */
export interface LoraKey {
  readonly part: LoraPart;
  /** The module path (peft, diffusers) or kohya's flattened module name (kohya). */
  readonly module: string;
  /** Whether `module` is kohya's flattened name, still to be resolved against the model. */
  readonly flat: boolean;
  readonly tensor: 'down' | 'up' | 'alpha';
}

/** The layout of a file from its keys; mixed or unknown layouts are errors naming a key. */
export function loraLayoutOf(keys: readonly string[], source: string): LoraLayout {
  const kinds = new Map<LoraLayout, string>();
  for (const k of keys) {
    if (/^lora_(unet|te[12]?)_/.test(k)) kinds.set('kohya', k);
    else if (/\.lora_[AB]\.weight$/.test(k)) kinds.set('peft', k);
    else if (/(_lora|\.lora|\.lora_linear_layer)\.(down|up)\.weight$/.test(k)) kinds.set('diffusers', k);
  }
  if (kinds.size === 0) {
    throw new Error(
      `${source}: no LoRA keys found (expected kohya-ss 'lora_unet_….lora_down.weight', PEFT '….lora_A.weight' ` +
        `or diffusers '….to_q_lora.down.weight'; first key: '${keys[0] ?? '(none)'}')`,
    );
  }
  if (kinds.size > 1) {
    const seen = [...kinds].map(([l, k]) => `${l} ('${k}')`).join(' and ');
    throw new Error(`${source}: keys of two LoRA layouts in one file: ${seen}`);
  }
  return [...kinds.keys()][0] as LoraLayout;
}

const PREFIXES: readonly (readonly [string, LoraPart])[] = [
  ['text_encoder_2.', 'textEncoder2'],
  ['text_encoder.', 'textEncoder'],
  ['unet.', 'unet'],
  ['base_model.model.', 'unet'],
];

function splitPrefix(key: string): [LoraPart, string] {
  for (const [p, part] of PREFIXES) if (key.startsWith(p)) return [part, key.slice(p.length)];
  return ['unet', key];
}

const KOHYA_PARTS: Record<string, LoraPart> = {
  lora_unet: 'unet',
  lora_te: 'textEncoder',
  lora_te1: 'textEncoder',
  lora_te2: 'textEncoder2',
};

/** diffusers' processor names for the attention projections → the module names. */
const PROCESSOR_UNET: Record<string, string> = {
  to_q: 'to_q',
  to_k: 'to_k',
  to_v: 'to_v',
  to_out: 'to_out.0',
};
const PROCESSOR_TEXT: Record<string, string> = {
  to_q: 'q_proj',
  to_k: 'k_proj',
  to_v: 'v_proj',
  to_out: 'out_proj',
};

/**
 * What `key` names in a file of `layout`, or an error naming the key. Keys a LoRA file may carry beside its
 * tensors but that attnkit does not use are not passed here (see lora-file.ts).
 */
export function parseLoraKey(key: string, layout: LoraLayout, source: string): LoraKey {
  const unknown = () =>
    new Error(
      `${source}: key '${key}' is not part of the ${layout} LoRA layout attnkit reads ` +
        '(LyCORIS LoHa / LoKr and DoRA tensors are not LoRA)',
    );
  if (layout === 'kohya') {
    const m = /^(lora_unet|lora_te1|lora_te2|lora_te)_(.+)\.(lora_down\.weight|lora_up\.weight|alpha)$/.exec(
      key,
    );
    if (!m) throw unknown();
    const [, prefix, flat, t] = m as unknown as [string, string, string, string];
    const tensor = t === 'alpha' ? 'alpha' : t === 'lora_down.weight' ? 'down' : 'up';
    return { part: KOHYA_PARTS[prefix] as LoraPart, module: flat, flat: true, tensor };
  }
  const [part, rest] = splitPrefix(key);
  if (rest.endsWith('.alpha'))
    return { part, module: rest.slice(0, -'.alpha'.length), flat: false, tensor: 'alpha' };
  if (layout === 'peft') {
    const m = /^(.+)\.lora_([AB])\.weight$/.exec(rest);
    if (!m) throw unknown();
    return { part, module: m[1] as string, flat: false, tensor: m[2] === 'A' ? 'down' : 'up' };
  }
  const proc = /^(.+?)(\.processor)?\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/.exec(rest);
  if (proc) {
    const [, layer, , p, t] = proc as unknown as [string, string, string | undefined, string, 'down' | 'up'];
    const names = part === 'unet' ? PROCESSOR_UNET : PROCESSOR_TEXT;
    return { part, module: `${layer}.${names[p]}`, flat: false, tensor: t };
  }
  const plain = /^(.+)\.(lora_linear_layer|lora)\.(down|up)\.weight$/.exec(rest);
  if (!plain) throw unknown();
  return { part, module: plain[1] as string, flat: false, tensor: plain[3] as 'down' | 'up' };
}

/**
 * The group a key belongs to (its module with its part), so a delta's A, B and α are found together.
 */
export function loraGroup(k: LoraKey): string {
  return `${k.part}:${k.module}`;
}
