/**
 * The station's screen logic as a pure state machine: `reduce(state, event)`.
 * Events come from the device source (inserted, removed), the keyboard and
 * the scan (progress, finished, failed). The controller (station.ts) starts
 * and aborts scans by looking at the state; nothing here does I/O.
 *
 * One drive at a time: a second drive waits in `queue` and is taken when the
 * first one is removed. A drive removed mid-scan approves nothing.
 */
import type { Decision, DriveReason, DriveVerdict, ReasonCode } from './decide.ts';
import type { ScanProgress } from './ports.ts';
import { shownText } from './device.ts';
import { READY, type ServiceStatus } from './self-check.ts';
import { parseYaraMatch } from './yara-match.ts';

export interface EngineStatus {
  /** e.g. "test database" or "daily 27301". */
  readonly clamavDatabase: string | null;
  /** RFC 3339 time the ClamAV database was built; null when unknown. */
  readonly clamavDatabaseTime: string | null;
  /** e.g. "sha256:3f2a... (12 rules)"; null when unknown. */
  readonly ruleSet: string | null;
  readonly note: string | null;
}

export interface StationDrive {
  readonly id: string;
  /** One line naming the device, already display-safe. */
  readonly label: string;
  /** Set when the device or its volume was refused before any scan. */
  readonly refusal: { readonly code: string; readonly message: string } | null;
}

export interface BlockedFile {
  readonly display: string;
  readonly codes: readonly ReasonCode[];
  /** For a YARA match: the first matching rule's description (or its name when it has none), for the technician. */
  readonly yara?: string;
}

export interface ResultView {
  readonly verdict: DriveVerdict;
  /** The engines failed: the drive was not checked (shown as such, never as clean). */
  readonly engineFailure: DriveReason | null;
  readonly driveReasons: readonly DriveReason[];
  /** The first blocked files, in display order (at most 100); `blockedCount` counts them all. */
  readonly blocked: readonly BlockedFile[];
  readonly blockedCount: number;
  readonly passing: number;
  readonly total: number;
  readonly expiresAt: string | null; // RFC 3339
  /** A signed approval was written onto the drive (false on a report-only station, and for a rejected drive). */
  readonly signed: boolean;
  /** The scan's id in the audit log (null when the scan never started); what staff look up. */
  readonly scanId: string | null;
  /** Who scanned the drive (the badge), or null when the policy asks for none. */
  readonly operatorId: string | null;
}

export interface ProgressView extends ScanProgress {
  readonly bytesPerSecond: number | null;
  readonly secondsLeft: number | null;
}

export type Screen =
  | { readonly kind: 'idle' }
  | { readonly kind: 'operator'; readonly drive: StationDrive; readonly badge: string }
  | { readonly kind: 'scanning'; readonly drive: StationDrive; readonly operatorId: string | null; readonly progress: ProgressView | null; readonly scanStartedAt: number | null }
  | { readonly kind: 'result'; readonly drive: StationDrive; readonly result: ResultView }
  | { readonly kind: 'refused'; readonly drive: StationDrive }
  | { readonly kind: 'removed-mid-scan'; readonly drive: StationDrive };

export interface StationState {
  readonly screen: Screen;
  readonly queue: readonly StationDrive[];
  readonly engines: EngineStatus;
  readonly operatorRequired: boolean;
  /** The self-check's verdict: only a station that is ready takes a drive (core/self-check.ts). */
  readonly service: ServiceStatus;
}

export interface KeyPress {
  readonly input: string;
  readonly return?: boolean;
  readonly backspace?: boolean;
  readonly delete?: boolean;
  readonly escape?: boolean;
}

export type StationEvent =
  | { readonly type: 'inserted'; readonly drive: StationDrive }
  | { readonly type: 'removed'; readonly id: string }
  | { readonly type: 'key'; readonly key: KeyPress }
  | { readonly type: 'progress'; readonly id: string; readonly progress: ScanProgress; readonly at: number /* ms */ }
  | { readonly type: 'finished'; readonly id: string; readonly result: ResultView }
  | { readonly type: 'failed'; readonly id: string; readonly reason: DriveReason }
  | { readonly type: 'engines'; readonly engines: EngineStatus }
  | { readonly type: 'service'; readonly service: ServiceStatus };

