// Real images: DDIM inversion (Song et al. 2020's deterministic step run towards noise) and null-text inversion
// (Mokady et al. 2023, "Null-text Inversion for Editing Real Images using Guided Diffusion Models").
//
// Reference: google/prompt-to-prompt, null_text_w_ptp.ipynb (`ddim_loop`, `null_optimization`). The image is
// encoded with the VAE and inverted with the source prompt at guidance 1, keeping the trajectory z_0 … z_T.
// Null-text inversion then walks back from z_T: at every step it optimises the unconditional embedding ∅_t
// (Adam, lr 1e-2·(1 − i/100), `numInnerSteps` iterations, early stop when the loss < `earlyStopEpsilon` +
// i·2e-5) so that the guided DDIM step lands on the inverted z_{t−1}. Regenerate with
//   sd.generate({ latents: zT, promptEmbeds, negativePromptEmbeds: nullEmbeds, steps, guidanceScale,
//                 scheduler: 'ddim' }).

import type { Controller, StepState } from '../attention/hooks.js';
import { Parameter } from '../nn/module.js';
import { AdamW } from '../nn/optim.js';
import { DDIMScheduler } from '../schedulers/index.js';
import { backward, concat, enableGrad, formatShape, noGrad, type Tensor } from '../tensor/index.js';
import type { StableDiffusion } from './stable-diffusion.js';

export interface DDIMInversionOptions {
  /** The image (1, 3, H, W) in [-1, 1]; or give its `latents` (already × the VAE's scaling factor). */
  image?: Tensor;
  latents?: Tensor;
  /** The source prompt (default ''), or its text states (1, T, D). */
  prompt?: string;
  promptEmbeds?: Tensor;
  /** DDIM steps (reference NUM_DDIM_STEPS = 50). */
  steps?: number;
  /** Guidance during inversion (default 1: the conditional prediction alone, as the reference). */
  guidanceScale?: number;
}

export interface DDIMInversion {
  /** z_0 (the encoded image), then the latent after each inversion step; `trajectory[steps]` is z_T. */
  trajectory: Tensor[];
  /** The sampling timesteps (descending): sampling step i goes from trajectory[steps − i] towards [steps − i − 1]. */
  timesteps: readonly number[];
  promptEmbeds: Tensor;
  steps: number;
}

function ddim(sd: StableDiffusion, steps: number): DDIMScheduler {
  const s = sd.scheduler('ddim');
  if (!(s instanceof DDIMScheduler)) throw new Error('inversion: the DDIM scheduler is required');
  s.setTimesteps(steps);
  return s;
}

/** ε̂ with classifier-free guidance (or the conditional ε alone when guidanceScale ≤ 1). */
function guidedEps(
  sd: StableDiffusion,
  z: Tensor,
  t: number,
  cond: Tensor,
  uncond: Tensor,
  w: number,
): Tensor {
  if (w <= 1) return sd.unet.forward(z, t, cond);
  const [u, c] = sd.unet.forward(concat([z, z], 0), t, concat([uncond, cond], 0)).split(2, 0) as [
    Tensor,
    Tensor,
  ];
  return u.add(c.sub(u).mul(w));
}

/** DDIM inversion of one image: the latent trajectory from z_0 to z_T. */
export function ddimInvert(sd: StableDiffusion, opts: DDIMInversionOptions): DDIMInversion {
  const steps = opts.steps ?? 50;
  const z0 = opts.latents ?? (opts.image ? sd.encodeImage(opts.image) : undefined);
  if (z0?.rank !== 4 || z0.shape[0] !== 1) {
    throw new Error(
      `ddimInvert: give one image (1, 3, H, W) or its latents (1, C, h, w), got ${z0 ? formatShape(z0.shape) : 'neither'}`,
    );
  }
  const scheduler = ddim(sd, steps);
  const promptEmbeds = opts.promptEmbeds ?? sd.encodePrompt([opts.prompt ?? '']);
  const w = opts.guidanceScale ?? 1;
  const uncond = w > 1 ? sd.encodePrompt(['']) : promptEmbeds;
  return noGrad(() => {
    const trajectory = [z0];
    let z = z0;
    for (const t of scheduler.inversionTimesteps) {
      z = scheduler.invertStep(guidedEps(sd, z, t, promptEmbeds, uncond, w), t, z).nextSample;
      trajectory.push(z);
    }
    return { trajectory, timesteps: scheduler.timesteps, promptEmbeds, steps };
  });
}

