// Training smoke tests on tiny configs: the loss goes down, a resumed run equals an uninterrupted one, and
// an exported run loads and generates through StableDiffusion.fromPretrained.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseGrounding } from '../../../src/cli/train.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { shapesBatch, shapesTrainingData } from '../../../src/lab/train-data.js';
import { AdamW, initParameters, Parameter } from '../../../src/nn/index.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { predictX0AndEps } from '../../../src/schedulers/scheduler.js';
import { grad, Tensor } from '../../../src/tensor/index.js';
import { Generator } from '../../../src/tensor/random.js';
import { learnBPE, tokenizerOf } from '../../../src/train/bpe.js';
import { readCheckpointMeta, type TrainState } from '../../../src/train/checkpoint.js';
import { EMA } from '../../../src/train/ema.js';
import { exportShapesModel } from '../../../src/train/export.js';
import { learningRate, trainLoop } from '../../../src/train/loop.js';
import { loadTrainedVAE, SHAPES_TRAIN_DEFAULTS, vocabularyCaptions } from '../../../src/train/shapes.js';
import {
  buildTextToImage,
  checkPrediction,
  minSnrWeights,
  sampleTimesteps,
  textToImageLoss,
  timestepProbabilities,
  trainingNoiseSchedule,
  velocity,
} from '../../../src/train/text-to-image.js';
import { buildVAE, initVAE, sampleLatent, vaeLoss } from '../../../src/train/vae.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { tiny, trainDecoder, trainTextToImage, trainVAE } from '../../helpers/tiny-train.js';

const root = mkdtempSync(join(tmpdir(), 'attnkit-train-'));
after(() => rmSync(root, { recursive: true, force: true }));

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test('train: a few VAE steps on one batch lower the reconstruction loss', () => {
  const c = tiny(join(root, 'loss'), 0, 0).vae;
  const vae = buildVAE(c);
  initVAE(vae, new Generator(1));
  vae.requiresGrad();
  const gen = new Generator(2);
  const state: TrainState = { modules: { vae }, optimizer: new AdamW(vae.parameters()), gen, history: [] };
  const { images } = shapesBatch(1, 0, 1);
  const o = { dir: join(root, 'loss'), label: 'vae', steps: 8, lr: 3e-3, warmup: 1, clip: 1 };
  trainLoop(state, () => vaeLoss(vae, images, gen, c.klWeight), {
    ...o,
    checkpointMinutes: 60,
    resume: false,
    quiet: true,
  });
  const losses = state.history.map((h) => h.loss as number);
  assert.equal(losses.length, 8);
  const [first, last] = [mean(losses.slice(0, 3)), mean(losses.slice(-3))];
  assert.ok(last < 0.8 * first, `loss did not decrease: first steps ${first}, last steps ${last}`);
});

test('train: stopping and resuming gives the same parameters and optimizer state as one run', () => {
  const straight = join(root, 'straight');
  const resumed = join(root, 'resumed');
  trainVAE(tiny(straight, 3, 0));
  trainTextToImage(tiny(straight, 3, 3));
  trainVAE(tiny(resumed, 2, 0));
  trainVAE(tiny(resumed, 3, 0, true));
  trainTextToImage(tiny(resumed, 3, 2));
  // a resumed run keeps the architecture it was started with, whatever the flags say now
  const again = tiny(resumed, 3, 3, true);
  trainTextToImage({ ...again, unet: { ...again.unet, blockOutChannels: [8, 8], layersPerBlock: 2 } });
  for (const stage of ['vae', 'unet']) {
    const a = readSafetensors(join(straight, stage, 'checkpoint.safetensors')).tensors;
    const b = readSafetensors(join(resumed, stage, 'checkpoint.safetensors')).tensors;
    assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
    for (const [k, t] of a) assert.deepEqual(b.get(k)?.data, t.data, `${stage}: ${k} differs after resume`);
    const [ma, mb] = [readCheckpointMeta(join(straight, stage)), readCheckpointMeta(join(resumed, stage))];
    assert.equal(mb.step, 3);
    assert.equal(mb.rngCounter, ma.rngCounter);
    assert.equal(mb.emaUpdates, stage === 'unet' ? 3 : undefined);
    assert.deepEqual(
      mb.history.map((h) => h.loss),
      ma.history.map((h) => h.loss),
    );
  }
});

