/**
 * A tiny WebAssembly assembler: just the instructions the BLAKE3 module needs,
 * emitted straight to bytes. There is no toolchain in the build (no clang, no
 * wat2wasm), so the module is written in TypeScript and encoded here.
 *
 * Encodings follow the WebAssembly core spec, section 5 (binary format), and
 * the SIMD proposal's BinarySIMD.md (0xFD prefix, opcode as LEB128 u32).
 * Little is validated here (block nesting, immediate ranges): WebAssembly.Module
 * validates the result, so a mistake fails loudly at compile time, never silently.
 */

export type ValType = 'i32' | 'i64' | 'v128';

const VALTYPE_BYTE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, v128: 0x7b };

/**
 * A growable byte buffer with the LEB128 encodings of spec 5.2.2. Generation
 * runs once per thread at start-up, mostly in the interpreter, so bytes are
 * appended one at a time: no spreads, no temporary arrays per instruction.
 */
export class ByteWriter {
  private buffer = new Uint8Array(1024);
  private used = 0;

  get length(): number {
    return this.used;
  }

  private reserve(extra: number): void {
    if (this.used + extra <= this.buffer.length) return;
    const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.used + extra));
    grown.set(this.buffer.subarray(0, this.used));
    this.buffer = grown;
  }

  byte(value: number): this {
    if (this.used === this.buffer.length) this.reserve(1);
    this.buffer[this.used++] = value;
    return this;
  }

  bytes(values: Uint8Array | readonly number[]): this {
    this.reserve(values.length);
    this.buffer.set(values, this.used);
    this.used += values.length;
    return this;
  }

  /** Unsigned LEB128 of a u32: lengths, indices, memarg fields, SIMD opcodes. */
  uleb(value: number): this {
    if (value >= 0 && value < 0x80 && Number.isInteger(value)) return this.byte(value); // most immediates: one byte
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`wasm-writer: ${value} is not a u32`);
    let rest = value;
    while (rest >= 0x80) {
      this.byte((rest % 0x80) | 0x80);
      rest = Math.floor(rest / 0x80);
    }
    return this.byte(rest);
  }

  /** Signed LEB128 of an i32 (i32.const takes its immediate signed: 0xFFFFFFFF is -1). */
  sleb(value: number): this {
    let rest = value | 0;
    for (;;) {
      const low = rest & 0x7f;
      rest >>= 7;
      // Stop once the remaining bits are all copies of the sign bit just written.
      if ((rest === 0 && (low & 0x40) === 0) || (rest === -1 && (low & 0x40) !== 0)) return this.byte(low);
      this.byte(low | 0x80);
    }
  }

  /** Signed LEB128 of an i64. */
  slebBig(value: bigint): this {
    let rest = BigInt.asIntN(64, value);
    for (;;) {
      const low = Number(rest & 0x7fn);
      rest >>= 7n;
      if ((rest === 0n && (low & 0x40) === 0) || (rest === -1n && (low & 0x40) !== 0)) return this.byte(low);
      this.byte(low | 0x80);
    }
  }

  /** A UTF-8 name: byte length, then the bytes. */
  name(text: string): this {
    const utf8 = new TextEncoder().encode(text);
    return this.uleb(utf8.length).bytes(utf8);
  }

  /** Another writer's bytes prefixed with their length, as sections and function bodies are. */
  sized(content: ByteWriter): this {
    return this.uleb(content.used).bytes(content.view());
  }

  /** The bytes so far, without copying: valid until the next write. */
  view(): Uint8Array {
    return this.buffer.subarray(0, this.used);
  }

  /** Appends a copy of this writer's own bytes [start, end). */
  repeat(start: number, end: number): this {
    if (start < 0 || end > this.used || start > end) throw new RangeError(`wasm-writer: cannot repeat [${start}, ${end}) of ${this.used} bytes`);
    this.reserve(end - start);
    this.buffer.copyWithin(this.used, start, end);
    this.used += end - start;
    return this;
  }

  byteAt(at: number): number {
    if (at < 0 || at >= this.used) throw new RangeError(`wasm-writer: no byte at ${at} of ${this.used}`);
    return this.buffer[at]!;
  }

  /** Overwrites one byte already written. */
  patch(at: number, value: number): void {
    this.byteAt(at);
    this.buffer[at] = value;
  }

  toBytes(): Uint8Array<ArrayBuffer> {
    return this.buffer.slice(0, this.used);
  }
}

/** Shuffle lane bytes: 16 indices, 0-15 pick from the first operand, 16-31 from the second. */
export type ShuffleLanes = readonly number[];

/**
 * One function body under construction. Methods append one instruction each
 * and return `this`, so a line of calls reads like the text format.
 */
