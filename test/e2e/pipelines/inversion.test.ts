// Real-image inversion on tiny-sd-a: one DDIM inversion step against the formula worked in float64 from the
// scheduler config, reconstruction error falling with the step count, null-text inversion lowering the error of
// guided reconstruction, per-step negative embeddings in generate(), and followTrajectory.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { UNet2DConditionModel } from '../../../src/models/unet2d-condition.js';
import { editPrompt } from '../../../src/pipelines/edit.js';
import {
  ddimInvert,
  followTrajectory,
  nullTextInversion,
  nullTextInversionBatch,
} from '../../../src/pipelines/inversion.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { concat, noGrad, Tensor } from '../../../src/tensor/index.js';
import { randn } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const prompt = 'a red circle';

/** A red disk on a vertical gradient, (1, 3, S, S) in [-1, 1]. */
function disk(): Tensor {
  const S = sd.defaultSize;
  const img = new Float32Array(3 * S * S);
  const fg = [0.8, -0.6, -0.4];
  const bg = [-0.2, 0.1, 0.5];
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const inside = (x - 12) ** 2 + (y - 18) ** 2 < 64;
        img[(c * S + y) * S + x] = inside ? (fg[c] as number) : (bg[c] as number) * (y / S);
      }
    }
  }
  return new Tensor(img, [1, 3, S, S]);
}

const image = disk();
const rms = (a: Tensor, b: Tensor) => Math.sqrt(a.sub(b).pow(2).mean().item());

test('one DDIM inversion step equals x_t = √ᾱ_t x̂_0 + √(1−ᾱ_t) ε, worked in float64 from the config', () => {
  const inv = ddimInvert(sd, { image, prompt, steps: 10 });
  assert.equal(inv.trajectory.length, 11);
  assert.deepEqual(inv.trajectory[0]?.data, sd.encodeImage(image).data);
  // scaled_linear betas 0.00085 → 0.012 over 1000; set_alpha_to_one false: the level below t=1 is ᾱ_0
  const cfg = JSON.parse(readFileSync(join(goldenDir(), 'scheduler', 'scheduler_config.json'), 'utf8'));
  const [b0, b1, T] = [Math.sqrt(cfg.beta_start), Math.sqrt(cfg.beta_end), cfg.num_train_timesteps];
  const alphaBar = (t: number) => {
    let a = 1;
    for (let i = 0; i <= t; i++) a *= 1 - (b0 + ((b1 - b0) * i) / (T - 1)) ** 2;
    return a;
  };
  const t1 = inv.timesteps[9] as number; // the first inversion timestep (1 with steps_offset 1)
  const [aPrev, aT] = [alphaBar(0), alphaBar(t1)];
  const z0 = inv.trajectory[0] as Tensor;
  const eps = noGrad(() => sd.unet.forward(z0, t1, inv.promptEmbeds)).toArray();
  const expected = z0.toArray().map((z, i) => {
    const x0 = (z - Math.sqrt(1 - aPrev) * (eps[i] as number)) / Math.sqrt(aPrev);
    return Math.sqrt(aT) * x0 + Math.sqrt(1 - aT) * (eps[i] as number);
  });
  assertClose(inv.trajectory[1] as Tensor, expected, { atol: 1e-5, rtol: 1e-5 });
});

/**
 * The exact ε-predictor of Gaussian data z_0 ~ N(0, σ²I): ε*(z_t, t) = √(1−ᾱ_t) z_t / (ᾱ_t σ² + 1 − ᾱ_t). With it,
 * DDIM is a first-order solver of the probability-flow ODE, so inversion + sampling must reconstruct z_0 with an
 * error that falls like 1/steps (a random-weight UNet is no denoiser: its ε does not follow the trajectory).
 */
function gaussianDenoiser(sigma: number): StableDiffusion {
  const alphaBar = sd.scheduler('ddim').alphasCumprod;
  const forward = (z: Tensor, t: number) => {
    const a = alphaBar[t] as number;
    return z.mul(Math.sqrt(1 - a) / (a * sigma ** 2 + 1 - a));
  };
  const unet = Object.assign(Object.create(sd.unet), { forward }) as UNet2DConditionModel;
  return new StableDiffusion({ ...sd, unet, schedulerConfig: sd.schedulerConfig });
}

function reconstructionError(model: StableDiffusion, z0: Tensor, steps: number): number {
  const inv = ddimInvert(model, { latents: z0, prompt, steps });
  const { latents } = model.generate({
    latents: inv.trajectory[steps],
    promptEmbeds: inv.promptEmbeds,
    steps,
    guidanceScale: 1,
    scheduler: 'ddim',
  });
  return rms(latents, z0) / rms(z0, z0.mul(0));
}

