/**
 * The syslog wire format every Portcullis source speaks: RFC 5424 messages,
 * framed by octet counting (RFC 6587 §3.4.1) on TCP or TLS (RFC 5425). The
 * kiosk's SIEM export and record forwarding, the agent's forwarding and the
 * central review's receiver share it. No I/O: strings and bytes in and out.
 *
 * A message to the central review carries one chain record: its seq, hash
 * and chain (the hash of the source's record 1) in the structured data, and
 * the record itself, byte for byte as it was hashed, as the MSG, so the
 * receiver can check the hash and the link to the record before it.
 */
import { displayText } from './names.ts';
import type { LogRecord } from './agent-log.ts';

/** SD-ID of Portcullis' structured data. 32473 is the documentation enterprise number (RFC 5612); set your own. */
export const DEFAULT_SD_ID = 'portcullis@32473';
export const FACILITY_LOG_AUDIT = 13; // RFC 5424 table 1: "log audit"
export const SEVERITY = { alert: 1, critical: 2, error: 3, warning: 4, notice: 5, info: 6 } as const;
/** bytes: the largest message a receiver takes; an agent record is at most 256 KiB, a kiosk row far less. */
export const MAX_MESSAGE_BYTES = 512 * 1024;

export interface SyslogMessage {
  readonly time: string; // RFC 3339 UTC
  readonly hostname: string;
  readonly appName: string;
  readonly msgId: string;
  readonly severity: number;
  readonly params: Readonly<Record<string, string | number | null | undefined>>;
  readonly text: string;
}

export interface FormatOptions {
  readonly facility?: number; // default 13 (log audit)
  readonly sdId?: string;
}

/** PRINTUSASCII without space, at most `max` characters (RFC 5424 §6.2: HOSTNAME, APP-NAME, MSGID). */
function header(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean.length === 0 ? '-' : clean;
}

