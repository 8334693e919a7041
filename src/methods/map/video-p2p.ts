// Video-P2P (Liu et al. 2023, "Video-P2P: Video Editing with Cross-attention Control"): Prompt-to-Prompt's
// attention control on a clip. The batch holds two clips of the same frames — the source prompt's (clip 0)
// and the target's (clip 1) — and the target clip's frame k takes its maps from the source clip's frame k:
// cross-attention through the word mapper, self-attention during the self-replace steps, as the wrapped
// Prompt-to-Prompt editor does for one image. With cross-frame attention beside it (Text2Video-Zero's, the
// reference's sparse-causal "frame attention") a self-attention map is frame k's queries on frame 0's keys, so
// the target frames take the source frames' correspondence to their first frame as well.
//
// The rows come from the batch roles: `frame` gives each row's frame, `prompt` its clip (0 = source,
// 1 = first target, …). The reference edits a real video after tuning the model on it (Tune-A-Video) and
// null-text inversion; here the source clip is generated, so neither is needed.

import type { AttentionCall } from '../../attention/call.js';
import type { Controller } from '../../attention/hooks.js';
import { concat, type Tensor } from '../../tensor/index.js';
import type { AttentionEdit } from './attention-edit.js';

/**
 * Video-P2P's attention control (Liu et al. 2023): a Prompt-to-Prompt editor (word swap, refinement or
 * reweighting) applied frame by frame, the target clip's frame k edited from the source clip's frame k.
 */
export class VideoP2P implements Controller {
  readonly name = 'VideoP2P';
  /** The Prompt-to-Prompt editor applied to each frame's rows. */
  readonly editor: AttentionEdit;

  constructor(editor: AttentionEdit) {
    this.editor = editor;
  }

  /** The layers and steps the editor edits (cross- and self-attention of the denoiser). */
  appliesTo(call: AttentionCall): boolean {
    return this.editor.appliesTo(call);
  }

  /** Each frame's rows (both clips, both guidance branches) go through the editor as one image's batch. */
  map(call: AttentionCall, p: Tensor): Tensor {
    const { frame, guidance, prompt } = call.batch;
    if (!frame || frame.length !== guidance.length) {
      throw new Error(
        `${this.name}: layer ${call.path} was called without the frame of each row; sample the clips with ` +
          'editVideo (batch roles with `frame`)',
      );
    }
    const groups = new Map<number, number[]>();
    frame.forEach((f, r) => {
      groups.set(f, [...(groups.get(f) ?? []), r]);
    });
    const rows = p.split(p.shape[0] as number, 0); // (1, H, Tq, Tk) each
    for (const [f, idx] of groups) {
      const batch = { guidance: idx.map((r) => guidance[r]!), prompt: idx.map((r) => prompt[r]!) };
      const sub = concat(
        idx.map((r) => rows[r]!),
        0,
      );
      const edited = this.editor.map({ ...call, batch: { ...batch, frame: idx.map(() => f) } }, sub);
      const parts = edited.split(idx.length, 0);
      idx.forEach((r, i) => {
        rows[r] = parts[i]!;
      });
    }
    return concat(rows, 0);
  }
}
