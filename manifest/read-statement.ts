/**
 * The one-pass reader of a manifest payload: docs/manifest.md §6 steps 7 to
 * 10 over the payload's bytes, without parsing it into a JSON tree first.
 *
 * A canonical statement has exactly one serialization: every object of §4 is
 * closed with all its members required, so RFC 8785 fixes their order, and
 * the bytes between values are fixed too. The reader walks that layout byte
 * by byte: every structural byte must be the canonical one, every string
 * escaped as RFC 8785 escapes it (and valid UTF-8), every number a canonical
 * non-negative safe integer, every value checked by the very rule the schema
 * applies to it (statement.ts LEAF_RULES), names by pathProblems, and the
 * subjects' names by CollisionCheck (findCollisions' rules). What it builds is the checked statement
 * itself, with the key order checkStatement gives it.
 *
 * It only ever accepts: anything else, however small the difference, makes it
 * answer null, and the verifier then runs the full steps (JSON.parse,
 * canonicalize and compare, checkStatement), which decide the code and the
 * message exactly as they always did. Accepting means both would accept the
 * same statement; manifest/read-statement.test.ts checks that on mutated
 * payloads against the full steps.
 */
import { CollisionCheck } from './names.ts';
import { accepts, type Schema } from './schema.ts';
import { LEAF_RULES, LIMITS, PREDICATE_TYPE, STATEMENT_TYPE, type Predicate, type Statement, type Subject } from './statement.ts';

/** Thrown inside the reader to give up (one object, made once: no stack is captured per throw); never leaves this module. */
const DECLINE = new Error('not the canonical statement layout');

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The bytes of a fixed piece of the layout. */
function lit(text: string): Uint8Array {
  return utf8.encode(text);
}

const L = {
  head: lit(`{"_type":${JSON.stringify(STATEMENT_TYPE)},"predicate":{"allowlist":`),
  allowlistDigest: lit('{"digest":'),
  allowlistVersion: lit(',"version":'),
  blocked: lit(',"blocked":['),
  blockedPath: lit('{"path":'),
  blockedReasons: lit(',"reasons":['),
  engines: lit(',"engines":{"clamav":'),
  clamavTime: lit('{"databaseTime":'),
  clamavDbVersion: lit(',"databaseVersion":'),
  clamavVersion: lit(',"version":'),
  yara: lit(',"yara":'),
  yaraEngine: lit('{"engine":'),
  yaraRuleCount: lit(',"ruleCount":'),
  yaraDigest: lit(',"ruleSetDigest":'),
  expiresAt: lit('},"expiresAt":'),
  issuedAt: lit(',"issuedAt":'),
  kiosk: lit(',"kiosk":{"id":'),
  kioskKeyId: lit(',"keyId":'),
  media: lit('},"media":{"capacity":'),
  filesystem: lit(',"filesystem":'),
  label: lit(',"label":'),
  usb: lit(',"usb":'),
  usbProduct: lit('{"productId":'),
  usbSerial: lit(',"serial":'),
  usbVendor: lit(',"vendorId":'),
  volumeId: lit(',"volumeId":'),
  operator: lit('},"operator":'),
  operatorId: lit('{"id":'),
  policy: lit(',"policy":{"digest":'),
  policyId: lit(',"id":'),
  scan: lit('},"scan":{"byteCount":'),
  fileCount: lit(',"fileCount":'),
  scanId: lit(',"id":'),
  subjects: lit(`}},"predicateType":${JSON.stringify(PREDICATE_TYPE)},"subject":[`),
  subjectHead: lit('{"annotations":{"size":'),
  blake3: lit('},"digest":{"blake3":"'),
  sha256: lit(',"sha256":"'),
  name: lit('},"name":'),
  null: lit('null'),
} as const;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** What RFC 8785 (JSON.stringify) writes after a backslash, for the characters it escapes so; \u00XX for the other controls. */
const SHORT_ESCAPES = new Map<number, string>([[0x22, '"'], [0x5c, '\\'], [0x62, '\b'], [0x66, '\f'], [0x6e, '\n'], [0x72, '\r'], [0x74, '\t']]);
const HAS_SHORT_ESCAPE = new Set([0x08, 0x09, 0x0a, 0x0c, 0x0d]);

