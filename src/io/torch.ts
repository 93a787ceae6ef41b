/**
 * PyTorch checkpoints (`torch.save(model.state_dict(), 'model.pt')`), bytes in and bytes out.
 *
 * Since torch 1.6 the file is a zip (stored, not deflated) of `<archive>/data.pkl`, a pickle of the
 * state_dict in which every tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size,
 * stride, requires_grad, hooks)` and every storage a persistent id `('storage', torch.FloatStorage,
 * key, location, numel)` whose raw little-endian bytes are the record `<archive>/data/<key>`.
 *
 * A pickle is a program for a stack machine that may call any importable function. This reader is
 * not Python's unpickler: it knows only the opcodes a state_dict uses and treats the few globals it
 * names (OrderedDict, the tensor rebuild functions, the float storage types) as data tags. Anything
 * else (os.system, builtins.eval, an unknown opcode) is refused with an error naming it; nothing in
 * the file is ever executed. The legacy format (torch < 1.6, not a zip) is refused with a hint.
 */
import { zipSync } from 'fflate';
import { badInput, EcpruneError } from '../errors.js';
import { type FloatArray, zerosLike } from '../model/matrix.js';
import { decodeElements, elementType, floatValues } from './npy.js';
import { unzipChecked, zipMemberNames } from './npz.js';
import { decodeBfloat16, isRecord } from './safetensors.js';

/** The torch dtypes of floating-point tensors, which a checkpoint's weights are stored in. */
export type TorchDtype = 'float32' | 'float16' | 'float64' | 'bfloat16';

export interface TorchTensor {
  /** the dtype it was stored as; `data` is float64 for float64, else float32 */
  readonly dtype: TorchDtype;
  readonly shape: number[];
  readonly data: FloatArray;
}

/** The extra zip record in which ecprune keeps its metadata (torch.load ignores records it does not read). */
export const TORCH_METADATA_RECORD = 'ecprune_metadata.json';

/** Storage class name -> dtype, its size in bytes and its decoder. */
const STORAGES: Record<
  string,
  { dtype: TorchDtype; size: number; decode(bytes: Uint8Array, count: number): FloatArray }
> = {
  FloatStorage: {
    dtype: 'float32',
    size: 4,
    decode: (b, n) => floatValues(decodeElements(b, elementType('<f4'), n)),
  },
  HalfStorage: {
    dtype: 'float16',
    size: 2,
    decode: (b, n) => floatValues(decodeElements(b, elementType('<f2'), n)),
  },
  DoubleStorage: {
    dtype: 'float64',
    size: 8,
    decode: (b, n) => floatValues(decodeElements(b, elementType('<f8'), n)),
  },
  BFloat16Storage: { dtype: 'bfloat16', size: 2, decode: decodeBfloat16 },
};
const STORAGE_OF: Record<TorchDtype, string> = {
  float32: 'FloatStorage',
  float16: 'HalfStorage',
  float64: 'DoubleStorage',
  bfloat16: 'BFloat16Storage',
};

// ---------------------------------------------------------------------------------------------
// The restricted unpickler

/** A global the pickle named; only these are accepted, and only as tags. */
type Global = {
  readonly global: 'OrderedDict' | 'rebuild_tensor' | 'rebuild_parameter' | 'storage';
  readonly name: string;
};
interface StorageRef {
  readonly storage: string;
  readonly key: string;
  readonly numel: number;
}
interface TensorRef {
  readonly tensor: StorageRef;
  readonly offset: number;
  readonly size: number[];
  readonly stride: number[];
}
type Value =
  | null
  | boolean
  | number
  | string
  | Value[]
  | Map<Value, Value>
  | Global
  | StorageRef
  | TensorRef
  | { readonly mark: true };

const ALLOWED_GLOBALS: Record<string, Global['global']> = {
  'collections OrderedDict': 'OrderedDict',
  'torch._utils _rebuild_tensor_v2': 'rebuild_tensor',
  'torch._utils _rebuild_parameter': 'rebuild_parameter',
  ...Object.fromEntries(Object.keys(STORAGES).map((name) => [`torch ${name}`, 'storage' as const])),
};

const MARK = { mark: true } as const;
const isGlobal = (v: Value): v is Global => isRecord(v) && 'global' in v;
const isTensor = (v: Value): v is TensorRef => isRecord(v) && 'tensor' in v;