test('train: an exported run loads with StableDiffusion.fromPretrained and generates', () => {
  const run = join(root, 'straight');
  const model = join(root, 'exported');
  assert.deepEqual(exportShapesModel(model, run), { ema: 3 });
  const sd = StableDiffusion.fromPretrained(model);
  assert.equal(sd.vae.config.scalingFactor, readCheckpointMeta(join(run, 'unet')).extra.scalingFactor);
  // the tiny VAE down-samples once to 6 channels: a 32 × 32 × 6 latent, and the model's default image is the
  // world's 64 × 64
  assert.equal(sd.unet.config.sampleSize, 32);
  assert.equal(sd.unet.config.inChannels, 6);
  assert.equal(sd.defaultSize, 64);
  const { images } = sd.generate({ prompt: 'a red circle above a blue square', steps: 2, guidanceScale: 3 });
  assert.deepEqual(images.shape, [1, 3, sd.defaultSize, sd.defaultSize]);
  assert.ok((images.data as Float32Array).every(Number.isFinite));
  // fp16 weights: the exported UNet is the run's moving average (or, with ema: false, its trained
  // weights) up to float16 rounding
  const saved = readSafetensors(join(run, 'unet', 'checkpoint.safetensors')).tensors;
  const close = (want: Tensor, got: Tensor) =>
    (want.data as Float32Array).every(
      (x, i) => Math.abs(x - ((got.data as Float32Array)[i] as number)) <= 1e-3 * Math.abs(x) + 1e-7,
    );
  const average = saved.get('ema.unet.conv_in.weight') as Tensor;
  const trained = saved.get('unet.conv_in.weight') as Tensor;
  assert.ok(!close(trained, average), 'the moving average differs from the weights after 3 steps');
  assert.ok(close(average, sd.unet.conv_in.weight.value));
  const raw = join(root, 'exported-raw');
  assert.deepEqual(exportShapesModel(raw, run, { ema: false }), { ema: 0 });
  assert.ok(close(trained, StableDiffusion.fromPretrained(raw).unet.conv_in.weight.value));
});

test('train: a v-prediction zero-SNR run resumes with its objective and exports a DDIM that starts at t = 999', () => {
  const run = join(root, 'vrun');
  trainVAE(tiny(run, 1, 0));
  const first = tiny(run, 1, 1);
  trainTextToImage({ ...first, unet: { ...first.unet, prediction: 'v_prediction', zeroTerminalSnr: true } });
  const again = tiny(run, 1, 2, true);
  assert.throws(
    () => trainTextToImage({ ...again, unet: { ...again.unet, prediction: 'epsilon' } }),
    /trained with prediction v_prediction, asked for epsilon; a resumed run keeps its objective/,
  );
  trainTextToImage(again); // no flag: the run's own objective
  const meta = readCheckpointMeta(join(run, 'unet'));
  assert.equal(meta.step, 2);
  assert.deepEqual(
    [
      (meta.extra.config as { prediction: string }).prediction,
      (meta.extra.config as { zeroTerminalSnr: boolean }).zeroTerminalSnr,
    ],
    ['v_prediction', true],
  );
  const model = join(root, 'vexported');
  exportShapesModel(model, run);
  const sd = StableDiffusion.fromPretrained(model);
  assert.equal(sd.schedulerConfig.prediction_type, 'v_prediction');
  const ddim = sd.scheduler();
  ddim.setTimesteps(25);
  assert.deepEqual([ddim.timesteps[0], ddim.timesteps[1], ddim.timesteps.at(-1)], [999, 959, 39]);
  for (const scheduler of ['ddim', 'euler', 'dpmpp2m'] as const) {
    const { images } = sd.generate({ prompt: 'a red circle', steps: 2, guidanceScale: 3, scheduler });
    assert.ok((images.data as Float32Array).every(Number.isFinite), scheduler);
  }
});