class Reader {
  readonly #b: Uint8Array;
  readonly #text: Buffer; // the same bytes, for latin1 slices
  #pos = 0;
  /** How many subjects the statement lists (kept or not). */
  subjectCount = 0;

  constructor(bytes: Uint8Array) {
    this.#b = bytes;
    this.#text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  get atEnd(): boolean {
    return this.#pos === this.#b.length;
  }

  /** Consumes exactly these bytes. */
  expect(piece: Uint8Array): void {
    const b = this.#b;
    const at = this.#pos;
    if (at + piece.length > b.length) throw DECLINE;
    for (let i = 0; i < piece.length; i++) if (b[at + i] !== piece[i]) throw DECLINE;
    this.#pos = at + piece.length;
  }

  /** Consumes one byte when it is `byte`. */
  take(byte: number): boolean {
    if (this.#b[this.#pos] !== byte) return false;
    this.#pos++;
    return true;
  }

  /** Consumes `null` when it comes next. */
  takeNull(): boolean {
    if (this.#b[this.#pos] !== 0x6e) return false;
    this.expect(L.null);
    return true;
  }

  /** A canonical non-negative safe integer: 0, or a digit 1-9 and at most 15 more digits, at most 2^53 - 1. */
  integer(): number {
    const b = this.#b;
    let at = this.#pos;
    const first = b[at];
    if (first === 0x30) {
      this.#pos = at + 1;
      if (isDigit(b[this.#pos])) throw DECLINE;
      return 0;
    }
    if (first === undefined || first < 0x31 || first > 0x39) throw DECLINE;
    let value = 0;
    const start = at;
    while (isDigit(b[at])) value = value * 10 + (b[at++]! - 0x30);
    if (at - start > 16 || !Number.isSafeInteger(value)) throw DECLINE;
    this.#pos = at;
    return value;
  }

  /** Exactly `length` lowercase hex digits, then the closing quote (the opening one is part of the layout); the digits as a string when `keep`. */
  hex(length: number, keep = true): string {
    const b = this.#b;
    const start = this.#pos;
    const end = start + length;
    if (end >= b.length) throw DECLINE;
    for (let i = start; i < end; i++) {
      const c = b[i]!;
      if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) throw DECLINE;
    }
    if (b[end] !== QUOTE) throw DECLINE;
    this.#pos = end + 1;
    return keep ? this.#text.toString('latin1', start, end) : '';
  }

  /**
   * A string as RFC 8785 writes it: every character literal except `"`, `\`
   * and those below U+0020; those escaped, \b \t \n \f \r by their short
   * forms and the other controls as \u00xx (lowercase hex); valid UTF-8.
   */
  string(): string {
    const b = this.#b;
    if (b[this.#pos] !== QUOTE) throw DECLINE;
    const start = this.#pos + 1;
    let i = start;
    for (;;) {
      const c = b[i];
      if (c === undefined) throw DECLINE;
      if (c === QUOTE) {
        this.#pos = i + 1;
        return this.#text.toString('latin1', start, i);
      }
      if (c < 0x20 || c === BACKSLASH || c >= 0x80) break;
      i++;
    }
    return this.#stringWithEscapes(start);
  }

  #stringWithEscapes(start: number): string {
    const b = this.#b;
    let out = '';
    let run = start; // start of the bytes not yet decoded
    let i = start;
    for (;;) {
      const c = b[i];
      if (c === undefined || c < 0x20) throw DECLINE;
      if (c === QUOTE || c === BACKSLASH) {
        if (i > run) out += decodeUtf8(b, run, i);
        if (c === QUOTE) {
          this.#pos = i + 1;
          return out;
        }
        const e = b[i + 1];
        const short = e === undefined ? undefined : SHORT_ESCAPES.get(e);
        if (short !== undefined) {
          out += short;
          i += 2;
        } else if (e === 0x75 && b[i + 2] === 0x30 && b[i + 3] === 0x30) {
          const hi = b[i + 4];
          const lo = b[i + 5];
          if ((hi !== 0x30 && hi !== 0x31) || lo === undefined || !((lo >= 0x30 && lo <= 0x39) || (lo >= 0x61 && lo <= 0x66))) throw DECLINE;
          const code = (hi - 0x30) * 16 + (lo <= 0x39 ? lo - 0x30 : lo - 0x57);
          if (HAS_SHORT_ESCAPE.has(code)) throw DECLINE;
          out += String.fromCharCode(code);
          i += 6;
        } else {
          throw DECLINE;
        }
        run = i;
        continue;
      }
      i++;
    }
  }
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function decodeUtf8(b: Uint8Array, start: number, end: number): string {
  try {
    return strictUtf8.decode(b.subarray(start, end));
  } catch {
    throw DECLINE;
  }
}

/** A value the leaf rule accepts, else the reader gives up. */
function checked<T>(rule: Schema<T>, value: T): T {
  if (!accepts(rule, value)) throw DECLINE;
  return value;
}

function nullableString(r: Reader, rule: Schema<string>): string | null {
  return r.takeNull() ? null : checked(rule, r.string());
}

const R = LEAF_RULES;

function readBlocked(r: Reader): Predicate['blocked'] {
  const blocked: Predicate['blocked'] = [];
  if (r.take(0x5d)) return blocked;
  do {
    if (blocked.length === LIMITS.maxBlocked) throw DECLINE;
    r.expect(L.blockedPath);
    const path = checked(R.blockedPath, r.string());
    r.expect(L.blockedReasons);
    const reasons: string[] = [];
    do {
      if (reasons.length === 16) throw DECLINE;
      reasons.push(checked(R.reasonCode, r.string()));
    } while (r.take(0x2c));
    if (!r.take(0x5d) || !r.take(0x7d)) throw DECLINE;
    blocked.push({ path, reasons });
  } while (r.take(0x2c));
  if (!r.take(0x5d)) throw DECLINE;
  return blocked;
}

function readSubjects(r: Reader, keep: boolean, collisions: CollisionCheck): Subject[] {
  const subjects: Subject[] = [];
  let count = 0;
  do {
    if (count++ === LIMITS.maxSubjects) throw DECLINE;
    r.expect(L.subjectHead);
    const size = r.integer();
    r.expect(L.blake3);
    const blake3 = r.hex(64, keep);
    r.expect(L.sha256);
    const sha256 = r.hex(64, keep);
    r.expect(L.name);
    const name = checked(R.subjectName, r.string());
    if (!r.take(0x7d)) throw DECLINE;
    if (collisions.collides(name)) throw DECLINE;
    if (keep) subjects.push({ name, digest: { blake3, sha256 }, annotations: { size } });
  } while (r.take(0x2c));
  if (!r.take(0x5d) || !r.take(0x7d)) throw DECLINE;
  r.subjectCount = count;
  return subjects;
}

function read(r: Reader, keepSubjects: boolean): Statement {
  r.expect(L.head);
  let allowlist: Predicate['allowlist'] = null;
  if (!r.takeNull()) {
    r.expect(L.allowlistDigest);
    const digest = checked(R.prefixedSha256, r.string());
    r.expect(L.allowlistVersion);
    const version = checked(R.text64, r.string());
    if (!r.take(0x7d)) throw DECLINE;
    allowlist = { version, digest };
  }
  r.expect(L.blocked);
  const blocked = readBlocked(r);
  r.expect(L.engines);
  let clamav: Predicate['engines']['clamav'] = null;
  if (!r.takeNull()) {
    r.expect(L.clamavTime);
    const databaseTime = nullableString(r, R.timestamp);
    r.expect(L.clamavDbVersion);
    const databaseVersion = nullableString(r, R.text64);
    r.expect(L.clamavVersion);
    const version = checked(R.text64, r.string());
    if (!r.take(0x7d)) throw DECLINE;
    clamav = { version, databaseVersion, databaseTime };
  }
  r.expect(L.yara);
  let yara: Predicate['engines']['yara'] = null;
  if (!r.takeNull()) {
    r.expect(L.yaraEngine);
    const engine = checked(R.text64, r.string());
    r.expect(L.yaraRuleCount);
    const ruleCount = r.integer();
    r.expect(L.yaraDigest);
    const ruleSetDigest = checked(R.prefixedSha256, r.string());
    if (!r.take(0x7d)) throw DECLINE;
    yara = { engine, ruleSetDigest, ruleCount };
  }
  r.expect(L.expiresAt);
  const expiresAt = checked(R.timestamp, r.string());
  r.expect(L.issuedAt);
  const issuedAt = checked(R.timestamp, r.string());
  r.expect(L.kiosk);
  const kioskId = checked(R.identifier, r.string());
  r.expect(L.kioskKeyId);
  const keyId = checked(R.keyId, r.string());
  r.expect(L.media);
  const capacity = r.takeNull() ? null : r.integer();
  r.expect(L.filesystem);
  const filesystem = checked(R.filesystemName, r.string());
  r.expect(L.label);
  const label = nullableString(r, R.text64OrEmpty);
  r.expect(L.usb);
  let usb: Predicate['media']['usb'] = null;
  if (!r.takeNull()) {
    r.expect(L.usbProduct);
    const productId = checked(R.usbId, r.string());
    r.expect(L.usbSerial);
    const serial = nullableString(r, R.text128);
    r.expect(L.usbVendor);
    const vendorId = checked(R.usbId, r.string());
    if (!r.take(0x7d)) throw DECLINE;
    usb = { vendorId, productId, serial };
  }
  r.expect(L.volumeId);
  const volumeId = nullableString(r, R.text64);
  r.expect(L.operator);
  let operator: Predicate['operator'] = null;
  if (!r.takeNull()) {
    r.expect(L.operatorId);
    operator = { id: checked(R.text64, r.string()) };
    if (!r.take(0x7d)) throw DECLINE;
  }
  r.expect(L.policy);
  const policyDigest = checked(R.prefixedSha256, r.string());
  r.expect(L.policyId);
  const policyId = checked(R.identifier, r.string());
  r.expect(L.scan);
  const byteCount = r.integer();
  r.expect(L.fileCount);
  const fileCount = r.integer();
  r.expect(L.scanId);
  const scanId = checked(R.identifier, r.string());
  r.expect(L.subjects);
  const subject = readSubjects(r, keepSubjects, new CollisionCheck());
  if (!r.atEnd) throw DECLINE;
  // Member order as checkStatement builds it (the schema's), so the result serializes alike wherever it is logged.
  return {
    _type: STATEMENT_TYPE,
    subject,
    predicateType: PREDICATE_TYPE,
    predicate: {
      kiosk: { id: kioskId, keyId },
      operator,
      issuedAt,
      expiresAt,
      scan: { id: scanId, fileCount, byteCount },
      media: { filesystem, volumeId, label, capacity, usb },
      engines: { clamav, yara },
      allowlist,
      policy: { id: policyId, digest: policyDigest },
      blocked,
    },
  };
}

/**
 * The checked statement when the payload is a canonical statement that
 * passes every rule of §4 and §5 and the time window's shape (§6 steps 7-10);
 * null otherwise, for the full steps to name the problem.
 */
export function readCanonicalStatement(payload: Uint8Array): Statement | null {
  return readWith(payload, true)?.statement ?? null;
}

/** What a check needs that does not keep the subjects: the predicate and how many subjects there are. */
export interface StatementSummary {
  readonly predicate: Predicate;
  readonly subjectCount: number;
}

/** readCanonicalStatement's checks, every subject included, keeping none of them: memory does not grow with the subjects. */
export function checkCanonicalStatement(payload: Uint8Array): StatementSummary | null {
  const read = readWith(payload, false);
  return read === null ? null : { predicate: read.statement.predicate, subjectCount: read.subjectCount };
}

function readWith(payload: Uint8Array, keepSubjects: boolean): { statement: Statement; subjectCount: number } | null {
  const r = new Reader(payload);
  let statement: Statement;
  try {
    statement = read(r, keepSubjects);
  } catch (error) {
    if (error === DECLINE) return null;
    throw error;
  }
  const issued = Date.parse(statement.predicate.issuedAt);
  const expires = Date.parse(statement.predicate.expiresAt);
  if (expires <= issued || (expires - issued) / 1000 > LIMITS.maxValiditySeconds) return null;
  return { statement, subjectCount: r.subjectCount };
}