export interface NullTextOptions {
  /** The guidance scale of the regeneration (reference GUIDANCE_SCALE = 7.5). */
  guidanceScale?: number;
  /** Adam iterations per step (reference `num_inner_steps` = 10). */
  numInnerSteps?: number;
  /** Early stop when the loss < earlyStopEpsilon + i·2e-5 (reference `early_stop_epsilon` = 1e-5). */
  earlyStopEpsilon?: number;
  /** The embedding ∅ starts from (default ''). */
  negativePrompt?: string;
  onStep?: (e: { step: number; iterations: number; loss: number }) => void;
}

export interface NullTextInversion {
  /** ∅_t per sampling step, (1, T, D) each: pass as `negativePromptEmbeds`. */
  nullEmbeds: Tensor[];
  /** The last loss ‖z̃_{t−1} − z_{t−1}‖² (mean) and the iterations used, per step. */
  losses: number[];
  iterations: number[];
}

/** Optimises the unconditional embedding per step so that guided sampling retraces the DDIM inversion. */
export function nullTextInversion(
  sd: StableDiffusion,
  inv: DDIMInversion,
  opts: NullTextOptions = {},
): NullTextInversion {
  const w = opts.guidanceScale ?? 7.5;
  const numInnerSteps = opts.numInnerSteps ?? 10;
  const epsilon = opts.earlyStopEpsilon ?? 1e-5;
  const scheduler = ddim(sd, inv.steps);
  const cond = inv.promptEmbeds;
  let uncond = sd.encodePrompt([opts.negativePrompt ?? '']);
  let latentCur = inv.trajectory[inv.steps] as Tensor;
  const out: NullTextInversion = { nullEmbeds: [], losses: [], iterations: [] };

  scheduler.timesteps.forEach((t, i) => {
    const latentPrev = inv.trajectory[inv.steps - i - 1] as Tensor;
    const epsCond = noGrad(() => sd.unet.forward(latentCur, t, cond));
    const param = new Parameter(uncond.detach().requireGrad());
    const optimizer = new AdamW([param], { lr: 1e-2 * (1 - i / 100), weightDecay: 0 });
    let [loss, j] = [Number.NaN, 0];
    while (j < numInnerSteps) {
      const l = enableGrad(() => {
        const epsUncond = sd.unet.forward(latentCur, t, param.value);
        const eps = epsUncond.add(epsCond.sub(epsUncond).mul(w));
        const diff = scheduler.step(eps, t, latentCur).prevSample.sub(latentPrev);
        return diff.mul(diff).mean();
      });
      optimizer.zeroGrad();
      backward(l);
      optimizer.step();
      loss = l.item();
      j++;
      if (loss < epsilon + i * 2e-5) break;
    }
    uncond = param.value.detach();
    out.nullEmbeds.push(uncond);
    out.losses.push(loss);
    out.iterations.push(j);
    opts.onStep?.({ step: i, iterations: j, loss });
    // the guided step with the optimised ∅_t, computed as generate() computes it
    latentCur = noGrad(
      () => scheduler.step(guidedEps(sd, latentCur, t, cond, uncond, w), t, latentCur).prevSample,
    );
  });
  return out;
}

/**
 * Pins the latents of prompt `prompt`'s row to an inversion trajectory at every step (the reference code of
 * PnP and MasaCtrl feeds the source's inverted latents, `ref_intermediate_latents`), so that the source's
 * features are those of the real image. Start generate() from `trajectory[steps]` for that row.
 */
export function followTrajectory(inv: DDIMInversion, prompt = 0): Controller {
  return {
    name: 'followTrajectory',
    afterStep(s: StepState): Tensor {
      if (s.numSteps !== inv.steps) {
        throw new Error(`followTrajectory: the inversion has ${inv.steps} steps, the sampling ${s.numSteps}`);
      }
      const rows = s.latents.split(s.latents.shape[0] as number, 0);
      rows[prompt] = inv.trajectory[inv.steps - s.step - 1] as Tensor;
      return concat(rows, 0);
    },
  };
}
