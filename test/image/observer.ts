/**
 * The host's side of the guest's observer (image/rootfs/usr/lib/portcullis/
 * observe.js): JSON lines read from the file QEMU writes the guest's second
 * serial port to. Keeps the latest of each kind (tty1's screen, the station's
 * mounts, USB devices, input devices, listening sockets) and every record, so
 * the test can wait for a state and later prove what happened in between.
 */
import { open, type FileHandle } from 'node:fs/promises';

export interface ObservedRecord {
  readonly t: number; // ms since the epoch (the guest's clock, set from the host's at boot)
  readonly at: number; // ms since the epoch, when the host read it
  readonly kind: string;
  readonly rows?: string[];
  readonly lines?: string[];
  readonly line?: string;
  readonly devices?: UsbDeviceState[];
  readonly names?: string[];
  readonly sockets?: string[];
}

export interface UsbDeviceState {
  readonly name: string;
  readonly id: string;
  readonly product: string | null;
  readonly authorized: string | null;
  readonly interfaces: ReadonlyArray<{ readonly name: string; readonly class: string | null; readonly driver: string | null }>;
}

/** What tty1 shows, as far as the test needs to tell screens apart (kiosk/station/ui.ts draws them). */
export type ScreenKind = 'blank' | 'first-boot-key' | 'ready' | 'scanning' | 'result' | 'refused' | 'removed' | 'operator' | 'out-of-service' | 'other';

export function screenKind(rows: readonly string[]): ScreenKind {
  const text = rows.join('\n');
  if (text.trim() === '') return 'blank';
  if (text.includes('first boot: this kiosk signing key')) return 'first-boot-key';
  // The title bar's right-hand part (ui.ts): ready, scanning, result, refused, removed, operator,
  // out of service; a status such as the signatures' age may stand in the middle.
  const bar = rows.find((r) => r.includes('PORTCULLIS media gate'));
  const title = bar?.replace(/│/g, '').trim().split(/\s{2,}/).pop();
  switch (title) {
    case 'ready':
    case 'scanning':
    case 'result':
    case 'refused':
    case 'removed':
    case 'operator':
      return title;
    case 'out of service':
      return 'out-of-service';
    default:
      return 'other';
  }
}

/** The result screen's verdict, from its plain-language lines (ui.ts). */
export function resultVerdict(rows: readonly string[]): 'approved' | 'partial' | 'rejected' | 'failed' | null {
  const text = rows.join('\n');
  if (/THE SCAN FAILED/.test(text)) return 'failed';
  if (/All \d+ files? may go onto plant equipment/.test(text)) return 'approved';
  if (/\d+ of \d+ files? may pass/.test(text)) return 'partial';
  if (/Nothing on this drive may pass/.test(text)) return 'rejected';
  return null;
}

/** "Files 3 of 12" on the scanning screen: how many files the scan has done. */
export function filesScanned(rows: readonly string[]): number | null {
  const m = /Files (\d+) of (\d+)/.exec(rows.join('\n'));
  return m ? Number(m[1]) : null;
}

/** The error code a refusal or failure screen names: "(DEVICE_BADUSB)". */
export function shownCode(rows: readonly string[]): string | null {
  return /\(([A-Z][A-Z0-9_]+)\)/.exec(rows.join('\n'))?.[1] ?? null;
}

/** A mountinfo line's mount point, per-mount options and superblock options (proc(5)). */
export function parseMountinfo(line: string): { mountPoint: string; options: string[]; fsType: string; source: string; superOptions: string[] } | null {
  const [left, right] = line.split(' - ');
  if (!left || !right) return null;
  const f = left.split(' ');
  const r = right.split(' ');
  if (f.length < 6 || r.length < 3) return null;
  return { mountPoint: f[4]!, options: f[5]!.split(','), fsType: r[0]!, source: r[1]!, superOptions: r[2]!.split(',') };
}

export class Observer {
  readonly records: ObservedRecord[] = [];
  private handle: FileHandle | null = null;
  private offset = 0;
  private partial = '';
  private timer: NodeJS.Timeout | null = null;
  private readonly waiters = new Set<() => void>();
  private readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  start(): void {
    this.timer = setInterval(() => void this.poll(), 200);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    void this.handle?.close();
    this.handle = null;
  }

  private polling = false;
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      this.handle ??= await open(this.path, 'r').catch(() => null);
      if (!this.handle) return;
      const buffer = Buffer.alloc(1 << 20);
      for (;;) {
        const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        this.partial += buffer.subarray(0, bytesRead).toString('utf8');
      }
      const lines = this.partial.split('\n');
      this.partial = lines.pop() ?? '';
      const at = Date.now();
      for (const line of lines) {
        // The serial line may carry CRs and, before the observer starts, nothing JSON at all.
        const start = line.indexOf('{');
        if (start < 0) continue;
        try {
          this.records.push({ ...(JSON.parse(line.slice(start).trim()) as Omit<ObservedRecord, 'at'>), at });
        } catch {
          // a line torn by the guest's reboot or power-off: ignored
        }
      }
      if (lines.length > 0) for (const w of this.waiters) w();
    } finally {
      this.polling = false;
    }
  }

  latest(kind: string): ObservedRecord | undefined {
    for (let i = this.records.length - 1; i >= 0; i--) if (this.records[i]!.kind === kind) return this.records[i];
    return undefined;
  }

  screen(): string[] {
    return this.latest('screen')?.rows ?? [];
  }

  /** Resolves with the first record from index `from` on that `match` accepts. */
  waitFor(match: (r: ObservedRecord) => boolean, what: string, timeoutMs: number, from = 0): Promise<ObservedRecord> {
    return new Promise((resolve, reject) => {
      let index = from;
      const check = (): void => {
        for (; index < this.records.length; index++) {
          const r = this.records[index]!;
          if (match(r)) {
            done();
            resolve(r);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        done();
        const screen = this.screen().filter((l) => l.trim() !== '').join('\n    ');
        reject(new Error(`not seen within ${Math.round(timeoutMs / 1000)} s: ${what}; tty1 shows:\n    ${screen}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Waits for tty1 to show a screen `match` accepts. */
  waitForScreen(match: (rows: string[]) => boolean, what: string, timeoutMs: number, from = 0): Promise<ObservedRecord> {
    return this.waitFor((r) => r.kind === 'screen' && !!r.rows && match(r.rows), what, timeoutMs, from);
  }
}