/** PARAM-VALUE escaping (RFC 5424 §6.3.3): '"', '\' and ']' take a backslash. */
function paramValue(value: string): string {
  return displayText(value).replace(/["\\\]]/g, (c) => `\\${c}`);
}

function head(message: Omit<SyslogMessage, 'text'>, options: FormatOptions): string {
  const pri = (options.facility ?? FACILITY_LOG_AUDIT) * 8 + message.severity;
  const params = Object.entries(message.params)
    .filter((entry): entry is [string, string | number] => entry[1] !== null && entry[1] !== undefined)
    .map(([name, value]) => ` ${header(name.replace(/[= \]"]/g, '_'), 32)}="${paramValue(String(value))}"`)
    .join('');
  const sd = `[${options.sdId ?? DEFAULT_SD_ID}${params}]`;
  return `<${pri}>1 ${message.time} ${header(message.hostname, 255)} ${header(message.appName, 48)} - ${header(message.msgId, 32)} ${sd}`;
}

/** One RFC 5424 message: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG; the text made display-safe. */
export function formatSyslog(message: SyslogMessage, options: FormatOptions = {}): string {
  return `${head(message, options)} ${displayText(message.text)}`;
}

/**
 * A message whose MSG is `body` exactly (no BOM: RFC 5424 §6.4 lets MSG be
 * any octets then): a chain record must reach the receiver as it was hashed.
 */
export function formatSyslogRecord(message: Omit<SyslogMessage, 'text'>, body: Uint8Array, options: FormatOptions = {}): Buffer {
  return Buffer.concat([Buffer.from(`${head(message, options)} `, 'utf8'), body]);
}

/** RFC 6587 §3.4.1 octet counting: MSG-LEN SP SYSLOG-MSG, the length in bytes. */
export function frameOctetCounting(message: string | Uint8Array): Buffer {
  const body = typeof message === 'string' ? Buffer.from(message, 'utf8') : Buffer.from(message);
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

export type FrameProblem = 'FRAME_INVALID' | 'FRAME_OVERSIZED';

/**
 * Splits a TCP stream into octet-counted frames. A length that is not
 * 1 to 9 digits followed by a space, or a frame over `maxBytes`, is a
 * problem: the stream cannot be resynchronised after it, so the reader
 * stops (the receiver drops the connection without acknowledging it).
 */
export class OctetFrameReader {
  private buffered: Buffer = Buffer.alloc(0);
  private problem: { code: FrameProblem; detail: string } | null = null;
  private readonly maxBytes: number;

  constructor(maxBytes = MAX_MESSAGE_BYTES) {
    this.maxBytes = maxBytes;
  }

  get failed(): { code: FrameProblem; detail: string } | null {
    return this.problem;
  }

  /** Bytes read but not yet a whole frame (at the end of a stream: a cut-off frame). */
  get pendingBytes(): number {
    return this.buffered.length;
  }

  /** Adds bytes; returns the frames they completed. After a problem it returns nothing more. */
  push(chunk: Uint8Array): Buffer[] {
    if (this.problem) return [];
    this.buffered = this.buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffered, chunk]);
    const frames: Buffer[] = [];
    for (;;) {
      const space = this.buffered.indexOf(0x20);
      const digits = space === -1 ? this.buffered.length : space;
      if (space === -1 && digits <= 9 && /^[0-9]*$/.test(this.buffered.toString('latin1'))) break; // the length is still arriving
      const text = this.buffered.subarray(0, digits).toString('latin1');
      if (!/^[1-9][0-9]{0,8}$/.test(text)) {
        this.problem = { code: 'FRAME_INVALID', detail: 'expected an octet count (RFC 6587 §3.4.1) before the message' };
        return frames;
      }
      const length = Number(text);
      if (length > this.maxBytes) {
        this.problem = { code: 'FRAME_OVERSIZED', detail: `a message of ${length} bytes exceeds ${this.maxBytes}` };
        return frames;
      }
      if (this.buffered.length < space + 1 + length) break;
      frames.push(this.buffered.subarray(space + 1, space + 1 + length));
      this.buffered = this.buffered.subarray(space + 1 + length);
    }
    return frames;
  }
}

export interface ParsedSyslog {
  readonly severity: number;
  readonly facility: number;
  readonly time: string;
  readonly hostname: string;
  readonly appName: string;
  readonly msgId: string;
  /** The parameters of each SD element, by SD-ID; a repeated SD-ID or parameter is refused. */
  readonly sd: ReadonlyMap<string, Readonly<Record<string, string>>>;
  readonly body: Buffer;
}

const NAME = /^[\x21-\x7e]{1,255}$/;
const SD_NAME = /^[!#-<>-\\^-~]{1,32}$/; // PRINTUSASCII except '=', ' ', ']', '"' (RFC 5424 §6.3.2)
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/;

/** Parses one RFC 5424 message; returns what is wrong with it as text instead of throwing. */
export function parseSyslog(frame: Buffer): ParsedSyslog | string {
  let at = 0;
  const token = (): string | null => {
    const end = frame.indexOf(0x20, at);
    if (end === -1) return null;
    const value = frame.subarray(at, end).toString('latin1');
    at = end + 1;
    return value;
  };
  const first = token();
  const pri = first === null ? null : /^<([0-9]{1,3})>1$/.exec(first);
  if (!pri || Number(pri[1]) > 191) return 'not an RFC 5424 message (expected <PRI>1 at the start)';
  const time = token();
  if (time === null || !RFC3339.test(time) || Number.isNaN(Date.parse(time))) return 'TIMESTAMP: expected an RFC 3339 time';
  const fields = [token(), token(), token(), token()];
  if (fields.some((f) => f === null || !NAME.test(f))) return 'HOSTNAME, APP-NAME, PROCID or MSGID missing or not printable ASCII';
  const [hostname, appName, , msgId] = fields as [string, string, string, string];
  const sd = new Map<string, Record<string, string>>();
  if (frame[at] === 0x2d /* - */) {
    at += 1;
  } else {
    while (frame[at] === 0x5b /* [ */) {
      at += 1;
      const idEnd = frame.findIndex((b, i) => i >= at && (b === 0x20 || b === 0x5d));
      if (idEnd === -1) return 'STRUCTURED-DATA: an element is not closed';
      const id = frame.subarray(at, idEnd).toString('latin1');
      if (!/^[!#-<>-\\^-~]{1,32}$/.test(id)) return 'STRUCTURED-DATA: a malformed SD-ID';
      if (sd.has(id)) return `STRUCTURED-DATA: SD-ID ${id} given twice`;
      const params: Record<string, string> = Object.create(null) as Record<string, string>;
      at = idEnd;
      while (frame[at] === 0x20) {
        at += 1;
        const eq = frame.indexOf(0x3d /* = */, at);
        if (eq === -1) return 'STRUCTURED-DATA: a parameter without a value';
        const name = frame.subarray(at, eq).toString('latin1');
        if (!SD_NAME.test(name)) return 'STRUCTURED-DATA: a malformed parameter name';
        if (frame[eq + 1] !== 0x22) return 'STRUCTURED-DATA: a parameter value must be quoted';
        const bytes: number[] = [];
        let i = eq + 2;
        for (; i < frame.length && frame[i] !== 0x22; i++) {
          if (frame[i] === 0x5c && i + 1 < frame.length && [0x22, 0x5c, 0x5d].includes(frame[i + 1]!)) i++;
          bytes.push(frame[i]!);
        }
        if (i >= frame.length) return 'STRUCTURED-DATA: a parameter value is not closed';
        if (Object.hasOwn(params, name)) return `STRUCTURED-DATA: parameter ${name} given twice`;
        params[name] = Buffer.from(bytes).toString('utf8');
        at = i + 1;
      }
      if (frame[at] !== 0x5d) return 'STRUCTURED-DATA: an element is not closed';
      at += 1;
      sd.set(id, params);
    }
    if (sd.size === 0) return 'STRUCTURED-DATA: expected - or [';
  }
  if (at < frame.length && frame[at] !== 0x20) return 'expected a space before MSG';
  const body = at < frame.length ? frame.subarray(at + 1) : Buffer.alloc(0);
  const p = Number(pri[1]);
  return { facility: p >> 3, severity: p & 7, time, hostname, appName, msgId, sd, body };
}

const REFUSED = new Set(['refused', 'changed', 'failed']);

/**
 * The MSGID of an agent record, from what the record says happened: a
 * trust change is TRUST_CHANGED, a file refused at the HMI IMPORT_REFUSED,
 * a drive the agent would not read DRIVE_REFUSED. Events this version does
 * not know are AGENT_EVENT.
 */
export function agentMessageId(r: Pick<LogRecord, 'event' | 'outcome'>): string {
  const byEvent: Record<string, string> = {
    'import.finished': 'IMPORT_DONE',
    'file.imported': 'FILE_IMPORTED',
    'file.refused': 'IMPORT_REFUSED',
    'file.skipped': 'FILE_SKIPPED',
    'file.checked': 'FILE_CHECKED',
    'trust.key-added': 'TRUST_CHANGED',
    'trust.key-revoked': 'TRUST_CHANGED',
    'trust.policy-changed': 'TRUST_CHANGED',
    'trust.change-failed': 'TRUST_CHANGE_FAILED',
    'trust.updated': 'TRUST_CHANGED', // a signed trust update applied (or found already applied)
    'trust.update-root-pinned': 'TRUST_CHANGED',
    'agent.storage-policy': 'STORAGE_POLICY',
    'agent.started': 'AGENT_STARTED',
    'agent.stopped': 'AGENT_STOPPED',
    'drive.arrived': 'DRIVE_ARRIVED',
    'drive.removed': 'DRIVE_REMOVED',
    'watch.error': 'AGENT_ERROR',
  };
  if (r.event === 'drive.checked') return r.outcome === 'allowed' ? 'DRIVE_CHECKED' : 'DRIVE_REFUSED';
  return byEvent[r.event] ?? (r.event.startsWith('file.') && REFUSED.has(r.outcome) ? 'IMPORT_REFUSED' : 'AGENT_EVENT');
}

/** The severity of an agent record: failures are errors, refusals warnings, trust changes notices. */
export function agentSeverity(r: Pick<LogRecord, 'event' | 'outcome'>): number {
  if (r.outcome === 'failed') return SEVERITY.error;
  if (r.outcome === 'refused') return SEVERITY.warning;
  if (r.outcome === 'changed') return r.event.startsWith('trust.') ? SEVERITY.notice : SEVERITY.warning;
  return SEVERITY.info;
}