test('train: the decoder stage changes only the decoder; the encoder (the latent space) stays bit for bit', () => {
  const run = join(root, 'decoder');
  trainVAE(tiny(run, 2, 0));
  const before = readSafetensors(join(run, 'vae', 'checkpoint.safetensors')).tensors;
  const o = tiny(run, 6, 0);
  trainDecoder({ ...o, vae: { ...o.vae, objectWeight: 4 } });
  const after = readSafetensors(join(run, 'decoder', 'checkpoint.safetensors')).tensors;
  const moved: string[] = [];
  for (const [k, t] of before) {
    if (k.startsWith('adamw.')) continue;
    const a = after.get(k);
    assert.ok(a, `decoder checkpoint lacks ${k}`);
    const same = (a.data as Float32Array).every((x, i) => x === (t.data as Float32Array)[i]);
    const trained = k.startsWith('vae.decoder.') || k.startsWith('vae.post_quant_conv.');
    if (!trained) assert.ok(same, `${k} changed, but only the decoder is trained`);
    else if (!same) moved.push(k);
  }
  assert.ok(moved.length > 10, `only ${moved.length} decoder tensors changed`);
  // no optimizer moments for the frozen encoder
  assert.ok(![...after.keys()].some((k) => k.startsWith('adamw.m.vae.encoder.')));
  assert.equal(readCheckpointMeta(join(run, 'decoder')).step, 6);
  // the run's VAE is now the decoder stage's: the UNet stage and export read it
  const vae = loadTrainedVAE(run);
  const w = after.get('vae.decoder.conv_out.weight') as Tensor;
  assert.deepEqual(vae.decoder.conv_out.weight.value.data, w.data);
  // an interrupted decoder stage resumes to the same weights
  const resumed = join(root, 'decoder-resumed');
  trainVAE(tiny(resumed, 2, 0));
  const o3 = tiny(resumed, 3, 0);
  trainDecoder({ ...o3, vae: { ...o3.vae, objectWeight: 4 } });
  const o6 = tiny(resumed, 6, 0, true);
  trainDecoder({ ...o6, vae: { ...o6.vae, objectWeight: 4 } });
  const again = readSafetensors(join(resumed, 'decoder', 'checkpoint.safetensors')).tensors;
  for (const [k, t] of after) assert.deepEqual(again.get(k)?.data, t.data, `${k} differs after resume`);
});

test("train: the decoder stage's latent noise — decoded is z = μ + σ·ε₁ + s·ε₂, drawn in that order", () => {
  const c = tiny(join(root, 'noise'), 0, 0).vae;
  const vae = buildVAE(c);
  initVAE(vae, new Generator(1));
  const { images } = shapesBatch(1, 0, 1);
  const s = 0.3;
  const got = vaeLoss(vae, images, new Generator(9), 0, undefined, s).logs.rec as number;
  const gen = new Generator(9);
  const q = vae.encode(images);
  const z = q.mean
    .add(q.logvar.mul(0.5).exp().mul(gen.randn(q.mean.shape)))
    .add(gen.randn(q.mean.shape).mul(s));
  const want = vae.decode(z).sub(images).pow(2).mean().item();
  assert.ok(Math.abs(got - want) <= 1e-6 * want, `${got} vs ${want}`);
  const plain = vaeLoss(vae, images, new Generator(9), 0).logs.rec as number;
  assert.ok(Math.abs(plain - got) > 1e-4 * plain, 'the noise changed nothing');
});

