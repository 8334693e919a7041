// attnkit export — one model component as one ONNX graph for plain onnxruntime.

import type { Command } from 'commander';
import { writeOnnx } from '../io/onnx.js';
import {
  type ExportComponent,
  exportTextEncoder,
  exportUNet,
  exportVAEDecoder,
  exportVAEEncoder,
} from '../pipelines/export.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';
import { intIn } from './args.js';
import { EXPORT_BATCH, IMAGE_SIDE } from './limits.js';
import { resolveModel } from './models.js';
import { addModelOption, log, parseModel } from './options.js';
import { checkOutputPath } from './paths.js';

interface ExportFlags {
  component: ExportComponent;
  out: string;
  batch?: number;
  height?: number;
  width?: number;
}

const COMPONENTS: ExportComponent[] = [
  'unet',
  'vae-decoder',
  'vae-encoder',
  'text-encoder',
  'text-encoder-2',
];

const AXES_HELP = `
Axes: the graph's batch, height, width and sequence dims are symbolic (named so in its inputs), so one
file runs at every size; --batch, --height and --width fix an axis instead.
  unet          sample (batch, 4, height, width), timestep (steps: 1 or batch),
                encoder_hidden_states (batch, sequence, D) → noise_pred (batch, 4, height, width);
                SDXL also text_embeds (batch, D₂) and time_ids (batch, 6)
  vae-decoder   latent_sample (batch, 4, height, width) → sample (batch, 3, 8*height, 8*width)
  vae-encoder   sample (batch, 3, height, width) → mean, logvar (batch, 4, height/8, width/8)
  text-encoder  input_ids (batch, sequence), int64 → last_hidden_state (batch, sequence, D);
                SDXL also hidden_states.0 … hidden_states.L (batch, sequence, D), the penultimate
                hidden_states.{L−1} being what SDXL conditions on
  text-encoder-2  SDXL's second encoder: input_ids → text_embeds (batch, P), the projected pooled
                text (end-of-text found in the graph), last_hidden_state and hidden_states.0 … L
height and width are the latents' (image / 8) except for vae-encoder, where they are the image's. At run
time sizes must be multiples of the model's downsampling (UNet latents: 2^(blocks − 1), 8 for SD; VAE
encoder images: 8), and sequence at most max_position_embeddings (77); D is the model's hidden size.
`;

/** SDXL's second text encoder, or an error saying the model has none. */
function secondEncoder(sd: StableDiffusion) {
  if (!sd.xl) throw new Error('--component text-encoder-2: the model is not SDXL (it has one text encoder)');
  return sd.xl.textEncoder2;
}

export function registerExport(program: Command): void {
  const cmd = program
    .command('export')
    .description(
      'trace a model component into one ONNX graph with symbolic batch / height / width / sequence axes',
    );
  addModelOption(cmd)
    .option('-c, --component <name>', `one of ${COMPONENTS.join(', ')}`, 'unet')
    .option('-o, --out <file>', 'output .onnx file', 'model.onnx')
    .option('--batch <n>', 'fix the batch axis (default: symbolic)', intIn('--batch', EXPORT_BATCH))
    .option('--height <px>', 'fix the image height (default: symbolic)', intIn('--height', IMAGE_SIDE))
    .option('--width <px>', 'fix the image width (default: symbolic)', intIn('--width', IMAGE_SIDE))
    .addHelpText('after', AXES_HELP)
    .action((f: ExportFlags) => {
      if (!COMPONENTS.includes(f.component)) {
        throw new Error(`--component must be one of ${COMPONENTS.join(', ')}, got '${f.component}'`);
      }
      checkOutputPath(f.out, '--out');
      const sd = StableDiffusion.fromPretrained(resolveModel(parseModel(f), log));
      const factor = sd.vae.scaleFactor;
      if ((f.height ?? 0) % factor !== 0 || (f.width ?? 0) % factor !== 0) {
        throw new Error(`--height and --width must be multiples of ${factor}`);
      }
      const latent = (px: number | undefined) => (px === undefined ? undefined : px / factor);
      const image = { batch: f.batch, height: f.height, width: f.width };
      const fixed = { batch: f.batch, height: latent(f.height), width: latent(f.width) };
      const graph =
        f.component === 'unet'
          ? exportUNet(sd.unet, fixed)
          : f.component === 'vae-decoder'
            ? exportVAEDecoder(sd.vae, fixed)
            : f.component === 'vae-encoder'
              ? exportVAEEncoder(sd.vae, image)
              : f.component === 'text-encoder'
                ? exportTextEncoder(sd.textEncoder, { batch: f.batch }, { hiddenStates: !!sd.xl })
                : exportTextEncoder(secondEncoder(sd), { batch: f.batch }, { hiddenStates: true });
      const files = writeOnnx(f.out, graph);
      const dims = graph.inputs.map((i) => `${i.name} (${i.dims?.join(', ')})`).join(', ');
      log(`wrote ${files.join(' + ')} (${f.component}: ${dims}; ${graph.nodes.length} nodes)`);
    });
}
