// `attnkit edit --method masactrl | pnp`: the feature-level editors of src/pipelines/feature-edit.ts as entries
// of the edit command's method table (EDIT_METHODS in edit.ts). Both take --image (DDIM inversion).

import { Option } from 'commander';
import { editFeatures, type FeatureEditMethod, type FeatureEditOptions } from '../pipelines/feature-edit.js';
import type { Tensor } from '../tensor/index.js';
import { float, int } from './args.js';
import type { EditContext, EditMethod } from './edit-method.js';
import { booleanFlag, numberFlag, stringsFlag } from './options.js';

/** The two methods' own options, parsed (a method's options are unset under the other method). */
export function featureEditOptions(flags: object): Pick<FeatureEditOptions, 'masactrl' | 'pnp'> {
  return {
    masactrl: {
      startStep: numberFlag(flags, 'startStep'),
      startLayer: numberFlag(flags, 'startLayer'),
      mask: booleanFlag(flags, 'mask') || undefined,
      maskWords: stringsFlag(flags, 'maskWords'),
    },
    pnp: { pnpAttnT: numberFlag(flags, 'pnpAttnT'), pnpFT: numberFlag(flags, 'pnpFT') },
  };
}

function run(method: FeatureEditMethod, c: EditContext, flags: object): { source: Tensor; target: Tensor } {
  const options = featureEditOptions(flags);
  if (c.image) c.log(`inverting ${c.image.path} with the source prompt (DDIM, ${c.steps} steps)`);
  return editFeatures(c.sd, {
    method,
    source: c.source,
    target: c.target,
    image: c.image?.pixels,
    ...options,
    seed: c.seed,
    steps: c.steps,
    guidanceScale: c.guidance,
    onStep: (e) => c.onStep(e.step + 1),
  });
}

export const masactrlMethod: EditMethod = {
  description: 'MasaCtrl: the target queries the source’s self-attention K/V (keeps appearance, new layout)',
  options: [
    new Option('--start-step <n>', 'MasaCtrl: first step with mutual self-attention (4)').argParser(
      int('--start-step'),
    ),
    new Option(
      '--start-layer <n>',
      'MasaCtrl: first self-attention layer by index (SD: 10; default: the decoder above its lowest block)',
    ).argParser(int('--start-layer')),
    new Option('--mask', 'MasaCtrl: restrict by cross-attention masks (foreground ↔ foreground, MaskAuto)'),
    new Option(
      '--mask-words <words...>',
      'MasaCtrl: the masks from these words’ maps in each prompt (implies --mask; default: token 1, the reference’s)',
    ),
  ],
  run: (c, flags) => run('masactrl', c, flags),
};

export const pnpMethod: EditMethod = {
  description: 'Plug-and-Play: inject the source’s self-attention Q/K and decoder ResNet features',
  options: [
    new Option('--pnp-attn-t <f>', 'PnP: fraction of steps with Q/K injection (0.5)').argParser(
      float('--pnp-attn-t'),
    ),
    new Option('--pnp-f-t <f>', 'PnP: fraction of steps with ResNet feature injection (0.8)').argParser(
      float('--pnp-f-t'),
    ),
  ],
  run: (c, flags) => run('pnp', c, flags),
};