test('DDIM inversion then DDIM sampling (guidance 1) reconstructs z_0, the error falling like 1/steps', (t) => {
  const z0 = randn([1, 4, 16, 16], 5).mul(0.5);
  const [e10, e25] = [10, 25].map((steps) => reconstructionError(gaussianDenoiser(0.5), z0, steps)) as [
    number,
    number,
  ];
  // measured: 0.197 and 0.076 (first order: the ratio is about 25/10)
  assert.ok(e10 < 0.25 && e25 < 0.1, `relative errors ${e10}, ${e25}`);
  assert.ok(e10 / e25 > 2, `the error did not fall like 1/steps: ${e10} → ${e25}`);
  const image10 = reconstructionError(sd, sd.encodeImage(image), 10);
  t.diagnostic(
    `relative rms error, exact Gaussian denoiser: 10 steps ${e10.toFixed(3)}, 25 steps ${e25.toFixed(3)}; ` +
      `random-weight tiny-sd-a on an image, 10 steps: ${image10.toFixed(1)}`,
  );
});

test('null-text inversion lowers the error of guided (7.5) reconstruction', (t) => {
  const steps = 5;
  const inv = ddimInvert(sd, { image, prompt, steps });
  const nt = nullTextInversion(sd, inv, { numInnerSteps: 3 });
  assert.equal(nt.nullEmbeds.length, steps);
  assert.deepEqual(nt.nullEmbeds[0]?.shape, inv.promptEmbeds.shape);
  assert.ok(nt.losses.every(Number.isFinite) && nt.iterations.every((j) => j >= 1 && j <= 3));
  const regenerate = (negativePromptEmbeds?: Tensor[]) =>
    sd.generate({
      latents: inv.trajectory[steps],
      promptEmbeds: inv.promptEmbeds,
      negativePromptEmbeds,
      steps,
      guidanceScale: 7.5,
      scheduler: 'ddim',
    }).latents;
  const z0 = inv.trajectory[0] as Tensor;
  const [plain, nullText] = [rms(regenerate(), z0), rms(regenerate(nt.nullEmbeds), z0)];
  t.diagnostic(
    `guided reconstruction rms error, ${steps} steps: DDIM ${plain.toFixed(4)}, null-text ${nullText.toFixed(4)}`,
  );
  assert.ok(nullText < plain, `null-text ${nullText} ≥ plain ${plain}`);
});

test("null-text inversion's learning rate: one Adam iteration moves each element of ∅ by lr", () => {
  // Adam's first update is lr · g / (|g| + ε) elementwise (bias-corrected moments m̂ = g, v̂ = g²): a step of lr
  // wherever the gradient is not tiny, whatever its size
  const inv = ddimInvert(sd, { image, prompt, steps: 2 });
  const start = sd.encodePrompt(['']);
  for (const lr of [0.01, 0.05]) {
    const nt = nullTextInversion(sd, inv, { numInnerSteps: 1, earlyStopEpsilon: -1, learningRate: lr });
    const first = nt.nullEmbeds[0]!.data as Float32Array;
    const moves = Array.from(first, (v, i) => Math.abs(v - (start.data[i] as number)));
    const full = moves.filter((d) => Math.abs(d - lr) < 1e-3 * lr + 1e-6).length;
    assert.ok(Math.max(...moves) <= lr * (1 + 1e-4) + 1e-6, `lr ${lr}: a move of ${Math.max(...moves)}`);
    assert.ok(full >= 0.9 * moves.length, `lr ${lr}: only ${full} of ${moves.length} moved by lr`);
  }
  assert.throws(() => nullTextInversion(sd, inv, { learningRate: -1 }), /learning rate must be a positive/);
});

test('null-text inversion in a batch equals each image inverted alone, early stops included', (t) => {
  const steps = 4;
  // the second image is inverted with the empty prompt, which ∅ starts from: its guided step starts on the
  // inverted trajectory (a tiny loss) and stops early, while the first runs all its iterations
  const noise = randn([1, 3, sd.defaultSize, sd.defaultSize], 5).mul(0.5);
  const invs = [
    ddimInvert(sd, { image, prompt, steps }),
    ddimInvert(sd, { image: noise, prompt: '', steps }),
  ];
  const never = invs.map((inv) => nullTextInversion(sd, inv, { numInnerSteps: 4, earlyStopEpsilon: -1 }));
  const [la, lb] = never.map((n) => n.losses[0] as number) as [number, number];
  const earlyStopEpsilon = Math.sqrt(la * lb);
  const opts = { numInnerSteps: 4, earlyStopEpsilon };
  const alone = invs.map((inv) => nullTextInversion(sd, inv, opts));
  const batch = nullTextInversionBatch(sd, invs, opts);
  t.diagnostic(`iterations alone ${alone.map((a) => a.iterations.join(',')).join(' / ')}`);
  assert.notDeepEqual(alone[0]?.iterations, alone[1]?.iterations, 'the test needs different early stops');
  alone.forEach((a, k) => {
    const b = batch[k]!;
    assert.deepEqual(b.iterations, a.iterations);
    for (const [i, e] of a.nullEmbeds.entries()) {
      assertClose(b.nullEmbeds[i]!, e, { atol: 1e-4, rtol: 1e-3 });
    }
    for (const [i, l] of a.losses.entries()) {
      assert.ok(
        Math.abs((b.losses[i] as number) - l) <= 1e-3 * l + 1e-7,
        `loss ${i}: ${b.losses[i]} vs ${l}`,
      );
    }
  });
});

