/**
 * Generates the BLAKE3 WebAssembly module: a scalar compression for the odd
 * block (the last chunk, stack merges, the root) and a 4-way SIMD kernel for
 * the bulk, where lane i of every v128 holds the state of input i. The seven
 * rounds and the message permutation are unrolled here, at generation time,
 * so the module has no message-schedule lookups and no round loop.
 *
 * Section numbers refer to the C2SP BLAKE3 specification (c2sp.org/BLAKE3),
 * which restates the BLAKE3 paper's algorithm with numbered steps.
 */
import { Code, encodeModule, type ShuffleLanes } from './wasm-writer.ts';

/** §2.2: the IV is SHA-256's; in hash mode it is also the key (§4.1). */
export const IV: readonly number[] = [
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
/** §2.3: word i of the next round's message is word MSG_PERMUTATION[i] of this one's. */
const MSG_PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
/** §2.4: domain flags. */
export const CHUNK_START = 1;
export const CHUNK_END = 2;
export const PARENT = 4;
export const ROOT = 8;

export const BLOCK_BYTES = 64;
export const CHUNK_BYTES = 1024;
export const CV_BYTES = 32;
const ROUNDS = 7;

/** Chunks hashed per call of `hashSubtree` in the bulk path: a power of two. */
export const SUBTREE_CHUNKS = 64;

/**
 * Byte offsets in each instance's memory. The SIMD kernel always runs four
 * lanes: when fewer inputs are real, the spare lanes read whatever follows
 * (hence the slack after `input` and `scratch`) and write their garbage CVs
 * past the real ones in `scratch`, never over anything still needed.
 */
export const LAYOUT = (() => {
  const iv = 0; // 32 bytes: the key words, the IV in hash mode
  const stack = 1024; // chaining-value stack, 32 bytes an entry; 54 entries cover 2^64 bytes
  const stackBytes = 64 * CV_BYTES;
  const scratch = stack + stackBytes; // chunk CVs of one subtree, reduced to its root in place
  const scratchBytes = SUBTREE_CHUNKS * CV_BYTES + 4 * BLOCK_BYTES; // + the spare lanes of the last group
  const input = Math.ceil((scratch + scratchBytes) / CHUNK_BYTES) * CHUNK_BYTES;
  const inputBytes = SUBTREE_CHUNKS * CHUNK_BYTES;
  const slack = 4 * CHUNK_BYTES; // spare lanes of a group of 1 chunk at the end of input read up to 3 chunks on
  const pages = Math.ceil((input + inputBytes + slack) / 65536);
  return { iv, stack, scratch, input, inputBytes, pages } as const;
})();

/** Exports of the generated module, as index.ts calls them. */
export interface Blake3Exports {
  readonly memory: { readonly buffer: ArrayBuffer };
  /** One compression (§3.3) of the 64-byte block at `block`; the 8-word output CV goes to `out` (may alias either input). */
  readonly compress: (cvIn: number, block: number, blockLen: number, counterLo: number, counterHi: number, flags: number, out: number) => void;
  /** CV of the subtree of `chunks` whole chunks (a power of two, aligned at `counter`) at `input`, written to `out`. */
  readonly hashSubtree: (input: number, chunks: number, counterLo: number, counterHi: number, scratch: number, out: number) => void;
}

/** §3.3: the state words (a, b, c, d) of each G call, four columns then four diagonals. */
const G_WORDS = [
  [0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15],
  [0, 5, 10, 15], [1, 6, 11, 12], [2, 7, 8, 13], [3, 4, 9, 14],
] as const;

/** Message word indices used by each round: the permutation applied r times. */
function roundSchedules(): number[][] {
  const rounds: number[][] = [];
  let words = Array.from({ length: 16 }, (_, i) => i);
  for (let r = 0; r < ROUNDS; r++) {
    rounds.push(words);
    const previous = words;
    words = MSG_PERMUTATION.map((from) => previous[from]!);
  }
  return rounds;
}

/** The three operations G needs, on whichever lane type the function works in. */
interface LaneOps {
  add(code: Code): void;
  xor(code: Code): void;
  /** Rotates the value on the stack right by `bits`, using `local` as its temporary. */
  rotr(code: Code, bits: 16 | 12 | 8 | 7, local: number): void;
}

const scalarOps: LaneOps = {
  add: (code) => void code.i32Add(),
  xor: (code) => void code.i32Xor(),
  rotr: (code, bits) => void code.i32Const(bits).i32Rotr(),
};

// Byte gathers for the rotations by whole bytes: output byte j of a
// little-endian word takes input byte (j + bits/8) mod 4 of the same word.
const ROTR16_BYTES = [2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13];
const ROTR8_BYTES = [1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12];

/** Four bytes, lowest first, as one little-endian i32 lane. */
function lanesOf(bytes: readonly number[]): [number, number, number, number] {
  const lane = (i: number): number => bytes[4 * i]! | (bytes[4 * i + 1]! << 8) | (bytes[4 * i + 2]! << 16) | (bytes[4 * i + 3]! << 24);
  return [lane(0), lane(1), lane(2), lane(3)];
}

/**
 * SIMD G operations. Rotations by 16 and 8 are i8x16.swizzle with the byte
 * pattern held in a local set once per call, not i8x16.shuffle: V8 on x64
 * lowers that shuffle to pshufb but rebuilds its mask from immediates at every
 * use (four more instructions), while a constant swizzle mask stays in a
 * register: one pshufb per rotation, 25% more throughput measured.
 * 12 and 7 have no byte pattern: (x >>> n) | (x << (32 - n)).
 */
function simdOps(rotr16Mask: number, rotr8Mask: number): LaneOps {
  return {
    add: (code) => void code.i32x4Add(),
    xor: (code) => void code.v128Xor(),
    rotr: (code, bits, local) => {
      if (bits === 16 || bits === 8) code.localGet(bits === 16 ? rotr16Mask : rotr8Mask).i8x16Swizzle();
      else code.localTee(local).i32Const(bits).i32x4ShrU().localGet(local).i32Const(32 - bits).i32x4Shl().v128Or();
    },
  };
}

/**
 * §3.3: seven rounds of G (§3.2) over state locals `v`, message word w in local `m[w]`.
 * The four G of a column (or diagonal) step are independent, so each of their
 * eight lines is emitted for all four before the next: V8 schedules little,
 * and this hands the CPU four independent chains (measured 10% faster).
 * Rounds differ only in which message local each G reads, so round 0 is
 * emitted once and copied six times with those 16 reads re-pointed: emitting
 * runs in cold JavaScript at start-up, where every call counts.
 */
function emitRounds(code: Code, ops: LaneOps, v: readonly number[], m: readonly number[]): void {
  const start = code.position;
  const messageReads: Array<{ at: number; slot: number }> = []; // slot: index into the round's schedule
  for (const first of [0, 4]) { // columns, then diagonals
    const gs = [0, 1, 2, 3].map((i) => {
      const [a, b, c, d] = G_WORDS[first + i]!;
      return { a: v[a]!, b: v[b]!, c: v[c]!, d: v[d]!, slot: 2 * (first + i) };
    });
    for (const half of [0, 1]) {
      const [rotD, rotB] = half === 0 ? ([16, 12] as const) : ([8, 7] as const);
      for (const g of gs) {
        code.localGet(g.a).localGet(g.b);
        ops.add(code);
        messageReads.push({ at: code.position, slot: g.slot + half });
        code.localGet(m[g.slot + half]!); // round 0 reads word slot: its schedule is the identity
        ops.add(code);
        code.localSet(g.a);
      }
      for (const g of gs) { code.localGet(g.d).localGet(g.a); ops.xor(code); ops.rotr(code, rotD, g.d); code.localSet(g.d); }
      for (const g of gs) { code.localGet(g.c).localGet(g.d); ops.add(code); code.localSet(g.c); }
      for (const g of gs) { code.localGet(g.b).localGet(g.c); ops.xor(code); ops.rotr(code, rotB, g.b); code.localSet(g.b); }
    }
  }
  const end = code.position;
  for (const schedule of roundSchedules().slice(1)) {
    const copy = code.repeat(start, end);
    for (const { at, slot } of messageReads) code.patchLocalIndex(copy + (at - start), m[schedule[slot]!]!);
  }
}

/** compress(cvIn, block, blockLen, counterLo, counterHi, flags, out): one scalar compression, first 8 output words. */
function emitCompress(): Code {
  const code = new Code(['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const [cvIn, block, blockLen, counterLo, counterHi, flags, out] = [0, 1, 2, 3, 4, 5, 6];
  const v = code.localsOf('i32', 16);
  const m = code.localsOf('i32', 16);
  // Everything is read before anything is written, so `out` may alias `cvIn` or `block`.
  for (let w = 0; w < 16; w++) code.localGet(block).i32Load(4 * w).localSet(m[w]!);
  for (let w = 0; w < 8; w++) code.localGet(cvIn).i32Load(4 * w).localSet(v[w]!);
  for (let w = 0; w < 4; w++) code.i32Const(IV[w]!).localSet(v[8 + w]!);
  code.localGet(counterLo).localSet(v[12]!).localGet(counterHi).localSet(v[13]!);
  code.localGet(blockLen).localSet(v[14]!).localGet(flags).localSet(v[15]!);
  emitRounds(code, scalarOps, v, m);
  // §3.3: the chaining value is the first half of the state XOR the second.
  for (let w = 0; w < 8; w++) code.localGet(out).localGet(v[w]!).localGet(v[8 + w]!).i32Xor().i32Store(4 * w);
  return code;
}

// 4x4 transpose of 32-bit words in two steps of interleaves, as shuffles V8
// lowers to punpck{l,h}{dq,qdq} on x64.
const INTERLEAVE_LOW_32: ShuffleLanes = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23];
const INTERLEAVE_HIGH_32: ShuffleLanes = [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31];
const INTERLEAVE_LOW_64: ShuffleLanes = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
const INTERLEAVE_HIGH_64: ShuffleLanes = [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31];

/** rows[i] lane j -> columns[j] lane i; `tmp` holds the half-way interleaves. */
function emitTranspose(code: Code, rows: readonly number[], columns: readonly number[], tmp: readonly number[]): void {
  const [r0, r1, r2, r3] = rows as [number, number, number, number];
  const [t0, t1, t2, t3] = tmp as [number, number, number, number];
  code.localGet(r0).localGet(r1).i8x16Shuffle(INTERLEAVE_LOW_32).localSet(t0); // r0[0] r1[0] r0[1] r1[1]
  code.localGet(r0).localGet(r1).i8x16Shuffle(INTERLEAVE_HIGH_32).localSet(t1); // r0[2] r1[2] r0[3] r1[3]
  code.localGet(r2).localGet(r3).i8x16Shuffle(INTERLEAVE_LOW_32).localSet(t2);
  code.localGet(r2).localGet(r3).i8x16Shuffle(INTERLEAVE_HIGH_32).localSet(t3);
  code.localGet(t0).localGet(t2).i8x16Shuffle(INTERLEAVE_LOW_64).localSet(columns[0]!); // r0[0] r1[0] r2[0] r3[0]
  code.localGet(t0).localGet(t2).i8x16Shuffle(INTERLEAVE_HIGH_64).localSet(columns[1]!);
  code.localGet(t1).localGet(t3).i8x16Shuffle(INTERLEAVE_LOW_64).localSet(columns[2]!);
  code.localGet(t1).localGet(t3).i8x16Shuffle(INTERLEAVE_HIGH_64).localSet(columns[3]!);
}

const splat4 = (word: number): [number, number, number, number] => [word, word, word, word];

/**
 * hashMany4(input, stride, blocks, counter, counterStep, flags, flagsStart, flagsEnd, out):
 * hashes four inputs of `blocks` 64-byte blocks each, input i at
 * input + i*stride with counter counter + i*counterStep, and writes the four
 * CVs (32 bytes each) to out. Chunks: stride 1024, 16 blocks, step 1, start
 * and end flags. Parents: stride 64, 1 block, counter 0, flags PARENT.
 * Every block is a full 64 bytes: partial blocks take the scalar path.
 */
function emitHashMany4(): Code {
  const code = new Code(['i32', 'i32', 'i32', 'i64', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const [input, stride, blocks, counter, counterStep, flags, flagsStart, flagsEnd, out] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const cv = code.localsOf('v128', 8);
  const v = code.localsOf('v128', 16);
  const m = code.localsOf('v128', 16);
  const rows = code.localsOf('v128', 4);
  const tmp = code.localsOf('v128', 4);
  const counterLo = code.local('v128');
  const counterHi = code.local('v128');
  const lanePtr = code.localsOf('i32', 4);
  const block = code.local('i32');
  const laneCounter = code.local('i64');
  const rotr16Mask = code.local('v128');
  const rotr8Mask = code.local('v128');

  // §3.1: t is 64 bits, low word then high word; each lane gets its own.
  code.localGet(counter).i32WrapI64().i32x4Splat().localSet(counterLo);
  code.localGet(counter).i64Const(32n).i64ShrU().i32WrapI64().i32x4Splat().localSet(counterHi);
  for (let lane = 1; lane < 4; lane++) {
    code.localGet(counter).localGet(counterStep).i32Const(lane).i32Mul().i64ExtendI32U().i64Add().localSet(laneCounter);
    code.localGet(counterLo).localGet(laneCounter).i32WrapI64().i32x4ReplaceLane(lane).localSet(counterLo);
    code.localGet(counterHi).localGet(laneCounter).i64Const(32n).i64ShrU().i32WrapI64().i32x4ReplaceLane(lane).localSet(counterHi);
  }
  code.v128ConstI32x4(lanesOf(ROTR16_BYTES)).localSet(rotr16Mask);
  code.v128ConstI32x4(lanesOf(ROTR8_BYTES)).localSet(rotr8Mask);
  for (let w = 0; w < 8; w++) code.v128ConstI32x4(splat4(IV[w]!)).localSet(cv[w]!); // hash mode: key = IV
  code.localGet(input).localSet(lanePtr[0]!);
  for (let lane = 1; lane < 4; lane++) code.localGet(lanePtr[lane - 1]!).localGet(stride).i32Add().localSet(lanePtr[lane]!);

  code.i32Const(0).localSet(block);
  code.loop();
  {
    // Load 16 bytes of each lane's block at a time and transpose, so m[w] holds word w of all four blocks.
    for (let quarter = 0; quarter < 4; quarter++) {
      for (let lane = 0; lane < 4; lane++) code.localGet(lanePtr[lane]!).v128Load(16 * quarter).localSet(rows[lane]!);
      emitTranspose(code, rows, m.slice(4 * quarter, 4 * quarter + 4), tmp);
    }
    for (let w = 0; w < 8; w++) code.localGet(cv[w]!).localSet(v[w]!);
    for (let w = 0; w < 4; w++) code.v128ConstI32x4(splat4(IV[w]!)).localSet(v[8 + w]!);
    code.localGet(counterLo).localSet(v[12]!).localGet(counterHi).localSet(v[13]!);
    code.v128ConstI32x4(splat4(BLOCK_BYTES)).localSet(v[14]!);
    // §4.2: CHUNK_START on a chunk's first block, CHUNK_END on its last.
    code.localGet(flags);
    code.localGet(flagsStart).i32Const(0).localGet(block).i32Eqz().select().i32Or();
    code.localGet(flagsEnd).i32Const(0).localGet(block).i32Const(1).i32Add().localGet(blocks).i32Eq().select().i32Or();
    code.i32x4Splat().localSet(v[15]!);
    emitRounds(code, simdOps(rotr16Mask, rotr8Mask), v, m);
    for (let w = 0; w < 8; w++) code.localGet(v[w]!).localGet(v[8 + w]!).v128Xor().localSet(cv[w]!);
    for (let lane = 0; lane < 4; lane++) code.localGet(lanePtr[lane]!).i32Const(BLOCK_BYTES).i32Add().localSet(lanePtr[lane]!);
    code.localGet(block).i32Const(1).i32Add().localTee(block).localGet(blocks).i32LtU().brIf(0);
  }
  code.end();

  // Transpose back: lane i's CV is words 0-3 from cv[0..3] and 4-7 from cv[4..7].
  emitTranspose(code, cv.slice(0, 4), rows, tmp);
  for (let lane = 0; lane < 4; lane++) code.localGet(out).localGet(rows[lane]!).v128Store(CV_BYTES * lane);
  emitTranspose(code, cv.slice(4, 8), rows, tmp);
  for (let lane = 0; lane < 4; lane++) code.localGet(out).localGet(rows[lane]!).v128Store(CV_BYTES * lane + 16);
  return code;
}

const HASH_MANY4 = 1; // function index, as listed in blake3ModuleBytes

/**
 * hashSubtree(input, chunks, counterLo, counterHi, scratch, out): all chunk
 * CVs of the subtree four at a time into scratch, then each tree level four
 * parents at a time, in place: group g reads parent blocks at 64*g.. and
 * writes CVs at 32*g.., never over a block a later group still has to read.
 * `chunks` must be a power of two and `counter` a multiple of it (§4.3.2:
 * left subtrees are complete, so such a run of chunks is one node's subtree).
 */
function emitHashSubtree(): Code {
  const code = new Code(['i32', 'i32', 'i32', 'i32', 'i32', 'i32']);
  const [input, chunks, counterLo, counterHi, scratch, out] = [0, 1, 2, 3, 4, 5];
  const counter = code.local('i64');
  const group = code.local('i32');
  const nodes = code.local('i32');
  code.localGet(counterLo).i64ExtendI32U().localGet(counterHi).i64ExtendI32U().i64Const(32n).i64Shl().i64Or().localSet(counter);

  code.i32Const(0).localSet(group);
  code.loop()
    .localGet(input).localGet(group).i32Const(Math.log2(CHUNK_BYTES)).i32Shl().i32Add()
    .i32Const(CHUNK_BYTES).i32Const(CHUNK_BYTES / BLOCK_BYTES)
    .localGet(counter).localGet(group).i64ExtendI32U().i64Add().i32Const(1)
    .i32Const(0).i32Const(CHUNK_START).i32Const(CHUNK_END)
    .localGet(scratch).localGet(group).i32Const(Math.log2(CV_BYTES)).i32Shl().i32Add()
    .call(HASH_MANY4)
    .localGet(group).i32Const(4).i32Add().localTee(group).localGet(chunks).i32LtU().brIf(0)
    .end();

  code.localGet(chunks).localSet(nodes);
  code.block().loop()
    .localGet(nodes).i32Const(1).i32LeU().brIf(1)
    .localGet(nodes).i32Const(1).i32ShrU().localSet(nodes)
    .i32Const(0).localSet(group)
    .loop()
    .localGet(scratch).localGet(group).i32Const(Math.log2(BLOCK_BYTES)).i32Shl().i32Add()
    .i32Const(BLOCK_BYTES).i32Const(1).i64Const(0n).i32Const(0)
    .i32Const(PARENT).i32Const(0).i32Const(0)
    .localGet(scratch).localGet(group).i32Const(Math.log2(CV_BYTES)).i32Shl().i32Add()
    .call(HASH_MANY4)
    .localGet(group).i32Const(4).i32Add().localTee(group).localGet(nodes).i32LtU().brIf(0)
    .end()
    .br(0)
    .end().end();

  code.localGet(out).localGet(scratch).v128Load(0).v128Store(0);
  code.localGet(out).localGet(scratch).v128Load(16).v128Store(16);
  return code;
}

/** The module's bytes; index.ts compiles them once per thread. */
export function blake3ModuleBytes(): Uint8Array<ArrayBuffer> {
  return encodeModule({
    functions: [
      { exportName: 'compress', results: [], code: emitCompress() },
      { results: [], code: emitHashMany4() }, // HASH_MANY4
      { exportName: 'hashSubtree', results: [], code: emitHashSubtree() },
    ],
    memoryPages: LAYOUT.pages,
    memoryExport: 'memory',
  });
}

/** (i32) -> i32 through i32x4.splat and extract_lane: validates only where SIMD does. */
export function simdProbeModuleBytes(): Uint8Array<ArrayBuffer> {
  const code = new Code(['i32']);
  code.localGet(0).i32x4Splat().i32x4ExtractLane(0);
  return encodeModule({ functions: [{ exportName: 'probe', results: ['i32'], code }], memoryPages: 0, memoryExport: 'memory' });
}