export const BADGE_MAX = 32; // characters
const BADGE_CHAR = /^[A-Za-z0-9._-]$/;

export function initialState(engines: EngineStatus, operatorRequired: boolean, service: ServiceStatus = READY): StationState {
  return { screen: { kind: 'idle' }, queue: [], engines, operatorRequired, service };
}

/** The drive the screen is about, if any. */
export function currentDrive(screen: Screen): StationDrive | null {
  return screen.kind === 'idle' ? null : screen.drive;
}

function begin(state: StationState, drive: StationDrive): Screen {
  if (drive.refusal) return { kind: 'refused', drive };
  if (state.operatorRequired) return { kind: 'operator', drive, badge: '' };
  return { kind: 'scanning', drive, operatorId: null, progress: null, scanStartedAt: null };
}

/** The next waiting drive, or idle. A station that is not ready keeps its drives waiting, unread. */
function next(state: StationState): StationState {
  const [first, ...rest] = state.queue;
  if (!first || state.service.state !== 'ready') return { ...state, screen: { kind: 'idle' } };
  return { ...state, queue: rest, screen: begin(state, first) };
}

function progressView(previous: ProgressView | null, p: ScanProgress, startedAt: number | null, at: number): ProgressView {
  const seconds = startedAt === null ? 0 : (at - startedAt) / 1000;
  const rate = seconds >= 0.5 && p.bytesDone > 0 ? p.bytesDone / seconds : previous?.bytesPerSecond ?? null;
  const left = rate && rate > 0 ? Math.max(0, Math.ceil((p.bytesTotal - p.bytesDone) / rate)) : null;
  return { ...p, current: p.current === null ? null : shownText(p.current), bytesPerSecond: rate, secondsLeft: left };
}

function onKey(state: StationState, key: KeyPress): StationState {
  const screen = state.screen;
  if (screen.kind === 'operator') {
    if (key.return) {
      if (screen.badge.length === 0) return state;
      return { ...state, screen: { kind: 'scanning', drive: screen.drive, operatorId: screen.badge, progress: null, scanStartedAt: null } };
    }
    if (key.backspace || key.delete) return { ...state, screen: { ...screen, badge: screen.badge.slice(0, -1) } };
    if (key.escape) return { ...state, screen: { ...screen, badge: '' } };
    // Badge readers type like a keyboard, often the whole id and Enter in one burst ("1234\r"):
    // the id characters before the first CR or LF are typed, and the line end is Enter. A burst
    // holding any other control character (an escape sequence) is dropped whole.
    const end = key.input.search(/[\r\n]/);
    const text = end === -1 ? key.input : key.input.slice(0, end);
    if (/[\u0000-\u001f\u007f]/.test(text)) return state;
    const typed = [...text].filter((c) => BADGE_CHAR.test(c)).join('');
    const badge = (screen.badge + typed).slice(0, BADGE_MAX);
    if (end !== -1 && badge.length > 0) return { ...state, screen: { kind: 'scanning', drive: screen.drive, operatorId: badge, progress: null, scanStartedAt: null } };
    if (typed.length === 0) return state;
    return { ...state, screen: { ...screen, badge } };
  }
  // A drive that was pulled mid-scan is gone: Enter dismisses its message.
  if (screen.kind === 'removed-mid-scan' && key.return) return next(state);
  return state;
}

