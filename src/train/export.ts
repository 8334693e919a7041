// Writes a trained Shapes run as a diffusers Stable Diffusion folder (float16 weights), which
// StableDiffusion.fromPretrained loads like any other checkpoint:
//
//   model_index.json  unet/  vae/  text_encoder/  tokenizer/  scheduler/

import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, type Tensor, writeSafetensors } from '../index.js';
import { hasCheckpoint, readCheckpointMeta } from './checkpoint.js';
import { vaeCheckpointDir } from './shapes.js';
import {
  SD_NOISE_SCHEDULE,
  type TextToImageConfig,
  textEncoderConfigJson,
  unetConfigJson,
} from './text-to-image.js';
import { type VAETrainConfig, vaeConfigJson } from './vae.js';

/**
 * The inference scheduler of a run: Stable Diffusion v1's DDIM on the scaled_linear training schedule; for a
 * zero-terminal-SNR run the rescaled betas, with trailing timesteps so that sampling starts at t = 999, the
 * pure noise it was trained on (Lin et al. 2024, Sec. 3.3).
 */
export function shapesSchedulerConfig(c: Pick<TextToImageConfig, 'prediction' | 'zeroTerminalSnr'>) {
  return {
    _class_name: 'DDIMScheduler',
    ...SD_NOISE_SCHEDULE,
    clip_sample: false,
    set_alpha_to_one: false,
    prediction_type: c.prediction ?? 'epsilon',
    ...(c.zeroTerminalSnr
      ? { rescale_betas_zero_snr: true, timestep_spacing: 'trailing', steps_offset: 0 }
      : { steps_offset: 1 }),
  };
}

const MODEL_INDEX = {
  _class_name: 'StableDiffusionPipeline',
  unet: ['diffusers', 'UNet2DConditionModel'],
  vae: ['diffusers', 'AutoencoderKL'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  scheduler: ['diffusers', 'DDIMScheduler'],
  safety_checker: [null, null],
  feature_extractor: [null, null],
  requires_safety_checker: false,
};

function json(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** The tensors of one checkpoint module, without its prefix. */
function moduleTensors(all: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  const p = `${prefix}.`;
  return new Map([...all].filter(([k]) => k.startsWith(p)).map(([k, t]) => [k.slice(p.length), t]));
}

/**
 * Exports the run in `runDir` (stage folders vae/ and unet/, and tokenizer/, as `attnkit train shapes`
 * writes them; the VAE from decoder/ when that stage ran) to the diffusers folder `out` with float16 weights. Where the unet stage kept a moving
 * average of its weights (`--ema`), that is written unless `ema: false`; returns its update count (0: none).
 */
export function exportShapesModel(
  out: string,
  runDir = 'runs/shapes',
  opts: { ema?: boolean } = {},
): { ema: number } {
  for (const stage of ['vae', 'unet']) {
    if (!hasCheckpoint(join(runDir, stage))) {
      throw new Error(
        `exportShapesModel: no ${stage} checkpoint in ${join(runDir, stage)}; train that stage first`,
      );
    }
  }
  const vaeSource = vaeCheckpointDir(runDir); // decoder/ when the decoder was trained on (stage 1b)
  const vaeMeta = readCheckpointMeta(vaeSource);
  const unetMeta = readCheckpointMeta(join(runDir, 'unet'));
  const unetConfig = unetMeta.extra.config as TextToImageConfig;
  const scalingFactor = unetMeta.extra.scalingFactor as number;
  const vocabSize = unetMeta.extra.vocabSize as number;
  const vaeWeights = readSafetensors(join(vaeSource, 'checkpoint.safetensors')).tensors;
  const unetWeights = readSafetensors(join(runDir, 'unet', 'checkpoint.safetensors')).tensors;
  const ema = opts.ema !== false && unetMeta.emaUpdates ? unetMeta.emaUpdates : 0;
  const unetPrefix = ema ? 'ema.' : '';
  const fp16 = { dtype: 'float16' } as const;

  mkdirSync(out, { recursive: true });
  json(join(out, 'model_index.json'), MODEL_INDEX);
  const dir = (name: string) => {
    mkdirSync(join(out, name), { recursive: true });
    return join(out, name);
  };
  const unetDir = dir('unet');
  json(join(unetDir, 'config.json'), unetConfigJson(unetConfig));
  writeSafetensors(
    join(unetDir, 'diffusion_pytorch_model.safetensors'),
    moduleTensors(unetWeights, `${unetPrefix}unet`),
    fp16,
  );
  const vaeDir = dir('vae');
  json(join(vaeDir, 'config.json'), vaeConfigJson(vaeMeta.extra.config as VAETrainConfig, scalingFactor));
  writeSafetensors(
    join(vaeDir, 'diffusion_pytorch_model.safetensors'),
    moduleTensors(vaeWeights, 'vae'),
    fp16,
  );
  const textDir = dir('text_encoder');
  json(join(textDir, 'config.json'), {
    ...textEncoderConfigJson(unetConfig, vocabSize),
    torch_dtype: 'float16',
  });
  writeSafetensors(
    join(textDir, 'model.safetensors'),
    moduleTensors(unetWeights, `${unetPrefix}text_encoder`),
    fp16,
  );
  const tokDir = dir('tokenizer');
  for (const f of readdirSync(join(runDir, 'tokenizer')))
    copyFileSync(join(runDir, 'tokenizer', f), join(tokDir, f));
  json(join(dir('scheduler'), 'scheduler_config.json'), shapesSchedulerConfig(unetConfig));
  return { ema };
}
