// TF-ICON image composition (Lu et al. 2023; reference Shilin-LU/TF-ICON, scripts/main_tf_icon.py, same-domain
// mode): an object pasted into a background at a box, without training.
//
// 1. The object image is resampled so its mask's bounding box lands on the target box (the reference resizes
//    and centres it); the cut-and-paste composite is the background with the object's pixels inside its mask.
// 2. Both the composite and the resampled object image are DDIM-inverted with the exceptional prompt (text
//    states that carry no information: one token's state at every position, so cross-attention is uniform).
// 3. The composite starts from the composite's inverted noise with fresh noise in the box around the object
//    (the reference's "inpainting in the XOR region"); beside it run the composite's and the object's
//    reconstructions (pinned to their inversions, with the exceptional prompt), whose self-attention logits
//    TF-ICON's layout injects (methods/map/tf-icon.ts) for the first τ_A of steps, and outside the box the
//    composite's latents are the reconstruction's for the first τ_B of steps.
// The reference samples with DPM-Solver++; attnkit uses DDIM, whose inversion it has.

import type { Controller, StepState } from '../attention/hooks.js';
import { poolRegion, type TokenRegion } from '../methods/map/map-composition.js';
import { TF_ICON_TAU_B, tfIconAttention } from '../methods/map/tf-icon.js';
import { concat, formatShape, Tensor } from '../tensor/index.js';
import { randn } from '../tensor/random.js';
import { ddimInvert, followTrajectory } from './inversion.js';
import type { SamplingOptions, StableDiffusion } from './stable-diffusion.js';

/** A box in pixels: [x0, y0, x1, y1), x1 > x0, y1 > y0. */
export type PixelBox = readonly [number, number, number, number];

/** Options of `composeImage`: the two images, the object's mask, the target box, the prompt and τ's. */
export interface ComposeOptions extends SamplingOptions {
  /** The background (1, 3, H, W) in [-1, 1]. */
  background: Tensor;
  /** The image holding the object (1, 3, H′, W′) in [-1, 1]. */
  object: Tensor;
  /** The object's mask (H′ · W′ values, 1 = object), row-major. */
  objectMask: ArrayLike<number>;
  /** Where the object goes in the background, in pixels. */
  box: PixelBox;
  /** The composite's prompt. */
  prompt: string;
  /** τ_A: fraction of steps with the composite self-attention (default 0.4). */
  tauA?: number;
  /** τ_B: fraction of steps with the background kept outside the box (default 0.8). */
  tauB?: number;
  /** Token id of the exceptional prompt (default the tokenizer's end-of-text id). */
  exceptionalToken?: number;
}

/** What `composeImage` returns: the composite, the cut-and-paste image it started from and the resampled object. */
export interface ComposeResult {
  /** (1, 3, H, W) in [-1, 1]. */
  image: Tensor;
  /** The cut-and-paste composite (the naive baseline's input). */
  pasted: Tensor;
  /** The object image resampled onto the background's frame, and its mask there (H · W). */
  reference: Tensor;
  referenceMask: Float32Array;
}

/**
 * TF-ICON's exceptional prompt (Lu et al. 2023): text states with no information — the state of one token
 * repeated at every position, so every query attends uniformly. The reference encodes 77 copies of one id
 * without position embeddings, which gives the same state at every position; here the token's state at
 * position 0 is repeated.
 */
export function exceptionalPromptEmbeds(sd: StableDiffusion, token?: number): Tensor {
  const id = token ?? sd.tokenizer.eosTokenId;
  const n = sd.tokenizer.modelMaxLength;
  const states = sd.textEncoder.forward(Tensor.int64([id], [1, 1])).lastHiddenState; // (1, 1, D)
  return concat(new Array(n).fill(states), 1); // (1, T, D)
}

/** The object image resampled (nearest) so that its mask's bounding box covers `box` in a `size` frame. */
export function placeObject(
  object: Tensor,
  mask: ArrayLike<number>,
  box: PixelBox,
  size: readonly [number, number],
): { image: Tensor; mask: Float32Array } {
  const [, c, oh, ow] = object.shape as [number, number, number, number];
  if (mask.length !== oh * ow)
    throw new Error(`compose: the object mask has ${mask.length} values, the object image is ${ow}×${oh}`);
  let [mx0, my0, mx1, my1] = [ow, oh, 0, 0];
  for (let y = 0; y < oh; y++)
    for (let x = 0; x < ow; x++)
      if (mask[y * ow + x]! > 0.5)
        [mx0, my0, mx1, my1] = [
          Math.min(mx0, x),
          Math.min(my0, y),
          Math.max(mx1, x + 1),
          Math.max(my1, y + 1),
        ];
  if (mx1 === 0) throw new Error('compose: the object mask is empty; give a mask with the object in white');
  const [H, W] = size;
  const [bx0, by0, bx1, by1] = box;
  const src = object.toArray();
  const out = new Float32Array(c * H * W);
  const outMask = new Float32Array(H * W);
  const sy = (my1 - my0) / (by1 - by0);
  const sx = (mx1 - mx0) / (bx1 - bx0);
  for (let y = 0; y < H; y++) {
    const yy = Math.min(oh - 1, Math.max(0, Math.floor(my0 + (y - by0 + 0.5) * sy)));
    for (let x = 0; x < W; x++) {
      const xx = Math.min(ow - 1, Math.max(0, Math.floor(mx0 + (x - bx0 + 0.5) * sx)));
      for (let ch = 0; ch < c; ch++) out[ch * H * W + y * W + x] = src[ch * oh * ow + yy * ow + xx]!;
      const inBox = x >= bx0 && x < bx1 && y >= by0 && y < by1;
      outMask[y * W + x] = inBox && mask[yy * ow + xx]! > 0.5 ? 1 : 0;
    }
  }
  return { image: new Tensor(out, [1, c, H, W]), mask: outMask };
}