test('train: --init-from grows a trained UNet by one level — every old tensor finds its place', () => {
  const run = join(root, 'straight'); // the tiny [16, 32] UNet trained above
  const grownRun = join(root, 'grown');
  trainVAE(tiny(grownRun, 3, 0));
  const o = tiny(grownRun, 3, 1);
  const logs: string[] = [];
  trainTextToImage({
    ...o,
    log: (l) => logs.push(l),
    unet: { ...o.unet, blockOutChannels: [16, 32, 32], initFrom: run, warmup: 1, lr: 1e-12 },
  });
  assert.ok(
    logs.some((l) => / 0 unused/.test(l)),
    logs.join('\n'),
  );
  const old = readSafetensors(join(run, 'unet', 'checkpoint.safetensors')).tensors;
  const grown = readSafetensors(join(grownRun, 'unet', 'checkpoint.safetensors')).tensors;
  const near = (a: Tensor, b: Tensor) =>
    (a.data as Float32Array).every((x, i) => Math.abs(x - ((b.data as Float32Array)[i] as number)) < 1e-6);
  // (lr 1e-12: one step moves nothing measurably) the old moving average, under the name map
  const pairs: [string, string][] = [
    ['unet.conv_in.weight', 'unet.conv_in.weight'],
    ['unet.mid_block.attentions.0.proj_in.weight', 'unet.mid_block.attentions.0.proj_in.weight'],
    ['unet.up_blocks.1.resnets.0.conv1.weight', 'unet.up_blocks.0.resnets.0.conv1.weight'],
    ['unet.up_blocks.2.attentions.1.proj_out.weight', 'unet.up_blocks.1.attentions.1.proj_out.weight'],
    ['text_encoder.text_model.final_layer_norm.weight', 'text_encoder.text_model.final_layer_norm.weight'],
  ];
  for (const [now, before] of pairs) {
    assert.ok(near(grown.get(now) as Tensor, old.get(`ema.${before}`) as Tensor), `${now} ≠ old ${before}`);
  }
  // the new level is new: its up block 0 is not the old up block 0
  const upNew = grown.get('unet.up_blocks.0.resnets.0.conv1.weight') as Tensor;
  assert.ok(!near(upNew, old.get('ema.unet.up_blocks.0.resnets.0.conv1.weight') as Tensor));
  assert.ok(grown.has('unet.down_blocks.1.downsamplers.0.conv.weight'));
  // a width that does not repeat the last level cannot map
  const bad = tiny(join(root, 'grown-bad'), 3, 1);
  trainVAE(bad);
  assert.throws(
    () => trainTextToImage({ ...bad, unet: { ...bad.unet, blockOutChannels: [16, 32, 48], initFrom: run } }),
    /must repeat its last width/,
  );
});

test('train: EMA — warm-up decay min(d, (1+n)/(10+n)), worked by hand', () => {
  const p = new Parameter(Tensor.from([1, 2]));
  const ema = new EMA([p], 0.5);
  p.value = Tensor.from([3, 4]);
  assert.equal(ema.currentDecay(), 0.1); // n = 0: 1/10
  ema.update(); // 0.1·[1, 2] + 0.9·[3, 4]
  assertClose(ema.shadow.get(p) as Float32Array, [2.8, 3.8]);
  p.value = Tensor.from([5, 5]);
  ema.update(); // n = 1: 2/11·[2.8, 3.8] + 9/11·[5, 5] = [50.6/11, 52.6/11]
  assertClose(ema.shadow.get(p) as Float32Array, [4.6, 52.6 / 11]);
  ema.updates = 1000; // past the warm-up the decay is the given one
  assert.equal(ema.currentDecay(), 0.5);
  assert.throws(() => new EMA([p], 1), /decay must lie in \(0, 1\)/);
});

function assertClose(got: Float32Array, want: number[]): void {
  for (const [i, w] of want.entries()) {
    assert.ok(Math.abs((got[i] as number) - w) < 1e-6, `[${i}] ${got[i]} ≠ ${w}`);
  }
}

