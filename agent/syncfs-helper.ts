/**
 * syncfs(2) for the import's group commit, without a process per flush.
 *
 * Node has no syncfs binding; coreutils' `sync -f DIR` is syncfs on DIR's
 * filesystem. Starting it from the agent once per group cost more than the
 * flush itself: the agent's address space (hundreds of MiB while workers
 * stage) is copied on every fork, and an import of 20 000 files spent about
 * 20 s of CPU in the kernel doing so (bench/import.ts, on tmpfs, where the
 * flush itself costs nothing). So one small shell is started per import and
 * kept: each request is a line on its stdin, it runs `sync -f` (a fork of a
 * tiny shell is cheap) and answers one line. The folder is fixed at start-up
 * and passed as an argument, never through the request line.
 *
 * Fails closed: a flush that fails, a helper that exits, answers anything
 * but "ok", or does not answer within the timeout fails that flush and every
 * later one. A failed syncfs must stay failed: Linux reports a writeback
 * error to the first syncfs caller after it only, so the next flush would
 * report success over bytes that never reached the disk. (Another program
 * calling syncfs on the same filesystem can take the report first; that gap
 * is named in docs/agent.md.)
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { release } from 'node:os';

/** The shell's loop: one `sync -f` per input line, "ok" or "fail <reason>" per answer. */
const LOOP = [
  'while IFS= read -r _; do',
  '  if out=$(/bin/sync -f -- "$1" 2>&1); then echo ok;',
  '  else printf "fail %s\\n" "$(printf %s "$out" | tr "\\n\\r" "  ")"; fi',
  'done',
].join('\n');

const FLUSH_TIMEOUT_MS = 120_000; // ms: one syncfs of a whole filesystem under heavy writing

export class SyncfsHelper {
  readonly folder: string;
  private readonly child: ChildProcessWithoutNullStreams;
  private buffered = '';
  private waiting: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  private failure: Error | null = null;
  private readonly exited: Promise<void>;
  private readonly timeoutMs: number;

  private constructor(folder: string, timeoutMs: number) {
    this.folder = folder;
    this.timeoutMs = timeoutMs;
    this.child = spawn('/bin/sh', ['-c', LOOP, 'portcullis-syncfs', folder], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (text: string) => this.onData(text));
    this.child.stderr.resume(); // the loop sends sync's messages to stdout; anything else is not an answer
    this.child.stdin.on('error', (error) => this.failAll(new Error(`the syncfs helper's input failed (${error.message})`)));
    this.exited = new Promise((resolve) => {
      this.child.on('error', (error) => {
        this.failAll(new Error(`cannot run the syncfs helper (${error.message})`));
        resolve();
      });
      this.child.on('exit', (code, signal) => {
        this.failAll(new Error(`the syncfs helper ended (${signal ?? `exit ${String(code)}`})`));
        resolve();
      });
    });
  }

  /** The shell's process id (tests). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Starts the helper for the filesystem holding `folder`. */
  static start(folder: string, timeoutMs = FLUSH_TIMEOUT_MS): SyncfsHelper {
    return new SyncfsHelper(folder, timeoutMs);
  }

  /** One syncfs of the folder's filesystem; rejects if it failed or the helper is gone. */
  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.failAll(new Error(`sync -f did not finish within ${this.timeoutMs} ms`));
        this.child.kill('SIGKILL');
      }, this.timeoutMs);
      this.waiting.push({
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.child.stdin.write('\n');
    });
  }

  /** Ends the helper (its loop ends at end of input) and waits for it. */
  async close(): Promise<void> {
    this.child.stdin.end();
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(killer);
  }

  private onData(text: string): void {
    this.buffered += text;
    for (let end = this.buffered.indexOf('\n'); end !== -1; end = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, end);
      this.buffered = this.buffered.slice(end + 1);
      const waiter = this.waiting.shift();
      if (!waiter) {
        this.failAll(new Error('the syncfs helper answered a flush nobody asked for'));
        return;
      }
      if (line === 'ok' && this.failure === null) waiter.resolve();
      else if (line === 'ok') waiter.reject(this.failure!);
      else if (line.startsWith('fail ')) {
        // Sticky: Linux reports a writeback error to one syncfs caller only; a later "ok" could cover lost bytes.
        this.failure ??= new Error(`sync -f failed: ${line.slice(5).trim() || 'no reason given'}`);
        waiter.reject(this.failure);
      } else {
        waiter.reject(new Error('the syncfs helper gave an unexpected answer'));
        this.failAll(new Error('the syncfs helper gave an unexpected answer'));
      }
    }
  }

  private failAll(error: Error): void {
    this.failure ??= error;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.reject(this.failure);
  }
}

/** Linux reports writeback errors from syncfs(2) only since 5.8; before that a failed flush looked like success. */
export function syncfsReportsErrors(kernelRelease: string): boolean {
  const match = /^(\d+)\.(\d+)/u.exec(kernelRelease);
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 5 || (major === 5 && minor >= 8);
}

/**
 * Whether staged files are flushed per group on this platform: Linux 5.8 or
 * later has syncfs(2) (`sync -f` through SyncfsHelper, one flush of the
 * destination's filesystem for a whole group, as `cp` then `sync` does);
 * elsewhere each staged file is fsynced on its own (Windows: FlushFileBuffers
 * per file; older Linux: fsync per file).
 */
export function platformHasSyncfs(): boolean {
  return process.platform === 'linux' && syncfsReportsErrors(release());
}