test('generate: per-step negative embeddings, one row repeated over the prompts', () => {
  const neg = sd.encodePrompt(['']);
  const base = { prompt: [prompt, 'a blue square'], steps: 2, seed: 3, scheduler: 'ddim' as const };
  const one = sd.generate({ ...base, negativePromptEmbeds: concat([neg, neg], 0) }).latents;
  assert.deepEqual(sd.generate({ ...base, negativePromptEmbeds: neg }).latents.data, one.data);
  assert.deepEqual(sd.generate({ ...base, negativePromptEmbeds: [neg, neg] }).latents.data, one.data);
  assert.throws(
    () => sd.generate({ ...base, negativePromptEmbeds: [neg] }),
    /1 negativePromptEmbeds for 2 steps/,
  );
});

test('followTrajectory pins the source row to the inversion trajectory', () => {
  const steps = 3;
  const inv = ddimInvert(sd, { image, prompt, steps });
  const zT = inv.trajectory[steps] as Tensor;
  const seen: Tensor[] = [];
  sd.generate({
    prompt: [prompt, 'a blue circle'],
    latents: concat([zT, zT], 0),
    steps,
    scheduler: 'ddim',
    controllers: [followTrajectory(inv)],
    onStep: (e) => seen.push(e.latents),
  });
  seen.forEach((l, i) => {
    assert.deepEqual(l.slice(0, 0, 1).data, inv.trajectory[steps - i - 1]?.data, `step ${i}`);
    assert.notDeepEqual(l.slice(0, 1, 2).data, l.slice(0, 0, 1).data);
  });
});

test("editPrompt on an image: the source row is the image's own reconstruction, the target is edited", () => {
  const steps = 3;
  const r = editPrompt(sd, { source: prompt, target: 'a blue circle', image, steps, method: 'replace' });
  // pinned to the trajectory, the source's last latents are z_0 = encode(image), so its image is the VAE's
  // reconstruction of the input, independent of the sampling
  const expected = sd.decodeLatents(sd.encodeImage(image));
  assertClose(r.source, expected, { atol: 1e-5, rtol: 0 });
  assert.ok(rms(r.target, r.source) > 1e-3, 'the target must differ from the source');
  assert.throws(
    () => editPrompt(sd, { source: prompt, target: 'a blue circle', image, steps, scheduler: 'euler' }),
    /needs the DDIM scheduler/,
  );
});

/** Guided (7.5) DDIM sampling with the plain '' embedding from the image's DDIM-inverted z_T: final latents. */
function plainRegeneration(steps: number): Tensor {
  const inv = ddimInvert(sd, { image, prompt, steps });
  return sd.generate({
    latents: inv.trajectory[steps],
    promptEmbeds: inv.promptEmbeds,
    steps,
    guidanceScale: 7.5,
    scheduler: 'ddim',
  }).latents;
}

test('editPrompt on an image with null-text inversion: the unedited pair reconstructs closer than plain DDIM', () => {
  const steps = 4;
  const z0 = sd.encodeImage(image);
  const plain = plainRegeneration(steps);
  const r = editPrompt(sd, {
    source: prompt,
    target: prompt,
    method: 'none',
    image,
    steps,
    guidanceScale: 7.5,
    nullText: { numInnerSteps: 3 },
  });
  const source = r.latents.slice(0, 0, 1);
  assert.ok(rms(source, z0) < rms(plain, z0), `null-text ${rms(source, z0)} ≥ plain ${rms(plain, z0)}`);
});

test('editPrompt nullTextSourceOnly: ∅_t samples the source row, the target is the plain guided sampling', () => {
  const steps = 3;
  const opts = {
    source: prompt,
    target: prompt,
    method: 'none' as const,
    image,
    steps,
    guidanceScale: 7.5,
    nullText: { numInnerSteps: 2 },
  };
  const both = editPrompt(sd, opts);
  const sourceOnly = editPrompt(sd, { ...opts, nullTextSourceOnly: true });
  // the source row samples with ∅_t either way
  assertClose(sourceOnly.latents.slice(0, 0, 1), both.latents.slice(0, 0, 1), { atol: 1e-5, rtol: 0 });
  // the unedited target row is plain guided DDIM sampling from the inverted z_T with the '' embedding
  const plain = plainRegeneration(steps);
  assertClose(sourceOnly.latents.slice(0, 1, 2), plain, { atol: 1e-4, rtol: 0 });
  assert.ok(rms(both.latents.slice(0, 1, 2), plain) > 1e-3, 'with ∅_t on both rows the target differs');
  assert.throws(
    () => editPrompt(sd, { ...opts, nullText: false, nullTextSourceOnly: true }),
    /give image and nullText/,
  );
});