/** Checks the box against the background before anything runs. */
function checkBox(box: PixelBox, W: number, H: number): void {
  const [x0, y0, x1, y1] = box;
  const whole = box.every((v) => Number.isInteger(v));
  if (!whole || x0 < 0 || y0 < 0 || x1 > W || y1 > H || x1 <= x0 || y1 <= y0) {
    throw new Error(
      `compose: the box ${box.join(',')} must be whole pixels x0,y0,x1,y1 with 0 ≤ x0 < x1 ≤ ${W} and 0 ≤ y0 < y1 ≤ ${H}`,
    );
  }
}

/**
 * TF-ICON (Lu et al. 2023): pastes the object into the background at `box` by inverting both with the exceptional
 * prompt and generating the composite with their self-attention logits composed (methods/map/tf-icon.ts).
 */
export function composeImage(sd: StableDiffusion, opts: ComposeOptions): ComposeResult {
  const steps = opts.steps ?? 50;
  const bg = opts.background;
  if (bg.rank !== 4 || bg.shape[0] !== 1 || opts.object.rank !== 4 || opts.object.shape[0] !== 1)
    throw new Error(
      `compose: images must be (1, 3, H, W), got ${formatShape(bg.shape)} and ${formatShape(opts.object.shape)}`,
    );
  const [, , H, W] = bg.shape as [number, number, number, number];
  checkBox(opts.box, W, H);
  const f = sd.vae.scaleFactor;
  if (H % f !== 0 || W % f !== 0)
    throw new Error(`compose: the background's size must be a multiple of ${f}, got ${W}×${H}`);
  const ref = placeObject(opts.object, opts.objectMask, opts.box, [H, W]);
  const m = new Tensor(ref.mask, [1, 1, H, W]);
  const pasted = ref.image.mul(m).add(bg.mul(m.neg().add(1)));

  // the regions on the latent grid: the box's cells, the object's (any pixel inside)
  const grid = [H / f, W / f] as [number, number];
  const [x0, y0, x1, y1] = opts.box;
  const boxPixels = Float32Array.from({ length: H * W }, (_, i) => {
    const [x, y] = [i % W, Math.floor(i / W)];
    return x >= x0 && x < x1 && y >= y0 && y < y1 ? 1 : 0;
  });
  const box: TokenRegion = { size: grid, data: poolRegion({ size: [H, W], data: boxPixels }, grid) };
  const object: TokenRegion = { size: grid, data: poolRegion({ size: [H, W], data: ref.mask }, grid) };

  const e = exceptionalPromptEmbeds(sd, opts.exceptionalToken);
  const invC = ddimInvert(sd, { image: pasted, promptEmbeds: e, steps });
  const invR = ddimInvert(sd, { image: ref.image, promptEmbeds: e, steps });
  const zC = invC.trajectory[steps]!;
  const zR = invR.trajectory[steps]!;
  const c = zC.shape[1] as number;
  const fresh = Tensor.bool(
    Array.from(box.data, (v, i) => v === 1 && object.data[i] === 0),
    [1, 1, ...grid],
  );
  const noise = randn([1, c, ...grid], opts.seed ?? 0);
  const start = fresh.expand([1, c, ...grid]);
  const z = noise.mul(start.cast('float32')).add(zC.mul(start.cast('float32').neg().add(1)));

  const text = sd.encodePrompt([opts.prompt, '']);
  const [cond, uncond] = text.split(2, 0) as [Tensor, Tensor];
  const tauB = opts.tauB ?? TF_ICON_TAU_B;
  const boxMask = new Tensor(Float32Array.from(box.data), [1, 1, ...grid]).expand([1, c, ...grid]);
  const blend: Controller = {
    name: 'TFIconBackgroundBlend',
    afterStep(s: StepState): Tensor | undefined {
      if (s.step >= Math.floor(tauB * s.numSteps)) return undefined;
      const rows = s.latents.split(3, 0);
      rows[2] = rows[2]!.mul(boxMask).add(rows[0]!.mul(boxMask.neg().add(1)));
      return concat(rows, 0);
    },
  };
  const { images } = sd.generate({
    promptEmbeds: concat([e, e, cond], 0),
    negativePromptEmbeds: concat([e, e, uncond], 0),
    latents: concat([zC, zR, z], 0),
    steps,
    guidanceScale: opts.guidanceScale ?? 2.5,
    scheduler: 'ddim',
    controllers: [
      ...tfIconAttention({ box, object, tauA: opts.tauA }),
      followTrajectory(invC, 0),
      followTrajectory(invR, 1),
      blend,
      ...(opts.controllers ?? []),
    ],
    onStep: opts.onStep,
  });
  return { image: images.slice(0, 2, 3), pasted, reference: ref.image, referenceMask: ref.mask };
}
