// Positions in the Shapes world: the 3 × 3 grid of cells, their names in captions, and the spatial
// relations between two objects.

/** A cell of the 3 × 3 grid: row 0 is the top, col 0 the left. */
export interface Cell {
  row: number;
  col: number;
}

/** Location phrase of each cell, row by row: one phrase per cell, so a phrase names its cell exactly. */
export const CELL_PHRASES: readonly (readonly string[])[] = [
  ['in the top left', 'at the top', 'in the top right'],
  ['on the left', 'in the center', 'on the right'],
  ['in the bottom left', 'at the bottom', 'in the bottom right'],
];

/** The caption phrase of a cell of the 3 × 3 grid (e.g. "in the top left"). */
export function cellPhrase(cell: Cell): string {
  const phrase = CELL_PHRASES[cell.row]?.[cell.col];
  if (phrase === undefined) throw new Error(`cellPhrase: no cell at row ${cell.row}, col ${cell.col}`);
  return phrase;
}

/** The cell a location phrase names, or null when the phrase is not one of CELL_PHRASES. */
export function cellOfPhrase(phrase: string): Cell | null {
  for (let row = 0; row < 3; row++) {
    for (let col = 0; col < 3; col++) if (CELL_PHRASES[row]![col] === phrase) return { row, col };
  }
  return null;
}

/** Centre of a cell in pixels, for an image of width × height. */
export function cellCenter(cell: Cell, width: number, height: number): { x: number; y: number } {
  return { x: ((cell.col + 0.5) * width) / 3, y: ((cell.row + 0.5) * height) / 3 };
}

/** The cell that contains the point (x, y) of a width × height image (points outside clamp to the edge). */
export function cellAt(x: number, y: number, width: number, height: number): Cell {
  const clamp = (k: number) => Math.min(2, Math.max(0, Math.floor(k)));
  return { row: clamp((3 * y) / height), col: clamp((3 * x) / width) };
}

/** Whether two cells are the same. */
export function sameCell(a: Cell, b: Cell): boolean {
  return a.row === b.row && a.col === b.col;
}

/** The spatial relations captions use. */
export const RELATIONS = ['above', 'below', 'to the left of', 'to the right of'] as const;
/** One spatial relation. */
export type RelationName = (typeof RELATIONS)[number];

/** "subject <relation> object": indices into a scene's (or spec's) objects. */
export interface Relation {
  subject: number;
  relation: RelationName;
  object: number;
}

/** Whether `relation` holds between two points, by their centres (y down): "above" is a smaller y. */
export function relationHolds(
  relation: RelationName,
  subject: { x: number; y: number },
  object: { x: number; y: number },
): boolean {
  switch (relation) {
    case 'above':
      return subject.y < object.y;
    case 'below':
      return subject.y > object.y;
    case 'to the left of':
      return subject.x < object.x;
    case 'to the right of':
      return subject.x > object.x;
  }
}

/** The relations that hold between two distinct cells (one or two of them). */
export function cellRelations(subject: Cell, object: Cell): RelationName[] {
  const out: RelationName[] = [];
  if (subject.row < object.row) out.push('above');
  if (subject.row > object.row) out.push('below');
  if (subject.col < object.col) out.push('to the left of');
  if (subject.col > object.col) out.push('to the right of');
  return out;
}
