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

import { plainBatch } from '../attention/call.js';
import type { Controller, StepState } from '../attention/hooks.js';
import { Parameter } from '../nn/module.js';
import { AdamW } from '../nn/optim.js';
import { DDIMScheduler } from '../schedulers/index.js';
import { backward, concat, enableGrad, formatShape, noGrad, Tensor } from '../tensor/index.js';
import type { StableDiffusion } from './stable-diffusion.js';

/** Options of `ddimInvert`: the image (or its latents), its prompt (or text states), steps and guidance. */
export interface DDIMInversionOptions {
  /** The image (1, 3, H, W) in [-1, 1]; or give its `latents` (already × the VAE's scaling factor). */
  image?: Tensor;
  latents?: Tensor;
  /** The source prompt (default ''), or its text states (1, T, D). */
  prompt?: string;
  promptEmbeds?: Tensor;
  /** SDXL: the pooled text (1, P) that goes with `promptEmbeds`. */
  pooledPromptEmbeds?: Tensor;
  /** DDIM steps (reference NUM_DDIM_STEPS = 50). */
  steps?: number;
  /** Guidance during inversion (default 1: the conditional prediction alone, as the reference). */
  guidanceScale?: number;
}

/**
 * A DDIM inversion of an image (Song et al. 2021; Mokady et al. 2023): the latent trajectory from z_0 to z_T
 * and the text it was inverted with.
 */
export interface DDIMInversion {
  /** z_0 (the encoded image), then the latent after each inversion step; `trajectory[steps]` is z_T. */
  trajectory: Tensor[];
  /** The sampling timesteps (descending): sampling step i goes from trajectory[steps − i] towards [steps − i − 1]. */
  timesteps: readonly number[];
  promptEmbeds: Tensor;
  /** SDXL: the prompt's pooled text (1, P). */
  pooledPromptEmbeds?: Tensor;
  steps: number;
}

/** Text states (B, T, D) and, on SDXL, their pooled text (B, P): what a UNet call is conditioned on. */
export interface TextConditioning {
  states: Tensor;
  pooled?: Tensor;
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
  cond: TextConditioning,
  uncond: TextConditioning,
  w: number,
): Tensor {
  if (w <= 1) return sd.unet.forward(z, t, cond.states, { added: sd.addedConditionsFor(cond.pooled, z) });
  const zz = concat([z, z], 0);
  const pooled = cond.pooled && uncond.pooled ? concat([uncond.pooled, cond.pooled], 0) : undefined;
  const added = sd.addedConditionsFor(pooled, zz);
  const eps = sd.unet.forward(zz, t, concat([uncond.states, cond.states], 0), { added });
  const [u, c] = eps.split(2, 0) as [Tensor, Tensor];
  return u.add(c.sub(u).mul(w));
}

/**
 * The DDIM inversion loop: from z_0, one inverted step per inversion timestep (clean to noisy) with the
 * prediction `eps(z, t, step)`; returns z_0 … z_T.
 */
function invertLoop(
  scheduler: DDIMScheduler,
  z0: Tensor,
  eps: (z: Tensor, t: number, step: number) => Tensor,
  onStep?: (step: number) => void,
): Tensor[] {
  return noGrad(() => {
    const trajectory = [z0];
    let z = z0;
    scheduler.inversionTimesteps.forEach((t, step) => {
      z = scheduler.invertStep(eps(z, t, step), t, z).nextSample;
      trajectory.push(z);
      onStep?.(step);
    });
    return trajectory;
  });
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
  const text: TextConditioning = opts.promptEmbeds
    ? { states: opts.promptEmbeds, pooled: opts.pooledPromptEmbeds }
    : sd.encodeText([opts.prompt ?? '']);
  const w = opts.guidanceScale ?? 1;
  const uncond = w > 1 ? sd.encodeText(['']) : text;
  const trajectory = invertLoop(scheduler, z0, (z, t) => guidedEps(sd, z, t, text, uncond, w));
  const pooled = text.pooled ? { pooledPromptEmbeds: text.pooled } : {};
  return { trajectory, timesteps: scheduler.timesteps, promptEmbeds: text.states, ...pooled, steps };
}