test('train: learning rate — linear warm-up, then constant or a cosine from lr to lr/10', () => {
  const o = { lr: 1, warmup: 10, steps: 110 };
  assert.equal(learningRate(o, 0), 0.1);
  assert.equal(learningRate(o, 9), 1);
  assert.equal(learningRate(o, 80), 1);
  const cos = { ...o, decay: 'cosine' as const };
  assert.equal(learningRate(cos, 10), 1); // start of the decay: cos 0 = 1
  assert.ok(Math.abs(learningRate(cos, 60) - 0.55) < 1e-12); // half way: cos π/2 = 0 → 0.1 + 0.45
  assert.ok(Math.abs(learningRate(cos, 110) - 0.1) < 1e-12); // end: cos π = −1
  assert.ok(Math.abs(learningRate(cos, 500) - 0.1) < 1e-12); // past the end it stays at lr/10
});

test('train: VAE object weighting — uniform weights change nothing; the object region does', () => {
  // (the region itself is tested with the Shapes data, in train-data.test.ts)
  const batch = shapesBatch(7, 0, 2);
  const vae = buildVAE({ ...SHAPES_TRAIN_DEFAULTS.vae, blockOutChannels: [8, 16], normNumGroups: 8 });
  initVAE(vae, new Generator(1));
  const loss = (weighting?: { objects: Tensor; objectWeight: number }) =>
    vaeLoss(vae, batch.images, new Generator(2), 1e-6, weighting).loss.item();
  const plain = loss();
  const ones = Tensor.ones(batch.objects.shape);
  // a constant weight normalised by its mean is no weight at all
  assert.ok(Math.abs(loss({ objects: ones, objectWeight: 4 }) - plain) < 1e-6 * plain);
  assert.equal(loss({ objects: batch.objects, objectWeight: 0 }), plain);
  assert.notEqual(loss({ objects: batch.objects, objectWeight: 4 }), plain);
});

test('train: Min-SNR-γ weights, worked by hand', () => {
  // ᾱ = 0.5 → SNR 1 → min(1, 5)/1 = 1;  ᾱ = 0.9 → SNR 9 → 5/9;  ᾱ = 0.1 → SNR 1/9 → 1
  const w = minSnrWeights([0.5, 0.9, 0.1], [0, 1, 2, 1], 5);
  const expected = [1, 5 / 9, 1, 5 / 9];
  for (const [i, e] of expected.entries()) {
    assert.ok(Math.abs((w[i] as number) - e) < 1e-7, `weight ${i}: ${w[i]} ≠ ${e}`);
  }
});

test('train: an x₀-weight floor under Min-SNR-γ, worked by hand', () => {
  // floor 0.5: ᾱ = 0.5 → SNR 1 → max(min(1, 5), 0.5)/1 = 1;  ᾱ = 0.9 → SNR 9 → 5/9;  ᾱ = 0.1 → SNR 1/9 →
  // max(1/9, 0.5)·9 = 4.5;  ᾱ = 0.01 → SNR 1/99 → 0.5·99 = 49.5
  const w = minSnrWeights([0.5, 0.9, 0.1, 0.01], [0, 1, 2, 3], 5, 0.5);
  const expected = [1, 5 / 9, 4.5, 49.5];
  for (const [i, e] of expected.entries()) {
    assert.ok(Math.abs((w[i] as number) - e) < 1e-5 * e, `weight ${i}: ${w[i]} ≠ ${e}`);
  }
  // without Min-SNR (γ = 0) the floor alone: SNR 9 keeps weight 1
  const alone = minSnrWeights([0.9, 0.1], [0, 1], 0, 0.5);
  assert.ok(Math.abs((alone[0] as number) - 1) < 1e-6 && Math.abs((alone[1] as number) - 4.5) < 1e-5);
});