export class Code {
  readonly params: readonly ValType[];
  private readonly locals: ValType[] = [];
  private readonly out = new ByteWriter();
  private depth = 0; // open block/loop/if constructs

  constructor(params: readonly ValType[]) {
    this.params = params;
  }

  /** Declares a local and returns its index (locals number on after the params). */
  local(type: ValType): number {
    this.locals.push(type);
    return this.params.length + this.locals.length - 1;
  }

  /** Declares `count` locals of one type. */
  localsOf(type: ValType, count: number): number[] {
    return Array.from({ length: count }, () => this.local(type));
  }

  /** Bytes of code so far: a position for `repeat` and `patchLocalIndex`. */
  get position(): number {
    return this.out.length;
  }

  /**
   * Appends a copy of the code between two positions and returns where the
   * copy starts. With patchLocalIndex, repeats a stretch of code that differs
   * only in which locals it reads, for a fraction of the emitting work.
   */
  repeat(start: number, end: number): number {
    const at = this.out.length;
    this.out.repeat(start, end);
    return at;
  }

  /** Points the local.get/set/tee at `at` (its opcode's position) to another local; both indices must fit one LEB byte. */
  patchLocalIndex(at: number, index: number): void {
    const opcode = this.out.byteAt(at);
    if (opcode < 0x20 || opcode > 0x22 || this.out.byteAt(at + 1) >= 0x80 || index < 0 || index >= 0x80) {
      throw new Error(`wasm-writer: no one-byte local index to patch at ${at}`);
    }
    this.out.patch(at + 1, index);
  }

  /** Binary body (spec 5.5.13): locals in runs of one type, the code, the final `end`. */
  encodeBody(into: ByteWriter): void {
    if (this.depth !== 0) throw new Error(`wasm-writer: ${this.depth} block(s) left open`);
    const runs: Array<[number, ValType]> = [];
    for (const type of this.locals) {
      const last = runs.at(-1);
      if (last && last[1] === type) last[0] += 1;
      else runs.push([1, type]);
    }
    const body = new ByteWriter().uleb(runs.length);
    for (const [count, type] of runs) body.uleb(count).byte(VALTYPE_BYTE[type]);
    body.bytes(this.out.view()).byte(0x0b);
    into.sized(body);
  }

  private op(opcode: number): this {
    this.out.byte(opcode);
    return this;
  }

  private opIndex(opcode: number, index: number): this {
    this.out.byte(opcode).uleb(index);
    return this;
  }

  /** Memory instruction: memarg is the alignment exponent, then the offset. */
  private opMem(opcode: number, alignLog2: number, offset: number): this {
    this.out.byte(opcode).byte(alignLog2).uleb(offset);
    return this;
  }

  private simd(opcode: number): ByteWriter {
    return this.out.byte(0xfd).uleb(opcode);
  }

  // Control (spec 5.4.1). Blocks carry no values: block type 0x40.
  block(): this { this.depth += 1; this.out.byte(0x02).byte(0x40); return this; }
  loop(): this { this.depth += 1; this.out.byte(0x03).byte(0x40); return this; }
  end(): this {
    if (this.depth === 0) throw new Error('wasm-writer: end without an open block');
    this.depth -= 1;
    return this.op(0x0b);
  }
  br(label: number): this { return this.opIndex(0x0c, label); }
  brIf(label: number): this { return this.opIndex(0x0d, label); }
  call(func: number): this { return this.opIndex(0x10, func); }
  /** Untyped select: only for i32/i64 operands. */
  select(): this { return this.op(0x1b); }

  // Variables.
  localGet(index: number): this { return this.opIndex(0x20, index); }
  localSet(index: number): this { return this.opIndex(0x21, index); }
  localTee(index: number): this { return this.opIndex(0x22, index); }

  // Memory: memarg is alignment exponent then offset.
  i32Load(offset = 0): this { return this.opMem(0x28, 2, offset); }
  i32Store(offset = 0): this { return this.opMem(0x36, 2, offset); }

  // Numeric, i32.
  i32Const(value: number): this { this.out.byte(0x41).sleb(value); return this; }
  i32Eqz(): this { return this.op(0x45); }
  i32Eq(): this { return this.op(0x46); }
  i32LtU(): this { return this.op(0x49); }
  i32LeU(): this { return this.op(0x4d); }
  i32Add(): this { return this.op(0x6a); }
  i32Mul(): this { return this.op(0x6c); }
  i32Or(): this { return this.op(0x72); }
  i32Xor(): this { return this.op(0x73); }
  i32Shl(): this { return this.op(0x74); }
  i32ShrU(): this { return this.op(0x76); }
  i32Rotr(): this { return this.op(0x78); }

