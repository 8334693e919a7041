// Token-level grounding (TokenCompose, Wang et al. CVPR 2024): a training objective on the cross-attention
// maps. Each grounded word of a caption has a ground-truth mask (its object); the word's map should put its
// mass inside that mask. Two terms, per word w with map A_w (the word's tokens' probabilities summed, heads
// averaged) over the queries u of a layer and mask M_w at that layer's resolution:
//
//   token loss  (1 − Σ_u A_w(u)·M_w(u) / Σ_u A_w(u))²          per layer, averaged over layers and words
//   pixel loss  BCE(Ā_w(u), M_w(u)), Ā_w the map averaged over the layers of one resolution,
//               averaged over queries, then over resolutions and words
//
// The reference adds the token loss over layers with weight 1e-3 and the pixel loss with 5e-5 (to SD's
// ε-MSE); it squares the activation averaged over a batch of one caption, where here each row of a batch has
// its own words and masks, so each row's activation is squared. A mask reaches a layer's resolution as in
// the reference (resized, then > 0): a query is inside when any pixel of its block is.
//
// The controller only records; the loss is read after the forward pass, with gradients to every attention
// probability it saw. Map level: it reads probabilities and leaves them unchanged.

import type { AttentionCall } from '../../attention/call.js';
import type { Controller } from '../../attention/hooks.js';
import { Tensor } from '../../tensor/index.js';

/** One word to ground: its token indices in the encoded prompt and its object's mask (maskHeight × maskWidth, > 0 inside). */
export interface GroundedWord {
  tokens: readonly number[];
  mask: Float32Array;
  /** Weight of this word's terms (default 1); the terms are still averaged over the number of words. */
  weight?: number;
}

/** TokenCompose's two grounding terms (Wang et al. 2024): the token loss and the pixel loss. */
export interface GroundingLoss {
  token: Tensor;
  pixel: Tensor;
}

interface Recorded {
  size: readonly [number, number];
  /** (B, Tq, Tk), heads averaged. */
  map: Tensor;
}

/** Whether any value of the block (by × bx) at (y, x) of a (H, W) mask is > 0, for a mask reduced to (h, w). */
export function blockMask(mask: Float32Array, H: number, W: number, h: number, w: number): Float32Array {
  if (H % h !== 0 || W % w !== 0) {
    throw new Error(`token grounding: a ${H}×${W} mask does not divide into a ${h}×${w} attention map`);
  }
  const [by, bx] = [H / h, W / w];
  const out = new Float32Array(h * w);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if ((mask[y * W + x] as number) > 0) out[Math.floor(y / by) * w + Math.floor(x / bx)] = 1;
    }
  }
  return out;
}

export class TokenGrounding implements Controller {
  readonly name = 'TokenGrounding';
  private recorded: Recorded[] = [];

  /** UNet cross-attention layers; `layers` narrows them further. */
  constructor(private readonly layers?: (call: AttentionCall) => boolean) {}

  appliesTo(call: AttentionCall): boolean {
    if (call.kind !== 'cross' || !call.size) return false;
    if (call.place !== 'down' && call.place !== 'mid' && call.place !== 'up') return false;
    return this.layers ? this.layers(call) : true;
  }

  map(call: AttentionCall, p: Tensor): Tensor {
    this.recorded.push({ size: call.size as [number, number], map: p.mean({ axes: [1] }) });
    return p;
  }

  /** Layers recorded since the last `reset`. */
  get layerCount(): number {
    return this.recorded.length;
  }

  /** Forgets the recorded maps (before a training step). */
  reset(): void {
    this.recorded = [];
  }

  /**
   * Both terms for the recorded layers. `words[b]` are row b's grounded words (none for a row with no
   * caption); masks are maskHeight × maskWidth. Rows without words add nothing; with no word at all both
   * terms are 0.
   */
  loss(words: readonly (readonly GroundedWord[])[], maskHeight: number, maskWidth: number): GroundingLoss {
    if (this.recorded.length === 0) {
      throw new Error(
        'token grounding: no cross-attention layer was recorded; pass the controller to the UNet',
      );
    }
    const b = this.recorded[0]?.map.shape[0] as number;
    const tk = this.recorded[0]?.map.shape[2] as number;
    if (words.length !== b) throw new Error(`token grounding: words for ${words.length} rows, batch of ${b}`);
    const nw = Math.max(1, ...words.map((r) => r.length));
    const count = words.reduce((n, r) => n + r.length, 0);
    if (count === 0) return { token: Tensor.scalar(0), pixel: Tensor.scalar(0) };

    // S (B, Tk, W): which tokens make up word w of row b; valid (B, W): the word's weight where row b has word w, else 0
    const sel = new Float32Array(b * tk * nw);
    const valid = new Float32Array(b * nw);
    words.forEach((row, r) => {
      row.forEach((g, w) => {
        valid[r * nw + w] = g.weight ?? 1;
        for (const t of g.tokens) {
          if (t < 0 || t >= tk)
            throw new Error(`token grounding: token ${t} is outside the ${tk} text tokens`);
          sel[(r * tk + t) * nw + w] = 1;
        }
      });
    });
    const S = new Tensor(sel, [b, tk, nw]);
    const V = new Tensor(valid, [b, nw]);

    const masks = new Map<string, Tensor>(); // (B, Tq, W) per resolution
    const maskAt = (h: number, w: number): Tensor => {
      const key = `${h}x${w}`;
      let m = masks.get(key);
      if (!m) {
        const data = new Float32Array(b * h * w * nw);
        words.forEach((row, r) => {
          row.forEach((g, k) => {
            const small = blockMask(g.mask, maskHeight, maskWidth, h, w);
            for (let q = 0; q < h * w; q++) data[(r * h * w + q) * nw + k] = small[q] as number;
          });
        });
        m = new Tensor(data, [b, h * w, nw]);
        masks.set(key, m);
      }
      return m;
    };

    let token = Tensor.scalar(0);
    const byRes = new Map<string, { sum: Tensor; n: number; size: readonly [number, number] }>();
    for (const { size, map } of this.recorded) {
      const A = map.matmul(S); // (B, Tq, W)
      const M = maskAt(size[0], size[1]);
      const inside = A.mul(M).sum({ axes: [1] });
      const act = inside.div(A.sum({ axes: [1] }).add(1e-12));
      token = token.add(act.neg().add(1).pow(2).mul(V).sum());
      const key = `${size[0]}x${size[1]}`;
      const e = byRes.get(key);
      byRes.set(key, e ? { ...e, sum: e.sum.add(A), n: e.n + 1 } : { sum: A, n: 1, size });
    }
    token = token.mul(1 / (count * this.recorded.length));

    let pixel = Tensor.scalar(0);
    for (const { sum, n, size } of byRes.values()) {
      const A = sum.mul(1 / n).clamp(1e-6, 1 - 1e-6);
      const M = maskAt(size[0], size[1]);
      const bce = M.mul(A.log())
        .add(M.neg().add(1).mul(A.neg().add(1).log()))
        .neg(); // (B, Tq, W)
      pixel = pixel.add(
        bce
          .mean({ axes: [1] })
          .mul(V)
          .sum(),
      );
    }
    pixel = pixel.mul(1 / (count * byRes.size));
    return { token, pixel };
  }
}