test('train: Min-SNR-γ on the v-loss caps its x₀ weight SNR + 1 at γ, worked by hand; defined at SNR 0', () => {
  // ᾱ = 0.5 → SNR 1 → w₀ 2 → 1;  ᾱ = 0.9 → SNR 9 → w₀ 10 → 5/10;  ᾱ = 0 → SNR 0 → w₀ 1 → 1
  const w = minSnrWeights([0.5, 0.9, 0], [0, 1, 2], 5, 0, 'v_prediction');
  const expected = [1, 0.5, 1];
  for (const [i, e] of expected.entries()) {
    assert.ok(Math.abs((w[i] as number) - e) < 1e-7, `weight ${i}: ${w[i]} ≠ ${e}`);
  }
  // the ε-loss has no x₀ weight at SNR 0
  assert.throws(() => minSnrWeights([0.5, 0], [1], 5), /SNR 0 at timestep 1/);
  assert.throws(() => checkPrediction({ zeroTerminalSnr: true }), /needs the v-prediction target/);
  assert.throws(() => checkPrediction({ prediction: 'x0' as 'epsilon' }), /epsilon or v_prediction/);
  checkPrediction({ prediction: 'v_prediction', zeroTerminalSnr: true });
});

test('train: the v target — worked by hand, and the scheduler reads z₀ and ε back from it', () => {
  // ᾱ = 0.64: v = 0.8·ε − 0.6·z₀ = 0.8·1 − 0.6·2 = −0.4;  ᾱ = 0: v = −z₀
  const z0 = Tensor.from([2, -1], [2, 1]);
  const eps = Tensor.from([1, 3], [2, 1]);
  assert.deepEqual(
    [...(velocity([0.64, 0], z0, eps, [0, 1]).data as Float32Array)].map((x) => Math.round(x * 1e6) / 1e6),
    [-0.4, 1],
  );
  const g = new Generator(4);
  const [x0, e] = [g.randn([1, 4, 3, 3]), g.randn([1, 4, 3, 3])];
  const noise = trainingNoiseSchedule({ zeroTerminalSnr: true });
  for (const t of [0, 500, 999]) {
    const a = noise.alphasCumprod[t] as number;
    const back = predictX0AndEps(
      'v_prediction',
      velocity(noise.alphasCumprod, x0, e, [t]),
      noise.addNoise(x0, e, [t]),
      a,
    );
    assert.ok(back.x0.sub(x0).abs().max().item() < 1e-5, `x₀ at t = ${t}`);
    assert.ok(back.eps.sub(e).abs().max().item() < 1e-5, `ε at t = ${t}`);
  }
  // the rescaled schedule ends in pure noise; SD's leaves √ᾱ ≈ 0.068 of the image at t = 999
  assert.equal(noise.alphasCumprod[999], 0);
  assert.ok(Math.abs(Math.sqrt(trainingNoiseSchedule().alphasCumprod[999] as number) - 0.068) < 0.001);
});

test('train: at t = 999 of a zero-SNR schedule the v-loss asks the UNet for −z₀ from pure noise', () => {
  const { models, batch } = tinyTextToImage('v999');
  const z0 = sampleLatent(models.vae.encode(batch.images), new Generator(9)).mul(models.scalingFactor);
  const fake = (out: (zt: Tensor) => Tensor) => ({ forward: out }) as unknown as typeof models.unet;
  // every draw t = 999 (its weight 1e9 against 1 for each other timestep)
  const late = { strategy: 'later', multiplier: 1e9, portion: 0.001 } as const;
  const run = (
    out: (zt: Tensor) => Tensor,
    o: { prediction: 'epsilon' | 'v_prediction'; minSnrGamma?: number },
  ) =>
    textToImageLoss(
      { ...models, unet: fake(out), noise: trainingNoiseSchedule({ zeroTerminalSnr: true }) },
      batch.images,
      batch.captions,
      new Generator(9),
      { captionDropout: 0, timestepBias: late, ...o },
    );
  const v = { prediction: 'v_prediction', minSnrGamma: 5 } as const;
  assert.ok(run(() => z0.neg(), v).loss.item() < 1e-10);
  const zero = run((zt) => zt.mul(0), v).loss.item();
  const z0ms = z0.pow(2).mean().item();
  assert.ok(Math.abs(zero - z0ms) < 1e-5 * z0ms, `${zero} vs mean z₀² ${z0ms}`);
  // the input holds nothing of the image: x_999 = ε, so echoing it meets the ε target exactly
  assert.equal(run((zt) => zt, { prediction: 'epsilon' }).logs.mse, 0);
});

