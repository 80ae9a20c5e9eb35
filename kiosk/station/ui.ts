/**
 * The technician's screens (Ink, 80x25, keyboard only). Pure components of
 * the station state; `StationApp` adds the keyboard and a live store. Every
 * drive-supplied text (file names, labels, serials) is shown through
 * `shownText`, so no name can move the cursor, clear the screen or recolour.
 * No JSX: Node strips types but not JSX, so elements are built with `h`.
 */
import { Box, Text, useInput, useStdin, useStdout } from 'ink';
import React from 'react';
import type { DriveVerdict, ReasonCode } from '../core/decide.ts';
import { shownText } from '../core/device.ts';
import type { ServiceProblem, ServiceStatus } from '../core/self-check.ts';
import type { EngineStatus, KeyPress, ProgressView, ResultView, Screen, StationDrive, StationEvent, StationState } from '../core/station-state.ts';

const h = React.createElement;
export const SCREEN_COLUMNS = 80;
export const SCREEN_ROWS = 25;
const BLOCKED_SHOWN = 7; // rows of blocked files on the result screen

/** Plain-language reasons for technicians; the codes stay in the audit log. */
export const REASON_TEXT: Record<ReasonCode, string> = {
  MALWARE: 'malware found',
  YARA_MATCH: 'matches a known attack pattern',
  ENCRYPTED: 'encrypted: cannot be checked',
  LIMIT_EXCEEDED: 'too large or too deeply packed to check',
  TYPE_MISMATCH: 'content does not match its name',
  RISKY_TYPE: 'file type not allowed on plant equipment',
  NOT_ALLOWLISTED: 'program/firmware not on approved list',
  TYPE_NOT_ALLOWED: 'type not on the plant media list',
  MACRO: 'Office macros: not on approved list',
  NOT_INSPECTED: 'content could not be opened to check',
  UNSAFE_NAME: 'unsafe file name',
  NOT_REGULAR_FILE: 'not a regular file (link or device)',
  SCAN_ERROR: 'could not be checked',
};

// A 5-row block font for the few words the result screens need.
const FONT: Record<string, readonly string[]> = {
  A: [' ### ', '#   #', '#####', '#   #', '#   #'],
  C: [' ####', '#    ', '#    ', '#    ', ' ####'],
  D: ['#### ', '#   #', '#   #', '#   #', '#### '],
  E: ['#####', '#    ', '#### ', '#    ', '#####'],
  F: ['#####', '#    ', '#### ', '#    ', '#    '],
  H: ['#   #', '#   #', '#####', '#   #', '#   #'],
  I: ['#####', '  #  ', '  #  ', '  #  ', '#####'],
  J: ['#####', '   # ', '   # ', '#  # ', ' ##  '],
  K: ['#   #', '#  # ', '###  ', '#  # ', '#   #'],
  L: ['#    ', '#    ', '#    ', '#    ', '#####'],
  M: ['#   #', '## ##', '# # #', '#   #', '#   #'],
  O: [' ### ', '#   #', '#   #', '#   #', ' ### '],
  P: ['#### ', '#   #', '#### ', '#    ', '#    '],
  R: ['#### ', '#   #', '#### ', '#  # ', '#   #'],
  S: [' ####', '#    ', ' ### ', '    #', '#### '],
  T: ['#####', '  #  ', '  #  ', '  #  ', '  #  '],
  U: ['#   #', '#   #', '#   #', '#   #', ' ### '],
  V: ['#   #', '#   #', '#   #', ' # # ', '  #  '],
};

