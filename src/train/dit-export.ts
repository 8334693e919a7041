// Writes a DiT run (`attnkit train dit`) as a diffusers SD3 folder with float16 weights, which
// StableDiffusion3.fromPretrained loads:
//
//   model_index.json (StableDiffusion3Pipeline)  transformer/  scheduler/ (FlowMatchEulerDiscreteScheduler)
//   vae/  text_encoder/  tokenizer/               copied from the base model the run was trained on
//
// The transformer is the moving average of the weights when the run kept one. The folder is written as one unit
// (writeFolderAtomic): built beside `out` and switched in whole.

import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type JsonConfig, type Tensor, writeFolderAtomic, writeSafetensors } from '../index.js';
import { hasCheckpoint, readCheckpoint } from './checkpoint.js';
import { type DiTConfig, ditSchedulerConfigJson } from './dit.js';

const MODEL_INDEX = {
  _class_name: 'StableDiffusion3Pipeline',
  transformer: ['diffusers', 'SD3Transformer2DModel'],
  vae: ['diffusers', 'AutoencoderKL'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  text_encoder_2: [null, null],
  tokenizer_2: [null, null],
  text_encoder_3: [null, null],
  tokenizer_3: [null, null],
  scheduler: ['diffusers', 'FlowMatchEulerDiscreteScheduler'],
};

function json(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Exports the DiT checkpoint in `runDir` with the VAE, text encoder and tokenizer of the diffusers folder `base`
 * (the one it was trained on, whose parts `transformerJson` was sized for: ditTransformerConfigJson) to the SD3
 * folder `out` (float16). Returns the step and the moving average's update count (0: raw weights).
 */
export function exportDiTModel(
  runDir: string,
  base: string,
  out: string,
  transformerJson: JsonConfig,
): { step: number; ema: number } {
  if (!hasCheckpoint(runDir))
    throw new Error(`exportDiTModel: no DiT checkpoint in ${runDir}; run train dit first`);
  for (const part of ['vae', 'text_encoder', 'tokenizer'])
    if (!existsSync(join(base, part)))
      throw new Error(
        `exportDiTModel: the base model ${base} has no ${part}/ to copy (a diffusers folder is needed)`,
      );
  if (existsSync(out) && statSync(out).isDirectory()) {
    const entries = readdirSync(out);
    if (entries.length > 0 && !entries.includes('model_index.json'))
      throw new Error(
        `exportDiTModel: ${out} is not empty and has no model_index.json; the export replaces the whole folder, ` +
          'so name a new folder, an empty one or an earlier export',
      );
  }
  const { meta, tensors } = readCheckpoint(runDir);
  const ema = meta.emaUpdates ?? 0;
  const raw = moduleTensors(tensors, 'transformer');
  // the moving average covers the trained parameters; the fixed position table comes from the weights
  const weights = ema ? new Map([...raw, ...moduleTensors(tensors, 'ema.transformer')]) : raw;
  writeFolderAtomic(out, (tmp) => {
    json(join(tmp, 'model_index.json'), MODEL_INDEX);
    const dir = (name: string) => {
      mkdirSync(join(tmp, name), { recursive: true });
      return join(tmp, name);
    };
    const t = dir('transformer');
    json(join(t, 'config.json'), transformerJson);
    writeSafetensors(join(t, 'diffusion_pytorch_model.safetensors'), weights, { dtype: 'float16' });
    json(
      join(dir('scheduler'), 'scheduler_config.json'),
      ditSchedulerConfigJson(meta.extra.config as DiTConfig),
    );
    for (const part of ['vae', 'text_encoder', 'tokenizer']) {
      const to = dir(part);
      for (const f of readdirSync(join(base, part))) copyFileSync(join(base, part, f), join(to, f));
    }
  });
  return { step: meta.step, ema };
}

/** The tensors of one checkpoint module, without its prefix. */
function moduleTensors(all: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  const p = `${prefix}.`;
  return new Map([...all].filter(([k]) => k.startsWith(p)).map(([k, t]) => [k.slice(p.length), t]));
}
