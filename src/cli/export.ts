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
  batch: number;
  height?: number;
  width?: number;
}

const COMPONENTS: ExportComponent[] = ['unet', 'vae-decoder', 'vae-encoder', 'text-encoder'];

export function registerExport(program: Command): void {
  const cmd = program.command('export').description('trace a model component into one ONNX graph');
  addModelOption(cmd)
    .option('-c, --component <name>', `one of ${COMPONENTS.join(', ')}`, 'unet')
    .option('-o, --out <file>', 'output .onnx file', 'model.onnx')
    .option('--batch <n>', 'batch size of the graph', intIn('--batch', EXPORT_BATCH), 2)
    .option('--height <px>', 'image height (default: the model’s)', intIn('--height', IMAGE_SIDE))
    .option('--width <px>', 'image width (default: the model’s)', intIn('--width', IMAGE_SIDE))
    .action((f: ExportFlags) => {
      if (!COMPONENTS.includes(f.component)) {
        throw new Error(`--component must be one of ${COMPONENTS.join(', ')}, got '${f.component}'`);
      }
      checkOutputPath(f.out, '--out');
      const sd = StableDiffusion.fromPretrained(resolveModel(parseModel(f), log));
      const factor = sd.vae.scaleFactor;
      const height = f.height ?? sd.defaultSize;
      const width = f.width ?? sd.defaultSize;
      if (height % factor !== 0 || width % factor !== 0) {
        throw new Error(`--height and --width must be multiples of ${factor}`);
      }
      const latent = { batch: f.batch, height: height / factor, width: width / factor };
      const textLength = sd.tokenizer.modelMaxLength;
      const graph =
        f.component === 'unet'
          ? exportUNet(sd.unet, { ...latent, textLength })
          : f.component === 'vae-decoder'
            ? exportVAEDecoder(sd.vae, { ...latent, textLength })
            : f.component === 'vae-encoder'
              ? exportVAEEncoder(sd.vae, { batch: f.batch, height, width, textLength })
              : exportTextEncoder(sd.textEncoder, { ...latent, textLength });
      const files = writeOnnx(f.out, graph);
      log(
        `wrote ${files.join(' + ')} (${f.component}, batch ${f.batch}, ${width}×${height}, ${graph.nodes.length} nodes)`,
      );
    });
}