/** WORD in the block font: five lines (a space is two columns wide, so OUT OF SERVICE fits 80). */
export function bigText(word: string): string[] {
  return [0, 1, 2, 3, 4].map((row) => [...word].map((c) => (c === ' ' ? ' ' : (FONT[c]?.[row] ?? '     ').replace(/#/g, '\u2588'))).join(' '));
}

export function formatBytes(n: number): string {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatDuration(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m}:${String(s).padStart(2, '0')}`;
}

/** The kiosk's own time zone (the image sets the plant's). */
export const LOCAL_TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

/**
 * "2026-11-24 01:00 CET (2026-11-24 00:00 UTC)": the time in `timeZone` (the
 * technician's clock) and in UTC (the receipt's and the log's); UTC alone
 * when the kiosk runs on UTC.
 */
export function formatTime(rfc3339: string, timeZone: string = LOCAL_TIME_ZONE): string {
  const t = new Date(rfc3339);
  if (Number.isNaN(t.getTime())) return shownText(rfc3339);
  const utc = `${t.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  let parts: Intl.DateTimeFormatPart[];
  try {
    parts = new Intl.DateTimeFormat('en-GB', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short' }).formatToParts(t);
  } catch {
    return utc; // an unknown zone: UTC is still right
  }
  const part = (type: Intl.DateTimeFormatPartTypes): string => parts.find((p) => p.type === type)?.value ?? '';
  const zone = part('timeZoneName');
  if (zone === 'UTC') return utc;
  return `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')} ${zone} (${utc})`;
}

function fit(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 3)}...`;
}

function line(text: string, props: Record<string, unknown> = {}): React.ReactElement {
  // An empty Text takes no row; a blank line is one space.
  return h(Text, { wrap: 'truncate-end', ...props }, text === '' ? ' ' : text);
}

/** What the header says about the signatures on every screen, and whether the policy finds them too old. */
export interface HeaderInfo {
  readonly signatures: string;
  readonly outdated: boolean;
}

export function headerInfo(state: StationState, now: Date): HeaderInfo {
  const time = state.engines.clamavDatabaseTime;
  const days = time ? Math.floor((now.getTime() - new Date(time).getTime()) / 86_400_000) : Number.NaN;
  const service = state.service;
  const named = service.state === 'checking' ? [] : [...(service.state === 'out-of-service' ? service.problems : []), ...service.warnings];
  const outdated = named.some((p) => p.code === 'SIGNATURES_OUTDATED');
  const missing = named.some((p) => p.code === 'SIGNATURES_MISSING');
  const signatures = missing ? 'no signatures' : Number.isNaN(days) ? 'signature age unknown' : `signatures ${days} day${days === 1 ? '' : 's'} old`;
  return { signatures, outdated: outdated || missing };
}

function header(title: string, info: HeaderInfo | null = null): React.ReactElement {
  return h(Box, { borderStyle: 'single', paddingX: 1, width: SCREEN_COLUMNS },
    h(Text, { bold: true }, 'PORTCULLIS media gate'),
    h(Box, { flexGrow: 1 }),
    ...(info ? [h(Text, info.outdated ? { color: 'red', bold: true } : {}, info.signatures), h(Box, { flexGrow: 1 })] : []),
    h(Text, null, title));
}

/** The header for the current state: every screen shows how old the signatures are. */
const HeaderContext = React.createContext<HeaderInfo | null>(null);

function Header({ title }: { title: string }): React.ReactElement {
  return header(title, React.useContext(HeaderContext));
}

function databaseAge(engines: EngineStatus, now: Date): string {
  if (!engines.clamavDatabaseTime) return 'age unknown';
  const days = Math.floor((now.getTime() - new Date(engines.clamavDatabaseTime).getTime()) / 86_400_000);
  return Number.isNaN(days) ? 'age unknown' : `built ${engines.clamavDatabaseTime.slice(0, 10)}, ${days} day${days === 1 ? '' : 's'} old`;
}

/** How many rows `text` takes when wrapped at word boundaries to `width` columns. */
function wrappedRows(text: string, width: number): number {
  let rows = 1;
  let used = 0;
  for (const word of text.split(' ')) {
    const need = (used === 0 ? 0 : 1) + word.length;
    if (used + need <= width) used += need;
    else {
      rows += Math.max(1, Math.ceil(word.length / width));
      used = word.length % width;
    }
  }
  return rows;
}

/** A block of at most two wrapped rows, `indent` columns in; longer text is cut with "..." (the audit log keeps all of it). */
function twoRows(indent: number, parts: readonly { text: string; props?: Record<string, unknown> }[]): { element: React.ReactElement; rows: number } {
  const width = SCREEN_COLUMNS - indent - 2;
  const whole = parts.map((p) => p.text).join('');
  // The longest head of the text that still wraps into two rows.
  let keep = whole.length;
  if (wrappedRows(whole, width) > 2) {
    let low = 0;
    let high = whole.length;
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      if (wrappedRows(`${whole.slice(0, mid)}...`, width) <= 2) low = mid;
      else high = mid - 1;
    }
    keep = low;
  }
  let left = keep;
  const cut = parts.map((p) => {
    const text = p.text.slice(0, Math.max(0, left));
    left -= p.text.length;
    return { ...p, text };
  }).filter((p) => p.text.length > 0);
  if (keep < whole.length) cut.push({ text: '...' });
  const rows = Math.min(2, wrappedRows(cut.map((p) => p.text).join(''), width));
  const element = h(Box, { width: width + 2, marginLeft: indent, height: rows, overflow: 'hidden' },
    h(Text, { wrap: 'wrap' }, ...cut.map((p, i) => h(Text, { key: String(i), ...(p.props ?? {}) }, p.text))));
  return { element, rows };
}

/** Problems on the out-of-service screen: the code and what (two rows at most), then the fix (two rows at most). */
function problemRows(problems: readonly ServiceProblem[], rows: number, color: string): React.ReactElement[] {
  const out: React.ReactElement[] = [];
  let used = 0;
  for (const [i, p] of problems.entries()) {
    const what = twoRows(2, [{ text: `${p.code}: `, props: { color, bold: true } }, { text: shownText(p.what) }]);
    const fix = twoRows(4, [{ text: 'Fix: ', props: { bold: true } }, { text: shownText(p.fix) }]);
    if (used + what.rows + fix.rows + (i < problems.length - 1 ? 1 : 0) > rows) {
      out.push(line(`  ... and ${problems.length - i} more (the audit log has them: STATION_OUT_OF_SERVICE)`));
      break;
    }
    out.push(what.element, fix.element);
    used += what.rows + fix.rows;
  }
  return out;
}

function CheckingScreen({ step, waiting }: { step: string; waiting: number }): React.ReactElement {
  return h(Box, { flexDirection: 'column' },
    h(Header, { title: 'starting' }),
    line(''),
    line('  Self-check before the first drive:', { bold: true }),
    line('  the signing key, free space, the age of the signatures, and the scan'),
    line('  engines (the signatures loaded, every rule proven live).'),
    line(''),
    line(`  Now: ${fit(shownText(step), 70)}`),
    line(''),
    line(waiting > 0 ? '  Drives plugged in now wait, unread, until the check is done.' : '  Please wait: drives are taken once the check is done.', { color: 'yellow' }));
}

function OutOfServiceScreen({ service, waiting }: { service: Extract<ServiceStatus, { state: 'out-of-service' }>; waiting: number }): React.ReactElement {
  // Rows: header 3, blank, banner 5, blank, two sentences, blank, problems, blank, waiting drives 2.
  const left = SCREEN_ROWS - 3 - 1 - 5 - 1 - 2 - 1 - 1 - (waiting > 0 ? 2 : 0);
  return h(Box, { flexDirection: 'column' },
    h(Header, { title: 'out of service' }),
    line(''),
    h(Banner, { word: 'OUT OF SERVICE', color: 'red' }),
    line(''),
    line('  OUT OF SERVICE: this kiosk checks no drive until this is fixed.', { bold: true, color: 'red' }),
    line('  Do not plug in drives. Call maintenance with what is shown here.'),
    line(''),
    ...problemRows(service.problems, left, 'red'),
    ...(waiting > 0 ? [line(''), line(`  ${waiting} drive${waiting === 1 ? ' is' : 's are'} plugged in: NOT read, NOT checked. Remove ${waiting === 1 ? 'it' : 'them'}.`, { color: 'yellow', bold: true })] : []));
}

function IdleScreen({ engines, now, operatorRequired, warnings }: { engines: EngineStatus; now: Date; operatorRequired: boolean; warnings: readonly ServiceProblem[] }): React.ReactElement {
  return h(Box, { flexDirection: 'column' },
    h(Header, { title: 'ready' }),
    line(''),
    line('  Plug in the USB drive to check.', { bold: true }),
    line('  The kiosk scans every file, then shows which files may go onto plant'),
    line('  equipment. Approved drives get a signed manifest the HMIs check.'),
    ...(operatorRequired ? [line('  You will be asked for your badge or ID.')] : []),
    line('  Do not remove the drive until the screen says "safe to remove".'),
    line(''),
    line('  Scan engines', { bold: true }),
    line(`    ClamAV database: ${engines.clamavDatabase ?? 'not started yet'} (${databaseAge(engines, now)})`),
    line(`    YARA rule set:   ${engines.ruleSet ?? 'not loaded yet'}`),
    ...(engines.note ? [line(`    note: ${fit(engines.note, 66)}`, { color: 'yellow' })] : []),
    ...warnings.flatMap((w) => [
      line(''),
      twoRows(2, [{ text: `WARNING ${w.code}: `, props: { color: 'yellow', bold: true } }, { text: shownText(w.what) }]).element,
      twoRows(4, [{ text: 'Fix: ', props: { bold: true } }, { text: shownText(w.fix) }]).element,
    ]));
}

function DriveLine({ drive }: { drive: StationDrive }): React.ReactElement {
  return line(`  Drive: ${fit(shownText(drive.label), 70)}`);
}

function OperatorScreen({ drive, badge }: { drive: StationDrive; badge: string }): React.ReactElement {
  return h(Box, { flexDirection: 'column' },
    h(Header, { title: 'operator' }),
    h(DriveLine, { drive }),
    line(''),
    line('  Policy requires your badge before this drive is scanned.', { bold: true }),
    line('  Scan your badge or type your ID, then press Enter.'),
    line('  (Backspace corrects, Esc clears.)'),
    line(''),
    line(`  Badge / ID: ${badge}_`, { bold: true }));
}

export function progressBar(done: number, total: number, width: number): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(fraction * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%`;
}

function ScanningScreen({ drive, operatorId, progress }: { drive: StationDrive; operatorId: string | null; progress: ProgressView | null }): React.ReactElement {
  const rows: React.ReactElement[] = [];
  if (progress === null) {
    rows.push(line('  Starting the scan engines and self-test...'));
  } else if (progress.phase === 'walking') {
    rows.push(line(`  Listing the drive: ${progress.filesTotal} files, ${formatBytes(progress.bytesTotal)} so far`));
  } else {
    rows.push(line(`  ${progressBar(progress.bytesDone, progress.bytesTotal, 60)}`));
    rows.push(line(`  Files ${progress.filesDone} of ${progress.filesTotal}    ${formatBytes(progress.bytesDone)} of ${formatBytes(progress.bytesTotal)}`));
    rows.push(line(`  Rate ${progress.bytesPerSecond === null ? '-' : `${formatBytes(progress.bytesPerSecond)}/s`}    Time left ${progress.secondsLeft === null ? '-' : formatDuration(progress.secondsLeft)}`));
    rows.push(line(`  Now: ${progress.current === null ? '-' : fit(shownText(progress.current), 70)}`));
  }
  return h(Box, { flexDirection: 'column' },
    h(Header, { title: 'scanning' }),
    h(DriveLine, { drive }),
    ...(operatorId ? [line(`  Operator: ${shownText(operatorId)}`)] : []),
    line(''),
    ...rows,
    line(''),
    line('  Scanning. Do NOT remove the drive.', { bold: true, color: 'yellow' }));
}

const VERDICT_WORD: Record<DriveVerdict, string> = { approved: 'APPROVED', partial: 'PARTIAL', rejected: 'REJECTED' };
const VERDICT_COLOR: Record<DriveVerdict, string> = { approved: 'green', partial: 'yellow', rejected: 'red' };

function Banner({ word, color }: { word: string; color: string }): React.ReactElement {
  return h(Box, { flexDirection: 'column', paddingLeft: 2 }, ...bigText(word).map((row) => line(row, { color, bold: true })));
}

/** "Scan <id>, operator <id>": what the technician reads out to security staff. */
function scanLine(result: ResultView): React.ReactElement | null {
  const parts = [
    ...(result.scanId ? [`Scan ${shownText(result.scanId)}`] : []),
    ...(result.operatorId ? [`${result.scanId ? 'operator' : 'Operator'} ${shownText(result.operatorId)}`] : []),
  ];
  return parts.length > 0 ? line(`  ${fit(parts.join(', '), SCREEN_COLUMNS - 2)}`) : null;
}

const DRIVE_REASONS_SHOWN = 3; // rows of drive-level reasons; the rest are counted

function ResultScreen({ drive, result, reservedRows, timeZone }: { drive: StationDrive; result: ResultView; reservedRows: number; timeZone: string }): React.ReactElement {
  const rows: React.ReactElement[] = [];
  const scan = scanLine(result);
  if (result.engineFailure) {
    rows.push(h(Banner, { word: 'FAILED', color: 'red' }));
    rows.push(line('  THE SCAN FAILED: this drive was NOT checked. Nothing on it may pass.', { bold: true, color: 'red' }));
    rows.push(line(`  ${result.engineFailure.code}: ${fit(shownText(result.engineFailure.detail), 60)}`));
    rows.push(line('  Call maintenance: the kiosk needs attention before the next drive.'));
    if (scan) rows.push(scan);
  } else {
    if (result.verdict !== 'rejected' && !result.signed) {
      // A report-only station: the files were checked, but no approval exists for an HMI to honour.
      rows.push(h(Banner, { word: 'CHECKED', color: 'yellow' }));
      rows.push(line('  Report only: NO approval was written (this station has no signing key).', { bold: true, color: 'yellow' }));
      rows.push(line(`  HMIs will refuse every file on this drive. ${result.passing} of ${result.total} files would have passed.`));
    } else {
      rows.push(h(Banner, { word: VERDICT_WORD[result.verdict], color: VERDICT_COLOR[result.verdict] }));
      if (result.verdict === 'approved') rows.push(line(`  All ${result.total} files may go onto plant equipment.`, { bold: true }));
      else if (result.verdict === 'partial') rows.push(line(`  ${result.passing} of ${result.total} files may pass; ${result.blockedCount} blocked (HMIs will refuse them):`, { bold: true }));
      else rows.push(line('  Nothing on this drive may pass.', { bold: true }));
    }
    const reasons = result.driveReasons.length > DRIVE_REASONS_SHOWN ? result.driveReasons.slice(0, DRIVE_REASONS_SHOWN - 1) : result.driveReasons;
    for (const r of reasons) rows.push(line(`  ${r.code}: ${fit(shownText(r.detail), 64)}`));
    if (reasons.length < result.driveReasons.length) rows.push(line(`  ... and ${result.driveReasons.length - reasons.length} more reasons (in the audit log)`));
    // The blocked files get the rows left of 25: header 3, drive 1, banner 5, the verdict line,
    // the reasons, expiry, scan line, blank and "safe to remove" 2, and the waiting-drive lines.
    const fixed = 3 + 1 + 5 + 1 + (rows.length - 2) + (result.expiresAt ? 1 : 0) + (scan ? 1 : 0) + 2 + reservedRows;
    const available = Math.max(2, SCREEN_ROWS - fixed); // rows for the files and the "... more" line
    const shown = result.blockedCount <= Math.min(BLOCKED_SHOWN, available) ? result.blockedCount : Math.min(BLOCKED_SHOWN, available - 1);
    for (const f of result.blocked.slice(0, shown)) {
      // A YARA match shows what the rule says it finds (its description), not only that one matched.
      rows.push(line(`   x ${fit(shownText(f.display), 30).padEnd(30)} ${f.codes.map((c) => (c === 'YARA_MATCH' && f.yara !== undefined ? `attack pattern: ${f.yara}` : REASON_TEXT[c])).join('; ')}`));
    }
    if (result.blockedCount > shown) rows.push(line(`     ... and ${result.blockedCount - shown} more blocked files (full list in the receipt on the drive)`));
    if (result.expiresAt) rows.push(line(`  Approval valid until ${formatTime(result.expiresAt, timeZone)}.`));
    if (scan) rows.push(scan);
  }
  rows.push(line(''));
  rows.push(line('  Safe to remove the drive.', { bold: true, color: 'green' }));
  return h(Box, { flexDirection: 'column' }, h(Header, { title: 'result' }), h(DriveLine, { drive }), ...rows);
}

function RefusedScreen({ drive }: { drive: StationDrive }): React.ReactElement {
  const refusal = drive.refusal ?? { code: 'DEVICE_REFUSED', message: '' };
  return h(Box, { flexDirection: 'column' },
    h(Header, { title: 'refused' }),
    h(DriveLine, { drive }),
    h(Banner, { word: 'REFUSED', color: 'red' }),
    h(Box, { width: SCREEN_COLUMNS - 4, marginLeft: 2 }, h(Text, { wrap: 'wrap' }, shownText(refusal.message))),
    line(`  (${refusal.code})`),
    line('  This device was not mounted and nothing on it was read.'),
    line(''),
    line('  Safe to remove the device.', { bold: true, color: 'green' }));
}

function RemovedScreen({ drive }: { drive: StationDrive }): React.ReactElement {
  return h(Box, { flexDirection: 'column' },
    h(Header, { title: 'removed' }),
    h(DriveLine, { drive }),
    h(Banner, { word: 'REMOVED', color: 'red' }),
    line('  The drive was removed during the scan. NOTHING was approved.', { bold: true, color: 'red' }),
    line('  Plug it in again and wait for the result to scan it again.'),
    line('  Press Enter to continue.'));
}

function screenElement(screen: Screen, state: StationState, now: Date, reservedRows: number, timeZone: string): React.ReactElement {
  switch (screen.kind) {
    case 'idle':
      if (state.service.state === 'checking') return h(CheckingScreen, { step: state.service.step, waiting: state.queue.length });
      if (state.service.state === 'out-of-service') return h(OutOfServiceScreen, { service: state.service, waiting: state.queue.length });
      return h(IdleScreen, { engines: state.engines, now, operatorRequired: state.operatorRequired, warnings: state.service.warnings });
    case 'operator':
      return h(OperatorScreen, { drive: screen.drive, badge: screen.badge });
    case 'scanning':
      return h(ScanningScreen, { drive: screen.drive, operatorId: screen.operatorId, progress: screen.progress });
    case 'result':
      return h(ResultScreen, { drive: screen.drive, result: screen.result, reservedRows, timeZone });
    case 'refused':
      return h(RefusedScreen, { drive: screen.drive });
    case 'removed-mid-scan':
      return h(RemovedScreen, { drive: screen.drive });
  }
}

/** The whole 80x25 screen for one state; times are shown in `timeZone` (default: the kiosk's) and UTC. */
export function StationView({ state, now, timeZone = LOCAL_TIME_ZONE }: { state: StationState; now: Date; timeZone?: string }): React.ReactElement {
  const waiting = state.queue.length;
  // Not ready and idle: the checking and out-of-service screens say themselves what happens to waiting drives.
  const own = state.screen.kind === 'idle' && state.service.state !== 'ready';
  const waitingRows = waiting > 0 && !own
    ? [line(''), line(state.service.state === 'ready'
      ? `  ${waiting} more drive${waiting === 1 ? '' : 's'} waiting: scanned next, in turn. Leave ${waiting === 1 ? 'it' : 'them'} plugged in.`
      : `  ${waiting} more drive${waiting === 1 ? '' : 's'} plugged in: NOT scanned while the kiosk is out of service.`, { color: state.service.state === 'ready' ? 'cyan' : 'yellow' })]
    : [];
  return h(HeaderContext.Provider, { value: headerInfo(state, now) },
    h(Box, { flexDirection: 'column', width: SCREEN_COLUMNS },
      screenElement(state.screen, state, now, waitingRows.length, timeZone),
      ...waitingRows));
}

export const TOO_SMALL_TEXT = `terminal too small (need ${SCREEN_COLUMNS}x${SCREEN_ROWS})`;

/** Shown instead of the station on a terminal smaller than 80x25, whose layout would break. */
function TooSmallScreen({ columns, rows }: { columns: number | undefined; rows: number | undefined }): React.ReactElement {
  const width = Math.max(1, (columns ?? SCREEN_COLUMNS) - 1);
  return h(Box, { flexDirection: 'column', width },
    line(TOO_SMALL_TEXT, { bold: true, color: 'yellow' }),
    line(`now ${columns ?? '?'}x${rows ?? '?'}: enlarge the window or use a smaller font`));
}

/** The terminal's size, followed as it is resized (undefined where the stream does not say). */
function useTerminalSize(): { columns: number | undefined; rows: number | undefined } {
  const { stdout } = useStdout();
  const read = React.useCallback(() => {
    const tty = stdout as Partial<NodeJS.WriteStream>;
    return { columns: tty.columns, rows: tty.rows };
  }, [stdout]);
  const [size, setSize] = React.useState(read);
  React.useEffect(() => {
    const onResize = (): void => setSize(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout, read]);
  return size;
}

/** What StationApp needs of the controller. */
export interface StationStore {
  readonly getState: () => StationState;
  readonly subscribe: (listener: () => void) => () => void;
  readonly dispatch: (event: StationEvent) => void;
  readonly now: () => Date;
}

/** The live screen: the store's state, and the keyboard when stdin is a terminal. */
export function StationApp({ store }: { store: StationStore }): React.ReactElement {
  const state = React.useSyncExternalStore(store.subscribe, store.getState);
  const { isRawModeSupported } = useStdin();
  useInput((input, key) => {
    const press: KeyPress = { input, return: key.return, backspace: key.backspace, delete: key.delete, escape: key.escape };
    store.dispatch({ type: 'key', key: press });
  }, { isActive: isRawModeSupported });
  const { columns, rows } = useTerminalSize();
  if ((columns !== undefined && columns < SCREEN_COLUMNS) || (rows !== undefined && rows < SCREEN_ROWS)) return h(TooSmallScreen, { columns, rows });
  return h(StationView, { state, now: store.now() });
}
