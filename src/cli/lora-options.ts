// The LoRA option of `attnkit generate`: `--lora file.safetensors[:scale]`, repeatable, as a user of
// diffusers (`load_lora_weights` + `fuse_lora(lora_scale)`) or A1111 (`<lora:name:0.8>`) stacks them. The
// LoRAs are read against the loaded model and merged into its weights (the fast path: no cost per step).

import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { MergedLora } from '../methods/weight/lora-merge.js';
import { mergeLoraAdapters } from '../methods/weight/lora-merge.js';
import { readLora } from '../models/lora-file.js';
import type { StableDiffusion } from '../pipelines/stable-diffusion.js';

/** The parsed `--lora` values of a command. */
export interface LoraFlags {
  lora?: LoraSpec[];
}

/** One `--lora` value: a file and its strength. */
export interface LoraSpec {
  path: string;
  scale: number;
}

/** The strengths a LoRA may be given (A1111 and diffusers accept negative ones: the concept pushed away). */
const SCALE = { min: -10, max: 10 };

/** Parses `file.safetensors[:scale]` (scale default 1); a ':' not followed by a number is part of the path. */
export function parseLoraSpec(v: string): LoraSpec {
  const i = v.lastIndexOf(':');
  const tail = i >= 0 ? v.slice(i + 1) : '';
  if (i < 0 || !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(tail)) {
    if (v.trim() === '') throw new InvalidArgumentError('--lora needs a file, e.g. style.safetensors:0.8');
    return { path: v, scale: 1 };
  }
  const scale = Number(tail);
  if (!(scale >= SCALE.min && scale <= SCALE.max)) {
    throw new InvalidArgumentError(
      `--lora scale must be from ${SCALE.min} to ${SCALE.max}, got '${tail}' in '${v}'`,
    );
  }
  return { path: v.slice(0, i), scale };
}

/** Adds `--lora <file[:scale]>` (repeatable) to a command. */
export function addLoraOptions(cmd: Command): Command {
  return cmd.option(
    '--lora <file[:scale]>',
    'merge a LoRA (kohya-ss, PEFT or diffusers .safetensors) at a strength (default 1); repeatable',
    (v: string, prev: LoraSpec[] = []) => [...prev, parseLoraSpec(v)],
  );
}

/**
 * Reads every `--lora` file against `sd` and merges them all into its weights, or none: a file that does not
 * fit the model is an error naming it, with the model unchanged.
 */
export function applyLoras(
  sd: StableDiffusion,
  f: LoraFlags,
  log: (line: string) => void,
): MergedLora | undefined {
  const specs = f.lora ?? [];
  if (specs.length === 0) return undefined;
  const targets = {
    unet: sd.unet,
    textEncoder: sd.textEncoder,
    textEncoder2: sd.xl?.textEncoder2,
    unetLayersPerBlock: sd.unet.config.layersPerBlock,
  };
  const uses = specs.map((s) => ({ adapter: readLora(s.path, targets), scale: s.scale }));
  const merged = mergeLoraAdapters(targets, uses);
  for (const { adapter, scale } of uses) {
    const n = adapter.unet.length + adapter.textEncoder.length + adapter.textEncoder2.length;
    log(`LoRA ${adapter.name} (${adapter.layout}, ${n} modules) merged at ${scale}`);
  }
  return merged;
}
