// Writes a trained Shapes run as a diffusers Stable Diffusion folder (float16 weights), which
// StableDiffusion.fromPretrained loads like any other checkpoint:
//
//   model_index.json  unet/  vae/  text_encoder/  tokenizer/  scheduler/
//
// The folder is written as one unit (writeFolderAtomic): built beside `out` and switched in whole, so an
// export that is stopped leaves the old model as it was, never new weights beside old ones.

import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Tensor, writeFolderAtomic, writeSafetensors } from '../index.js';
import { hasCheckpoint, readCheckpoint } from './checkpoint.js';
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
  // the folder is replaced whole: never one that holds something else
  if (existsSync(out) && statSync(out).isDirectory()) {
    const entries = readdirSync(out);
    if (entries.length > 0 && !entries.includes('model_index.json')) {
      throw new Error(
        `exportShapesModel: ${out} is not empty and has no model_index.json; the export replaces the whole ` +
          'folder, so name a new folder, an empty one or an earlier export',
      );
    }
  }
  for (const stage of ['vae', 'unet']) {
    if (!hasCheckpoint(join(runDir, stage))) {
      throw new Error(
        `exportShapesModel: no ${stage} checkpoint in ${join(runDir, stage)}; train that stage first`,
      );
    }
  }
  const vaeSource = vaeCheckpointDir(runDir); // decoder/ when the decoder was trained on (stage 1b)
  const { meta: vaeMeta, tensors: vaeWeights } = readCheckpoint(vaeSource);
  const { meta: unetMeta, tensors: unetWeights } = readCheckpoint(join(runDir, 'unet'));
  const unetConfig = unetMeta.extra.config as TextToImageConfig;
  const scalingFactor = unetMeta.extra.scalingFactor as number;
  const vocabSize = unetMeta.extra.vocabSize as number;
  const ema = opts.ema !== false && unetMeta.emaUpdates ? unetMeta.emaUpdates : 0;
  const unetPrefix = ema ? 'ema.' : '';
  const fp16 = { dtype: 'float16' } as const;

  writeFolderAtomic(out, (tmp) => {
    json(join(tmp, 'model_index.json'), MODEL_INDEX);
    const dir = (name: string) => {
      mkdirSync(join(tmp, name), { recursive: true });
      return join(tmp, name);
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
  });
  return { ema };
}
