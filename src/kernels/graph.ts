// Builds ONNX models (ModelProto) with onnx-proto's protobuf classes: single-op graphs for the eager engine
// and whole traced graphs for export. Input shapes stay symbolic so one session serves every shape.

import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** The element types of tensors (ONNX names them the same way). */
export type DType = 'float32' | 'float16' | 'int32' | 'int64' | 'bool' | 'uint8';

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
};

/** Opset of the default domain used by every graph attnkit writes. */
export const OPSET = 21;

export type AttrValue = number | string | number[] | string[] | { tensor: TensorValue };

export interface TensorValue {
  dtype: DType;
  dims: readonly number[];
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array;
}

/** One graph value: a name with its dtype and rank (dims are symbolic unless given). */
export interface ValueSpec {
  name: string;
  dtype: DType;
  /** Symbolic dims as strings, fixed dims as numbers; length = rank. Omit for "any shape". */
  dims?: readonly (number | string)[];
}

export interface NodeSpec {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs?: Record<string, AttrValue | undefined>;
  domain?: string;
  name?: string;
}

export interface GraphSpec {
  name: string;
  nodes: readonly NodeSpec[];
  inputs: readonly ValueSpec[];
  outputs: readonly ValueSpec[];
  initializers?: readonly (TensorValue & { name: string })[];
}

const AT = onnx.AttributeProto.AttributeType;

function tensorProto(t: TensorValue & { name?: string }): onnxProto.onnx.ITensorProto {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name: t.name ?? '', dims: [...t.dims], dataType: ONNX_DTYPE[t.dtype], rawData: bytes };
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  if (typeof v === 'number') {
    return Number.isInteger(v) && !Object.is(v, -0) && !isFloatAttr(name)
      ? { name, type: AT.INT, i: v }
      : { name, type: AT.FLOAT, f: v };
  }
  if (typeof v === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') {
      return { name, type: AT.STRINGS, strings: (v as string[]).map((s) => new TextEncoder().encode(s)) };
    }
    const nums = v as number[];
    return nums.every(Number.isInteger) && !isFloatAttr(name)
      ? { name, type: AT.INTS, ints: nums }
      : { name, type: AT.FLOATS, floats: nums };
  }
  return { name, type: AT.TENSOR, t: tensorProto(v.tensor) };
}

// Attributes that ONNX declares as float even when the value happens to be whole.
const FLOAT_ATTRS = new Set([
  'alpha',
  'beta',
  'gamma',
  'epsilon',
  'scale',
  'bias',
  'lambd',
  'value_float',
  'mask_filter_value',
  'extrapolation_value',
  'cubic_coeff_a',
  'min',
  'max',
]);

function isFloatAttr(name: string): boolean {
  return FLOAT_ATTRS.has(name);
}

function valueInfo(v: ValueSpec): onnxProto.onnx.IValueInfoProto {
  const tensorType: onnxProto.onnx.TypeProto.ITensor = { elemType: ONNX_DTYPE[v.dtype] };
  if (v.dims) {
    tensorType.shape = {
      dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
    };
  }
  return { name: v.name, type: { tensorType } };
}

/** Serializes a graph into ONNX model bytes (initializers inline: the whole model must stay under 2 GB). */
export function buildModel(g: GraphSpec): Uint8Array {
  return encodeModel(g, g.initializers ?? [], []);
}

export interface ModelWithExternalData {
  model: Uint8Array;
  /** Chunks to write, in order, to the external data file (each starting at a 4096-byte aligned offset). */
  chunks: Uint8Array[];
  location: string;
}

/**
 * Serializes a graph whose initializers larger than `minBytes` live in an external data file named
 * `location` beside the model (ONNX's external data format; needed past protobuf's 2 GB limit). With
 * `separate`, each one is a file of its own, `location.k` = `chunks[k]` (a view of its data, not a copy).
 */
export function buildModelWithExternalData(
  g: GraphSpec,
  location: string,
  minBytes = 1024,
  separate = false,
): ModelWithExternalData {
  const inline: (TensorValue & { name: string })[] = [];
  const external: onnxProto.onnx.ITensorProto[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of g.initializers ?? []) {
    if (t.data.byteLength < minBytes) {
      inline.push(t);
      continue;
    }
    if (separate) {
      // one "file" per initializer (`location.k`, chunk k): handed to onnxruntime from memory, no copy
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      external.push({
        name: t.name,
        dims: [...t.dims],
        dataType: ONNX_DTYPE[t.dtype],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: `${location}.${chunks.length}` },
          { key: 'offset', value: '0' },
          { key: 'length', value: String(t.data.byteLength) },
        ],
      });
      chunks.push(bytes);
      continue;
    }
    const pad = (4096 - (offset % 4096)) % 4096;
    if (pad) chunks.push(new Uint8Array(pad));
    offset += pad;
    chunks.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    external.push({
      name: t.name,
      dims: [...t.dims],
      dataType: ONNX_DTYPE[t.dtype],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(t.data.byteLength) },
      ],
    });
    offset += t.data.byteLength;
  }
  return { model: encodeModel(g, inline, external), chunks, location };
}

function encodeModel(
  g: GraphSpec,
  inline: readonly (TensorValue & { name: string })[],
  external: readonly onnxProto.onnx.ITensorProto[],
): Uint8Array {
  const domains = new Set(g.nodes.map((n) => n.domain ?? ''));
  const opsetImport: onnxProto.onnx.IOperatorSetIdProto[] = [{ domain: '', version: OPSET }];
  if (domains.has('com.microsoft')) opsetImport.push({ domain: 'com.microsoft', version: 1 });
  const model: onnxProto.onnx.IModelProto = {
    irVersion: 8,
    producerName: 'attnkit',
    opsetImport,
    graph: {
      name: g.name,
      node: g.nodes.map((n, i) => ({
        opType: n.op,
        domain: n.domain ?? '',
        name: n.name ?? `${n.op}_${i}`,
        input: [...n.inputs],
        output: [...n.outputs],
        attribute: Object.entries(n.attrs ?? {})
          .filter((e): e is [string, AttrValue] => e[1] !== undefined)
          .map(([k, v]) => attribute(k, v)),
      })),
      input: g.inputs.map(valueInfo),
      output: g.outputs.map(valueInfo),
      initializer: [...inline.map(tensorProto), ...external],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