/**
 * DDIM inversion of latents (n, C, h, w) with text states (n, T, D) at guidance 1, as `ddimInvert` for a
 * batch (controllers see each UNet pass, numbered by inversion step: clean to noisy): the trajectory z_0 … z_T
 * and the sampling timesteps.
 */
export function invertBatch(
  sd: StableDiffusion,
  latents: Tensor,
  text: Tensor | TextConditioning,
  steps: number,
  controllers: readonly Controller[] = [],
  onStep?: (step: number) => void,
): { trajectory: Tensor[]; timesteps: readonly number[] } {
  const scheduler = ddim(sd, steps);
  const batch = plainBatch(latents.shape[0] as number);
  const { states, pooled } = text instanceof Tensor ? { states: text, pooled: undefined } : text;
  const added = sd.addedConditionsFor(pooled, latents);
  const trajectory = invertLoop(
    scheduler,
    latents,
    (z, t, step) =>
      sd.unet.forward(z, t, states, {
        ctx: { step, numSteps: steps, timestep: t, batch, controllers },
        added,
      }),
    onStep,
  );
  return { trajectory, timesteps: scheduler.timesteps };
}

/**
 * The inversion steps of sampling steps [a, b): inversion runs the timesteps clean to noisy, so sampling step s
 * is inversion step steps − 1 − s, and [a, b) is [steps − b, steps − a).
 */
export function inversionStepRange(range: readonly [number, number], steps: number): [number, number] {
  return [steps - range[1], steps - range[0]];
}

/**
 * Options of null-text inversion (Mokady et al. 2023): guidance, optimisation steps per timestep, learning
 * rate, early stop, the negative prompt.
 */
export interface NullTextOptions {
  /** The guidance scale of the regeneration (reference GUIDANCE_SCALE = 7.5). */
  guidanceScale?: number;
  /** Adam iterations per step (reference `num_inner_steps` = 10). */
  numInnerSteps?: number;
  /** Adam's learning rate at the first step, falling as lr·(1 − i/100) (reference 1e-2), at least lr/10. */
  learningRate?: number;
  /** Early stop when the loss < earlyStopEpsilon + i·2e-5 (reference `early_stop_epsilon` = 1e-5). */
  earlyStopEpsilon?: number;
  /** The embedding ∅ starts from (default ''). */
  negativePrompt?: string;
  /** Called after each timestep's optimisation with its iterations and last loss. */
  onStep?: (e: { step: number; iterations: number; loss: number }) => void;
}

/** A null-text inversion: the DDIM inversion and the optimised unconditional embedding ∅_t of each step. */
export interface NullTextInversion {
  /** ∅_t per sampling step, (1, T, D) each: pass as `negativePromptEmbeds`. */
  nullEmbeds: Tensor[];
  /** SDXL: the pooled text (1, P) of ∅'s prompt, kept fixed: pass as `negativePooledPromptEmbeds`. */
  nullPooled?: Tensor;
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
  return nullTextInversionBatch(sd, [inv], opts)[0] as NullTextInversion;
}

/**
 * Null-text inversion of several images at once: every UNet call runs them as one batch, and each image keeps
 * its own ∅_t, Adam state and early stop, so each result is what `nullTextInversion` gives for that image
 * alone (up to the float rounding of a batched kernel). Nothing mixes across the batch (group norm and
 * attention are per image; Adam is per element; the loss is a sum of per-image means, so each ∅ gets its
 * own image's gradient). An image that has stopped early keeps its ∅ while the others go on. `onStep` sees
 * the most iterations and the largest loss of the batch.
 */