test('train: timestep bias — probabilities worked by hand, draws follow them', () => {
  // n = 10, the noisiest 30 % (t = 7, 8, 9) three times as likely: 1/16 each below, 3/16 each above
  const later = timestepProbabilities(10, { strategy: 'later', multiplier: 3, portion: 0.3 });
  assert.deepEqual(
    [...later].map((p) => p * 16),
    [1, 1, 1, 1, 1, 1, 1, 3, 3, 3],
  );
  const earlier = timestepProbabilities(10, { strategy: 'earlier', multiplier: 0.5, portion: 0.2 });
  assert.deepEqual(
    [...earlier].map((p) => p * 9),
    [0.5, 0.5, 1, 1, 1, 1, 1, 1, 1, 1],
  );
  assert.throws(() => timestepProbabilities(10, { strategy: 'later', multiplier: 0, portion: 0.3 }), /> 0/);
  // 16 000 draws: each count within 5 standard deviations of n·p
  const n = 16_000;
  const t = sampleTimesteps(new Generator(1), n, 10, { strategy: 'later', multiplier: 3, portion: 0.3 });
  const counts = new Array<number>(10).fill(0);
  for (const x of t) counts[x] = (counts[x] as number) + 1;
  for (const [i, c] of counts.entries()) {
    const p = (later[i] as number) * n;
    assert.ok(Math.abs(c - p) < 5 * Math.sqrt(p), `timestep ${i}: ${c} draws, expected ${p.toFixed(0)}`);
  }
  // no bias: the uniform draws of before
  assert.deepEqual(
    sampleTimesteps(new Generator(2), 8, 1000),
    new Generator(2).randint([8], 0, 1000).toArray(),
  );
});

/** Freshly initialised tiny stage-2 models (seeded) and a batch of two Shapes examples, for loss tests. */
function tinyTextToImage(name: string) {
  const c = tiny(join(root, name), 1, 1).unet;
  const bpe = learnBPE(vocabularyCaptions(shapesTrainingData, 200));
  const { unet, textEncoder } = buildTextToImage(c, Object.keys(bpe.vocab).length);
  initParameters(unet, new Generator(1));
  initParameters(textEncoder, new Generator(2));
  const vae = buildVAE({ ...SHAPES_TRAIN_DEFAULTS.vae, blockOutChannels: [8, 16, 16], normNumGroups: 8 });
  initVAE(vae, new Generator(3));
  const tokenizer = tokenizerOf(bpe, c.maxLength);
  const models = { unet, textEncoder, tokenizer, vae, scalingFactor: 1, noise: trainingNoiseSchedule() };
  return { models, batch: shapesBatch(2, 0, 2) };
}

test('train: UNet object weighting — a uniform region is no weighting; a real one changes the loss', () => {
  const { models, batch } = tinyTextToImage('ow');
  const loss = (objects?: Tensor, objectWeight = 4) =>
    textToImageLoss(models, batch.images, batch.captions, new Generator(9), {
      captionDropout: 0.1,
      minSnrGamma: 5,
      ...(objects ? { weighting: { objects, objectWeight } } : {}),
    }).loss.item();
  const plain = loss();
  assert.ok(Math.abs(loss(Tensor.ones(batch.objects.shape)) - plain) < 1e-6 * plain);
  assert.equal(loss(batch.objects, 0), plain);
  assert.notEqual(loss(batch.objects), plain);
});

