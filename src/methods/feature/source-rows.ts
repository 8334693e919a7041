// Which batch row each row takes the source's features from, read from the batch roles (never from the
// batch's halves): the source prompt's row in the same classifier-free-guidance branch, as MasaCtrl and
// Plug-and-Play pair the unconditional rows with the unconditional source and the conditional with the
// conditional one.

import type { BatchRoles } from '../../attention/call.js';

/** For each row r, the row of prompt `source` with the same guidance branch as r. */
export function sourceRowOf(batch: BatchRoles, method: string, source = 0): number[] {
  return batch.guidance.map((g) => {
    const s = batch.guidance.findIndex((h, i) => h === g && batch.prompt[i] === source);
    if (s < 0) {
      throw new Error(
        `${method}: the batch has no '${g}' row of the source prompt (prompt ${source}); give the source ` +
          `prompt first (generate({ prompt: [source, target, …] }))`,
      );
    }
    return s;
  });
}

/** The conditional row of each row's prompt (the row itself when the batch has no conditional rows). */
export function condRowOf(batch: BatchRoles): number[] {
  return batch.prompt.map((p, r) => {
    const c = batch.guidance.findIndex((g, i) => g === 'cond' && batch.prompt[i] === p);
    return c < 0 ? r : c;
  });
}