export function nullTextInversionBatch(
  sd: StableDiffusion,
  invs: readonly DDIMInversion[],
  opts: NullTextOptions = {},
): NullTextInversion[] {
  const first = invs[0];
  if (!first) return [];
  const steps = first.steps;
  if (invs.some((inv) => inv.steps !== steps))
    throw new Error('nullTextInversionBatch: every inversion must have the same number of steps');
  const b = invs.length;
  const w = opts.guidanceScale ?? 7.5;
  const numInnerSteps = opts.numInnerSteps ?? 10;
  const epsilon = opts.earlyStopEpsilon ?? 1e-5;
  const lr = opts.learningRate ?? 1e-2;
  if (!(lr > 0 && Number.isFinite(lr)))
    throw new Error(`null-text inversion: the learning rate must be a positive number, got ${lr}`);
  const scheduler = ddim(sd, steps);
  const rows = (f: (inv: DDIMInversion) => Tensor) => concat(invs.map(f), 0);
  const cond = rows((inv) => inv.promptEmbeds);
  // SDXL: each image's pooled text, and the pooled text of ∅'s prompt (kept fixed; only the states are optimised)
  const condPooled = sd.xl
    ? rows((inv) => {
        if (!inv.pooledPromptEmbeds)
          throw new Error('null-text inversion on SDXL: the inversion has no pooled text');
        return inv.pooledPromptEmbeds;
      })
    : undefined;
  const emptyText = sd.encodeText([opts.negativePrompt ?? '']);
  const empty = emptyText.states;
  const uncondPooled =
    emptyText.pooled &&
    concat(
      invs.map(() => emptyText.pooled as Tensor),
      0,
    );
  let uncond = concat(
    invs.map(() => empty),
    0,
  );
  let latentCur = rows((inv) => inv.trajectory[steps] as Tensor);
  const nullPooled = emptyText.pooled ? { nullPooled: emptyText.pooled } : {};
  const out: NullTextInversion[] = invs.map(() => ({
    nullEmbeds: [],
    losses: [],
    iterations: [],
    ...nullPooled,
  }));
  const rowSize = uncond.size / b;

  scheduler.timesteps.forEach((t, i) => {
    const latentPrev = rows((inv) => inv.trajectory[steps - i - 1] as Tensor);
    const added = {
      cond: sd.addedConditionsFor(condPooled, latentCur),
      uncond: sd.addedConditionsFor(uncondPooled, latentCur),
    };
    const epsCond = noGrad(() => sd.unet.forward(latentCur, t, cond, { added: added.cond }));
    const param = new Parameter(uncond.detach().requireGrad());
    // the reference decays lr·(1 − i/100) over its 50 steps; past step 90 (longer inversions) it stays at lr/10
    const optimizer = new AdamW([param], { lr: lr * Math.max(1 - i / 100, 0.1), weightDecay: 0 });
    const active = new Array<boolean>(b).fill(true);
    const losses = new Array<number>(b).fill(Number.NaN);
    const iterations = new Array<number>(b).fill(0);
    for (let j = 0; j < numInnerSteps && active.includes(true); j++) {
      const before = param.value.data as Float32Array;
      const perImage = enableGrad(() => {
        const epsUncond = sd.unet.forward(latentCur, t, param.value, { added: added.uncond });
        const eps = epsUncond.add(epsCond.sub(epsUncond).mul(w));
        const diff = scheduler.step(eps, t, latentCur).prevSample.sub(latentPrev);
        return diff.mul(diff).mean({ axes: [1, 2, 3] }); // (B)
      });
      optimizer.zeroGrad();
      backward(perImage.sum());
      optimizer.step();
      if (active.includes(false)) {
        // images that have stopped keep their ∅
        const after = Float32Array.from(param.value.data as Float32Array);
        active.forEach((on, k) => {
          if (!on) after.set(before.subarray(k * rowSize, (k + 1) * rowSize), k * rowSize);
        });
        param.value = new Tensor(after, param.value.shape).requireGrad();
      }
      const l = perImage.toArray();
      active.forEach((on, k) => {
        if (!on) return;
        losses[k] = l[k] as number;
        iterations[k] = j + 1;
        if ((l[k] as number) < epsilon + i * 2e-5) active[k] = false;
      });
    }
    uncond = param.value.detach();
    out.forEach((o, k) => {
      o.nullEmbeds.push(uncond.slice(0, k, k + 1));
      o.losses.push(losses[k] as number);
      o.iterations.push(iterations[k] as number);
    });
    opts.onStep?.({ step: i, iterations: Math.max(...iterations), loss: Math.max(...losses) });
    // the guided step with the optimised ∅_t, computed as generate() computes it
    latentCur = noGrad(() => {
      const eps = guidedEps(
        sd,
        latentCur,
        t,
        { states: cond, pooled: condPooled },
        { states: uncond, pooled: uncondPooled },
        w,
      );
      return scheduler.step(eps, t, latentCur).prevSample;
    });
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