test('train: UNet grounding — the TokenCompose terms join the loss with their weights and reach attn2', () => {
  const { models, batch } = tinyTextToImage('gr');
  const run = (tokenWeight: number, pixelWeight: number) =>
    textToImageLoss(models, batch.images, batch.captions, new Generator(9), {
      captionDropout: 0,
      grounding: { words: batch.words, tokenWeight, pixelWeight },
    });
  const plain = run(0, 0);
  assert.equal(plain.logs.token, undefined);
  const both = run(2, 3);
  const token = both.logs.token as number;
  const pixel = both.logs.pixel as number;
  assert.ok(token > 0 && token <= 1 && pixel > 0, `token ${token}, pixel ${pixel}`);
  // the same draws: the ε-MSE is unchanged and the total is plain + 2·token + 3·pixel
  assert.equal(both.logs.mse, plain.logs.mse);
  const total = plain.loss.item() + 2 * token + 3 * pixel;
  assert.ok(Math.abs(both.loss.item() - total) < 1e-5 * total, `${both.loss.item()} vs ${total}`);
  // gradients of the grounding term alone reach the cross-attention keys
  const k = [...models.unet.namedParameters('unet')].find(([n]) => n.endsWith('attn2.to_k.weight'))?.[1];
  assert.ok(k);
  const [gk] = grad((w: Tensor) => {
    const saved = k.value;
    k.value = w;
    try {
      return run(1, 0).loss.sub(run(0, 0).loss);
    } finally {
      k.value = saved;
    }
  })(k.value);
  assert.ok((gk?.abs().max().item() ?? 0) > 0);
  // a place weight changes the grounding terms only where the batch has place words; weight 1 is the default
  // (this batch's captions name no place, so its first word stands in for one)
  const marked = batch.words.map((row, r) =>
    row.map((w, i) => (r === 0 && i === 0 ? { ...w, place: true as const } : w)),
  );
  const placed = (words: typeof batch.words, placeWeight?: number) =>
    textToImageLoss(models, batch.images, batch.captions, new Generator(9), {
      captionDropout: 0,
      grounding: {
        words,
        tokenWeight: 2,
        pixelWeight: 3,
        ...(placeWeight !== undefined ? { placeWeight } : {}),
      },
    }).logs;
  assert.equal(placed(batch.words, 5).token, token);
  assert.equal(placed(marked, 1).token, token);
  assert.notEqual(placed(marked, 5).token, token);
  assert.equal(placed(marked, 5).mse, plain.logs.mse);
});

test('train: --grounding token[:pixel[:place]] parses, and bad values are errors that show the form', () => {
  assert.deepEqual(parseGrounding('0.01'), { token: 0.01, pixel: 0 });
  assert.deepEqual(parseGrounding('0.05:0.0025'), { token: 0.05, pixel: 0.0025 });
  assert.deepEqual(parseGrounding('0.05:0.0025:4'), { token: 0.05, pixel: 0.0025, place: 4 });
  for (const bad of ['0:0', '0.05:0.0025:', '0.05:0.0025:-1', '1:2:3:4', 'x', ':1'])
    assert.throws(() => parseGrounding(bad), /token\[:pixel\[:place\]\]/, bad);
});

test('train shapes: a batch or a step count below 1 is refused by name before anything is written', () => {
  const out = join(tmpdir(), `attnkit-train-bad-${process.pid}`);
  const run = (...args: string[]) =>
    execFileSync(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), 'train', 'shapes', '--out', out, '-q', ...args],
      { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
  assert.throws(
    () => run('--stage', 'vae', '--batch', '0'),
    /--batch must be an integer from 1 to 256, got '0'/,
  );
  assert.throws(() => run('--stage', 'vae', '--steps', '0'), /--steps must be ≥ 1, got 0/);
  assert.throws(() => run('--stage', 'all', '--vae-steps', '-2'), /--vae-steps must be ≥ 1, got -2/);
  assert.ok(!existsSync(out), 'no run folder');
});