export function reduce(state: StationState, event: StationEvent): StationState {
  const screen = state.screen;
  const drive = currentDrive(screen);
  switch (event.type) {
    case 'engines':
      return { ...state, engines: event.engines };
    case 'service': {
      const updated = { ...state, service: event.service };
      if (event.service.state === 'ready') return screen.kind === 'idle' ? next(updated) : updated;
      // Not ready: a drive waiting for its badge goes back to waiting, unread; a running scan ends as it would.
      if (screen.kind === 'operator') return { ...updated, screen: { kind: 'idle' }, queue: [screen.drive, ...state.queue] };
      return updated;
    }
    case 'inserted': {
      if (drive?.id === event.drive.id || state.queue.some((d) => d.id === event.drive.id)) return state;
      // Out of service (or still checking): the drive waits, unread, and the screen says so.
      if (state.service.state !== 'ready' && (screen.kind === 'idle' || screen.kind === 'removed-mid-scan')) return { ...state, screen: { kind: 'idle' }, queue: [...state.queue, event.drive] };
      if (screen.kind === 'idle' || screen.kind === 'removed-mid-scan') return { ...state, screen: begin(state, event.drive) };
      return { ...state, queue: [...state.queue, event.drive] };
    }
    case 'removed': {
      if (drive?.id !== event.id) return { ...state, queue: state.queue.filter((d) => d.id !== event.id) };
      // Pulled before its result: nothing is approved, and the technician is told so.
      if (screen.kind === 'scanning') return { ...state, screen: { kind: 'removed-mid-scan', drive: screen.drive } };
      if (screen.kind === 'removed-mid-scan') return state;
      return next(state);
    }
    case 'key':
      return onKey(state, event.key);
    case 'progress': {
      if (screen.kind !== 'scanning' || screen.drive.id !== event.id) return state;
      const startedAt = screen.scanStartedAt ?? (event.progress.phase === 'scanning' ? event.at : null);
      return { ...state, screen: { ...screen, scanStartedAt: startedAt, progress: progressView(screen.progress, event.progress, startedAt, event.at) } };
    }
    case 'finished':
      if (screen.kind !== 'scanning' || screen.drive.id !== event.id) return state;
      return { ...state, screen: { kind: 'result', drive: screen.drive, result: { ...event.result, operatorId: event.result.operatorId ?? screen.operatorId } } };
    case 'failed':
      if (screen.kind !== 'scanning' || screen.drive.id !== event.id) return state;
      return {
        ...state,
        screen: {
          kind: 'result',
          drive: screen.drive,
          result: { verdict: 'rejected', engineFailure: event.reason, driveReasons: [event.reason], blocked: [], blockedCount: 0, passing: 0, total: 0, expiresAt: null, signed: false, scanId: null, operatorId: screen.operatorId },
        },
      };
  }
}

/** Drive reasons that mean the drive was not checked at all. */
const ENGINE_FAILURES: ReadonlySet<string> = new Set(['SCANNER_UNAVAILABLE', 'SCANNER_TIMEOUT', 'SCANNER_PROTOCOL', 'SCANNER_ERROR', 'ENGINE_NOT_READY', 'WORK_FOLDER_FAILED']);

const BLOCKED_KEPT = 100; // blocked files the result view names; the rest are counted

/** What the result screen shows of a scan's decision (one pass over its files; at most BLOCKED_KEPT named). */
export function resultView(decision: Decision, expiresAt: string | null, scan: { readonly scanId: string | null; readonly operatorId: string | null } = { scanId: null, operatorId: null }): ResultView {
  const blocked: BlockedFile[] = [];
  let blockedCount = 0;
  let total = 0;
  for (const f of decision.files) {
    total++;
    if (f.verdict !== 'blocked') continue;
    blockedCount++;
    if (blocked.length < BLOCKED_KEPT) {
      const match = f.reasons.filter((r) => r.code === 'YARA_MATCH').map((r) => parseYaraMatch(r.detail)).find((m) => m !== null);
      const yara = match ? { yara: shownText(match.description ?? match.rule) } : {};
      blocked.push({ display: shownText(f.display), codes: [...new Set(f.reasons.map((r) => r.code))], ...yara });
    }
  }
  return {
    verdict: decision.verdict,
    engineFailure: decision.driveReasons.find((r) => ENGINE_FAILURES.has(r.code)) ?? null,
    driveReasons: decision.driveReasons,
    blocked,
    blockedCount,
    passing: total - blockedCount,
    total,
    expiresAt: decision.verdict === 'rejected' ? null : expiresAt,
    signed: decision.verdict !== 'rejected' && expiresAt !== null,
    scanId: scan.scanId,
    operatorId: scan.operatorId,
  };
}