  // Numeric, i64 and conversions.
  i64Const(value: bigint): this { this.out.byte(0x42).slebBig(value); return this; }
  i64Add(): this { return this.op(0x7c); }
  i64Or(): this { return this.op(0x84); }
  i64Shl(): this { return this.op(0x86); }
  i64ShrU(): this { return this.op(0x88); }
  i32WrapI64(): this { return this.op(0xa7); }
  i64ExtendI32U(): this { return this.op(0xad); }

  // SIMD (BinarySIMD.md). v128 memory ops hint 16-byte alignment (exponent 4).
  v128Load(offset = 0): this { this.simd(0x00).byte(4).uleb(offset); return this; }
  v128Store(offset = 0): this { this.simd(0x0b).byte(4).uleb(offset); return this; }
  /** v128.const from four i32 lanes, lane 0 first, each little-endian. */
  v128ConstI32x4(lanes: readonly [number, number, number, number]): this {
    const bytes: number[] = [];
    for (const lane of lanes) for (let i = 0; i < 4; i++) bytes.push((lane >>> (8 * i)) & 0xff);
    this.simd(0x0c).bytes(bytes); return this;
  }
  i8x16Shuffle(lanes: ShuffleLanes): this {
    let valid = lanes.length === 16;
    for (let i = 0; valid && i < 16; i++) valid = Number.isInteger(lanes[i]) && lanes[i]! >= 0 && lanes[i]! <= 31;
    if (!valid) throw new RangeError(`wasm-writer: shuffle needs 16 lane indices in 0..31, got [${lanes.join(',')}]`);
    this.simd(0x0d).bytes(lanes);
    return this;
  }
  /** Byte gather with indices from the second operand; indices of 16 and over give 0. */
  i8x16Swizzle(): this { this.simd(0x0e); return this; }
  i32x4Splat(): this { this.simd(0x11); return this; }
  i32x4ExtractLane(lane: number): this { this.simd(0x1b).byte(lane); return this; }
  i32x4ReplaceLane(lane: number): this { this.simd(0x1c).byte(lane); return this; }
  v128Or(): this { this.simd(0x50); return this; }
  v128Xor(): this { this.simd(0x51); return this; }
  i32x4Shl(): this { this.simd(0xab); return this; }
  i32x4ShrU(): this { this.simd(0xad); return this; }
  i32x4Add(): this { this.simd(0xae); return this; }
}

export interface FunctionDef {
  /** Exported under this name; internal functions leave it out. */
  readonly exportName?: string;
  readonly results: readonly ValType[];
  readonly code: Code;
}

export interface ModuleDef {
  /** Functions in index order: `call` immediates refer to positions in this list. */
  readonly functions: readonly FunctionDef[];
  /** One memory of fixed size (minimum = maximum), 64 KiB pages. */
  readonly memoryPages: number;
  readonly memoryExport: string;
}

function section(into: ByteWriter, id: number, content: ByteWriter): void {
  into.byte(id).sized(content);
}

/** Encodes a whole module: type, function, memory, export and code sections (spec 5.5). */
export function encodeModule(def: ModuleDef): Uint8Array<ArrayBuffer> {
  // Type section: one entry per distinct signature, functions refer to it by index.
  const signatures: string[] = [];
  const types = new ByteWriter();
  const typeIndices = def.functions.map((f) => {
    const key = `${f.code.params.join(',')}->${f.results.join(',')}`;
    let index = signatures.indexOf(key);
    if (index < 0) {
      index = signatures.push(key) - 1;
      types.byte(0x60).uleb(f.code.params.length);
      for (const t of f.code.params) types.byte(VALTYPE_BYTE[t]);
      types.uleb(f.results.length);
      for (const t of f.results) types.byte(VALTYPE_BYTE[t]);
    }
    return index;
  });
  const typeSection = new ByteWriter().uleb(signatures.length).bytes(types.view());
  const functionSection = new ByteWriter().uleb(typeIndices.length);
  for (const index of typeIndices) functionSection.uleb(index);
  const memorySection = new ByteWriter().uleb(1).byte(0x01).uleb(def.memoryPages).uleb(def.memoryPages); // limits: min and max
  const exported = def.functions.flatMap((f, index) => (f.exportName === undefined ? [] : [{ name: f.exportName, index }]));
  const exportSection = new ByteWriter().uleb(exported.length + 1).name(def.memoryExport).byte(0x02).uleb(0);
  for (const { name, index } of exported) exportSection.name(name).byte(0x00).uleb(index);
  const codeSection = new ByteWriter().uleb(def.functions.length);
  for (const f of def.functions) f.code.encodeBody(codeSection);

  const module = new ByteWriter().bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]); // "\0asm", version 1
  section(module, 1, typeSection);
  section(module, 3, functionSection);
  section(module, 5, memorySection);
  section(module, 7, exportSection);
  section(module, 10, codeSection);
  return module.toBytes();
}
