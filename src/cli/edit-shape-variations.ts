// `attnkit edit --method shape-variations --source "<prompt>" --word circle --proxies square star`: Object-Shape
// Variations (src/pipelines/shape-variations.ts) as an entry of the edit command's method table. The target is
// the first variation; the whole sweep (source, then one variation per proxy) goes to <out>.variations.png;
// --image edits a real image (DDIM inversion).

import { basename, dirname, extname, join } from 'node:path';
import { Option } from 'commander';
import { writePng } from '../io/png.js';
import { sideBySide } from '../io/render.js';
import { shapeVariations } from '../pipelines/shape-variations.js';
import { float, floatIn } from './args.js';
import type { EditMethod } from './edit-method.js';
import { UNIT } from './limits.js';
import { numberFlag, stringFlag, stringsFlag } from './options.js';

export const shapeVariationsMethod: EditMethod = {
  description:
    'Object-Shape Variations: prompt-mixing with proxy words, the rest kept by self-attention maps',
  options: [
    new Option('--word <word>', 'shape-variations: the object word of --source whose shape varies'),
    new Option('--proxies <words...>', 'shape-variations: proxy words, one variation each'),
    new Option(
      '--mask-threshold <t>',
      "shape-variations: threshold on the word's normalised cross-attention for its region (0.05, the reference's)",
    ).argParser(float('--mask-threshold')),
    new Option(
      '--proxy-tokens <which>',
      "shape-variations: text positions with the proxy's values: all (the reference's) or word (the object word's only)",
    ).choices(['all', 'word']),
    new Option(
      '--local-steps <f>',
      "shape-variations: the source's latents outside the object after every step of the first fraction f (LocalBlend)",
    ).argParser(floatIn('--local-steps', UNIT)),
  ],
  run(c, flags) {
    const word = stringFlag(flags, 'word');
    const proxies = stringsFlag(flags, 'proxies');
    if (!word) throw new Error('--method shape-variations needs --word <word>: the object word of --source');
    if (!proxies?.length)
      throw new Error('--method shape-variations needs --proxies <words...>: one proxy word per variation');
    if (c.target !== c.source)
      throw new Error('--method shape-variations takes no --target: the proxies give the variations');
    if (c.image) c.log(`inverting ${c.image.path} with the source prompt (DDIM, ${c.steps} steps)`);
    const r = shapeVariations(c.sd, {
      source: c.source,
      word,
      proxies,
      maskThreshold: numberFlag(flags, 'maskThreshold'),
      proxyTokens: stringFlag(flags, 'proxyTokens') as 'all' | 'word' | undefined,
      localBlend: numberFlag(flags, 'localSteps'),
      image: c.image?.pixels,
      seed: c.seed,
      steps: c.steps,
      guidanceScale: c.guidance,
      onStep: (e) => c.onStep(e.step + 1),
    });
    // the edit command writes source | target: the target is the first variation, the sweep goes beside it
    const out = stringFlag(flags, 'out') ?? 'edit.png';
    const sweep = join(dirname(out), `${basename(out, extname(out))}.variations${extname(out) || '.png'}`);
    writePng(sweep, sideBySide([r.source, ...r.variations]));
    c.log(`wrote ${sweep} (source | ${r.prompts.map((p) => `"${p}"`).join(' | ')})`);
    return { source: r.source, target: r.variations[0]! };
  },
};