/**
 * Runs the pickle in `bytes` on a stack of plain values; returns what STOP leaves on top.
 * `file` names the checkpoint in errors.
 */
function unpickle(bytes: Uint8Array, file: string | undefined): Value {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (problem: string, at: number) => badInput(problem, file, `data.pkl, byte ${at}`);
  const refuse = (problem: string, at: number) =>
    new EcpruneError(
      'unsupported',
      `${problem}, which a state_dict never holds; refused (nothing in the file is run)`,
      file,
      `data.pkl, byte ${at}`,
    );
  const stack: Value[] = [];
  const memo = new Map<number, Value>();
  let pos = 0;
  const need = (n: number, at: number) => {
    if (pos + n > bytes.length) throw fail('ends in the middle of an instruction', at);
  };
  const pop = (at: number): Value => {
    const v = stack.pop();
    if (v === undefined || v === MARK) throw fail('pops from an empty stack', at);
    return v;
  };
  const popMark = (at: number): Value[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw fail('has no MARK for a tuple, list or dict', at);
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const text = (n: number, at: number) => {
    need(n, at);
    const s = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(pos, pos + n));
    pos += n;
    return s;
  };
  const line = (at: number) => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw fail('ends in the middle of a GLOBAL', at);
    const s = text(end - pos, at);
    pos++; // the newline
    return s;
  };
  const setItems = (dict: Value, items: Value[], at: number) => {
    if (!(dict instanceof Map)) throw fail('sets items on something that is not a dict', at);
    if (items.length % 2 !== 0) throw fail('has a key without a value', at);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
  };
  for (;;) {
    const at = pos;
    need(1, at);
    const op = bytes[pos++];
    switch (op) {
      case 0x80: // PROTO
        need(1, at);
        if (bytes[pos] > 5) throw refuse(`uses pickle protocol ${bytes[pos]}`, at);
        pos += 1;
        break;
      case 0x95: // FRAME (protocol 4): only a length hint
        need(8, at);
        pos += 8;
        break;
      case 0x2e: // STOP
        return pop(at);
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x29: // EMPTY_TUPLE
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark(at));
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const n = op - 0x84;
        if (stack.length < n) throw fail('pops from an empty stack', at);
        const items = stack.splice(stack.length - n);
        if (items.includes(MARK)) throw fail('puts a MARK in a tuple', at);
        stack.push(items);
        break;
      }
      case 0x61: // APPEND
      case 0x65: {
        // APPENDS
        const items = op === 0x61 ? [pop(at)] : popMark(at);
        const list = pop(at);
        if (!Array.isArray(list)) throw fail('appends to something that is not a list', at);
        list.push(...items);
        stack.push(list);
        break;
      }
      case 0x73: {
        // SETITEM
        const value = pop(at);
        const key = pop(at);
        const dict = pop(at);
        setItems(dict, [key, value], at);
        stack.push(dict);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark(at);
        const dict = pop(at);
        setItems(dict, items, at);
        stack.push(dict);
        break;
      }
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
      case 0x89: // NEWFALSE
        stack.push(op === 0x88);
        break;
      case 0x4b: // BININT1
        need(1, at);
        stack.push(bytes[pos]);
        pos += 1;
        break;
      case 0x4d: // BININT2
        need(2, at);
        stack.push(view.getUint16(pos, true));
        pos += 2;
        break;
      case 0x4a: // BININT
        need(4, at);
        stack.push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x8a: {
        // LONG1: a little-endian two's-complement integer of n bytes
        need(1, at);
        const n = bytes[pos++];
        need(n, at);
        let value = 0n;
        for (let i = n - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[pos + i]);
        if (n > 0 && bytes[pos + n - 1] & 0x80) value -= 1n << BigInt(8 * n);
        pos += n;
        if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) {
          throw fail(`holds the integer ${value}, too large for a tensor size`, at);
        }
        stack.push(Number(value));
        break;
      }
      case 0x47: // BINFLOAT (big-endian float64)
        need(8, at);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: {
        // BINUNICODE
        need(4, at);
        const n = view.getUint32(pos, true);
        pos += 4;
        stack.push(text(n, at));
        break;
      }
      case 0x8c: {
        // SHORT_BINUNICODE
        need(1, at);
        const n = bytes[pos++];
        stack.push(text(n, at));
        break;
      }
      case 0x55: {
        // SHORT_BINSTRING (protocol 2 writes Python 2 str this way)
        need(1, at);
        const n = bytes[pos++];
        stack.push(text(n, at));
        break;
      }
      case 0x71: // BINPUT
        need(1, at);
        memo.set(bytes[pos++], stack.at(-1) ?? null);
        break;
      case 0x72: // LONG_BINPUT
        need(4, at);
        memo.set(view.getUint32(pos, true), stack.at(-1) ?? null);
        pos += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, stack.at(-1) ?? null);
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const size = op === 0x68 ? 1 : 4;
        need(size, at);
        const index = size === 1 ? bytes[pos] : view.getUint32(pos, true);
        pos += size;
        if (!memo.has(index)) throw fail(`reads memo entry ${index}, which was never stored`, at);
        stack.push(memo.get(index)!);
        break;
      }
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const module = line(at);
        const name = line(at);
        const tag = ALLOWED_GLOBALS[`${module} ${name}`];
        if (tag === undefined) throw refuse(`imports ${module}.${name}`, at);
        stack.push({ global: tag, name });
        break;
      }
      case 0x93: // STACK_GLOBAL
        throw refuse('imports a global by STACK_GLOBAL', at);
      case 0x51: {
        // BINPERSID: ('storage', <storage class>, key, location, numel)
        const id = pop(at);
        if (
          !Array.isArray(id) ||
          id.length !== 5 ||
          id[0] !== 'storage' ||
          !isGlobal(id[1]) ||
          id[1].global !== 'storage' ||
          typeof id[2] !== 'string' ||
          typeof id[4] !== 'number'
        ) {
          throw fail('has a persistent id that is not a storage', at);
        }
        stack.push({ storage: id[1].name, key: id[2], numel: id[4] });
        break;
      }
      case 0x52: {
        // REDUCE: calls nothing, builds the value the allowed global stands for
        const args = pop(at);
        const callable = pop(at);
        if (!isGlobal(callable) || !Array.isArray(args))
          throw refuse('calls something that is not an allowed global', at);
        stack.push(reduce(callable, args, at));
        break;
      }
      case 0x62: {
        // BUILD: the state of an OrderedDict (the state_dict's `_metadata`), or of a tensor; kept out
        pop(at);
        const target = stack.at(-1);
        if (!(target instanceof Map) && (target === undefined || !isTensor(target))) {
          throw refuse('sets the state of something that is not a dict or a tensor', at);
        }
        break;
      }
      default:
        throw refuse(`uses opcode 0x${op.toString(16).padStart(2, '0')} ('${String.fromCharCode(op)}')`, at);
    }
  }

  function reduce(callable: Global, args: Value[], at: number): Value {
    switch (callable.global) {
      case 'OrderedDict':
        if (args.length !== 0) throw refuse('calls OrderedDict with arguments', at);
        return new Map();
      case 'rebuild_tensor': {
        const [storage, offset, size, stride] = args;
        const ints = (v: Value) =>
          Array.isArray(v) && v.every((d) => Number.isSafeInteger(d) && (d as number) >= 0);
        if (
          args.length < 6 ||
          !isRecord(storage) ||
          !('storage' in storage) ||
          !Number.isSafeInteger(offset) ||
          !ints(size) ||
          !ints(stride) ||
          (size as number[]).length !== (stride as number[]).length
        ) {
          throw fail(
            'rebuilds a tensor from arguments that are not (storage, offset, size, stride, ...)',
            at,
          );
        }
        return {
          tensor: storage as unknown as StorageRef,
          offset: offset as number,
          size: size as number[],
          stride: stride as number[],
        };
      }
      case 'rebuild_parameter':
        if (!isTensor(args[0] ?? null))
          throw fail('rebuilds a Parameter from something that is not a tensor', at);
        return args[0];
      case 'storage':
        throw refuse(`calls torch.${callable.name}`, at);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

/**
 * Whether the zip `bytes` is a torch.save checkpoint (it holds a `data.pkl`) rather than an .npz;
 * undefined when its directory cannot be read.
 */
export function isTorchZip(bytes: Uint8Array): boolean | undefined {
  return zipMemberNames(bytes)?.some((name) => PICKLE_RECORD.test(name));
}

/** `<archive>/data.pkl`: the archive folder is named after the file torch.save wrote. */
const PICKLE_RECORD = /^[^/]*\/data\.pkl$/;

/** The magic number that starts a legacy (torch < 1.6) checkpoint, as pickled: LONG1 of 10 bytes. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/** Every tensor of a torch.save'd state_dict, decoded to float32, in the state_dict's order. */
export function readTorch(
  bytes: Uint8Array,
  file?: string,
): { tensors: Map<string, TorchTensor>; metadata: Record<string, string> } {
  if (LEGACY_MAGIC.every((byte, i) => bytes[i] === byte)) {
    throw new EcpruneError(
      'unsupported',
      'is a legacy (torch < 1.6) checkpoint; save it again with torch.save in torch 1.6 or later',
      file,
    );
  }
  const records = unzipChecked(bytes, file, 'torch.save');
  const pickleName = Object.keys(records).find((name) => PICKLE_RECORD.test(name));
  if (pickleName === undefined)
    throw badInput('is a zip without <archive>/data.pkl: not a torch.save checkpoint', file);
  const prefix = pickleName.slice(0, -'data.pkl'.length);
  const byteorder = records[`${prefix}byteorder`];
  if (byteorder !== undefined && new TextDecoder().decode(byteorder).trim() !== 'little') {
    throw new EcpruneError('unsupported', 'stores big-endian tensors', file);
  }
  const root = unpickle(records[pickleName], file);
  if (!(root instanceof Map)) {
    throw new EcpruneError(
      'unsupported',
      'holds a pickled object, not a state_dict (save model.state_dict(), not the model)',
      file,
    );
  }
  const tensors = new Map<string, TorchTensor>();
  for (const [name, value] of root) {
    const where = `key '${String(name)}'`;
    if (typeof name !== 'string') throw badInput('has a key that is not a string', file);
    if (value === null || !isTensor(value)) {
      throw new EcpruneError(
        'unsupported',
        'is not a tensor (ecprune reads state_dicts of tensors)',
        file,
        where,
      );
    }
    const { storage, key, numel } = value.tensor;
    const type = STORAGES[storage];
    const record = records[`${prefix}data/${key}`];
    if (record === undefined) throw badInput(`its storage data/${key} is missing`, file, where);
    if (record.length !== numel * type.size) {
      throw badInput(
        `storage data/${key} holds ${record.length} bytes, ${numel} x ${storage} need ${numel * type.size}`,
        file,
        where,
      );
    }
    tensors.set(name, {
      dtype: type.dtype,
      shape: value.size,
      data: gather(type.decode(record, numel), value, file, where),
    });
  }
  const metadataRecord = records[`${prefix}${TORCH_METADATA_RECORD}`];
  let metadata: Record<string, string> = {};
  if (metadataRecord !== undefined) {
    try {
      const parsed: unknown = JSON.parse(new TextDecoder().decode(metadataRecord));
      if (isRecord(parsed))
        metadata = Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
    } catch {
      throw badInput(`${TORCH_METADATA_RECORD} is not valid JSON`, file);
    }
  }
  return { tensors, metadata };
}

/** The tensor's elements in row-major order, read from its storage through offset and strides. */
function gather(storage: FloatArray, tensor: TensorRef, file: string | undefined, where: string): FloatArray {
  const { size, stride, offset } = tensor;
  const count = size.reduce((n, d) => n * d, 1);
  if (count === 0) return storage.slice(0, 0);
  // more elements than its storage: an expanded view (stride 0), which no saved parameter is
  if (count > storage.length) {
    throw badInput(
      `size [${size.join(', ')}] has more elements than the ${storage.length} of its storage`,
      file,
      where,
    );
  }
  const last = offset + size.reduce((n, d, i) => n + (d - 1) * stride[i], 0);
  if (last >= storage.length) {
    throw badInput(
      `size [${size.join(', ')}] and stride [${stride.join(', ')}] reach past the ${storage.length} elements of its storage`,
      file,
      where,
    );
  }
  const contiguous = size.every((_, i) => stride[i] === size.slice(i + 1).reduce((n, d) => n * d, 1));
  if (contiguous) return storage.slice(offset, offset + count);
  const out = zerosLike(storage, count);
  const index = new Array(size.length).fill(0);
  for (let i = 0; i < count; i++) {
    out[i] = storage[offset + index.reduce((n, d, k) => n + d * stride[k], 0)];
    for (let k = size.length - 1; k >= 0 && ++index[k] === size[k]; k--) index[k] = 0;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Encodes `bytes` as a pickle; every helper returns the opcodes of one value. */
class PickleWriter {
  private readonly parts: number[] = [];

  op(...codes: number[]): this {
    this.parts.push(...codes);
    return this;
  }

  global(module: string, name: string): this {
    return this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
  }

  string(value: string): this {
    const utf8 = new TextEncoder().encode(value);
    return this.op(0x58, ...le32(utf8.length), ...utf8);
  }

  int(value: number): this {
    if (value >= 0 && value < 256) return this.op(0x4b, value);
    if (value >= -(2 ** 31) && value < 2 ** 31) return this.op(0x4a, ...le32(value));
    const bytes: number[] = [];
    let rest = BigInt(value);
    for (let i = 0; i < 8; i++, rest >>= 8n) bytes.push(Number(rest & 0xffn));
    return this.op(0x8a, 8, ...bytes);
  }

  tuple(values: readonly number[]): this {
    if (values.length === 0) return this.op(0x29);
    this.op(0x28);
    for (const v of values) this.int(v);
    return this.op(0x74);
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

function le32(value: number): number[] {
  return [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff];
}

/** `data` rounded to `dtype`, as little-endian bytes. */
function encode(data: FloatArray, dtype: TorchDtype): Uint8Array {
  const out = new Uint8Array(data.length * STORAGES[STORAGE_OF[dtype]].size);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) {
    if (dtype === 'float32') view.setFloat32(4 * i, data[i], true);
    else if (dtype === 'float64') view.setFloat64(8 * i, data[i], true);
    else if (dtype === 'float16') view.setUint16(2 * i, float16Bits(data[i]), true);
    else view.setUint16(2 * i, bfloat16Bits(data[i]), true);
  }
  return out;
}

/** The float32 bits of `value`, rounded to bfloat16 (round to nearest even; NaN kept NaN). */
function bfloat16Bits(value: number): number {
  const bits = new Uint32Array(new Float32Array([value]).buffer)[0];
  if (Number.isNaN(value)) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE half-precision bits of `value` (round to nearest even, overflow to infinity). */
function float16Bits(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mantissa | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rounded = (m + half - 1 + ((m >>> shift) & 1)) >>> shift;
    return sign | rounded;
  }
  const rounded = (mantissa + 0xfff + ((mantissa >>> 13) & 1)) >>> 13;
  return sign | ((e << 10) + rounded);
}

/**
 * A torch.save checkpoint of `tensors` (a state_dict, in the map's order) that `torch.load` reads:
 * each tensor in its own storage, contiguous, in its `dtype`; `metadata` in an extra record.
 */
export function writeTorch(
  tensors: ReadonlyMap<
    string,
    { readonly shape: readonly number[]; readonly data: FloatArray; readonly dtype?: TorchDtype }
  >,
  metadata: Record<string, string> = {},
  archive = 'archive',
): Uint8Array {
  const pickle = new PickleWriter().op(0x80, 2).global('collections', 'OrderedDict').op(0x29, 0x52, 0x28);
  const records: Record<string, Uint8Array> = {};
  let key = 0;
  for (const [name, { shape, data, dtype = 'float32' }] of tensors) {
    const strides = shape.map((_, i) => shape.slice(i + 1).reduce((n, d) => n * d, 1));
    pickle.string(name).global('torch._utils', '_rebuild_tensor_v2');
    // (persistent id, offset, size, stride, requires_grad, backward hooks)
    pickle
      .op(0x28, 0x28)
      .string('storage')
      .global('torch', STORAGE_OF[dtype])
      .string(String(key))
      .string('cpu');
    pickle.int(data.length).op(0x74, 0x51).int(0).tuple(shape).tuple(strides).op(0x89);
    pickle.global('collections', 'OrderedDict').op(0x29, 0x52, 0x74, 0x52);
    records[`${archive}/data/${key}`] = encode(data, dtype);
    key++;
  }
  pickle.op(0x75, 0x2e);
  const files: Record<string, Uint8Array> = {
    [`${archive}/data.pkl`]: pickle.bytes(),
    ...records,
    [`${archive}/version`]: new TextEncoder().encode('3\n'),
  };
  if (Object.keys(metadata).length > 0) {
    files[`${archive}/${TORCH_METADATA_RECORD}`] = new TextEncoder().encode(JSON.stringify(metadata));
  }
  // stored, as torch writes them (its reader maps records in place); a fixed date keeps the bytes reproducible
  return zipSync(files, { level: 0, mtime: new Date('2000-01-01T00:00:00Z') });
}
