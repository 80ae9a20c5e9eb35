/**
 * The libyara helper (portcullis-yara.c beside this file, built by
 * scripts/setup.sh into .tools/): where it is, and its three commands:
 * `check` (each file compiled on its own, the engine's own errors), `compile`
 * (every file, each in its namespace, into one compiled set and the rule
 * inventory) and `serve` (YaraServer: a long-running, sandboxed scanner).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { runTool, ToolStartError } from '../run-tool.ts';
import { YaraRuleError } from '../yara/errors.ts';

/** Where setup.sh builds the helper; PORTCULLIS_YARA_HELPER names another. */
export function yaraHelperPath(): string {
  return process.env.PORTCULLIS_YARA_HELPER ?? fileURLToPath(new URL('../../../.tools/portcullis-yara', import.meta.url));
}

function requireHelper(helper: string): void {
  if (!existsSync(helper)) {
    throw new YaraRuleError('RULE_COMPILER_UNAVAILABLE', `the YARA engine helper ${helper} is missing: run ./portcullis setup (it builds it against Debian's libyara)`);
  }
}

export interface CompileProblem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

export interface FileCheck {
  readonly path: string;
  readonly accepted: boolean;
  readonly rules: number;
  readonly errors: readonly CompileProblem[];
  readonly errorCount: number;
  readonly warnings: readonly CompileProblem[];
  readonly warningCount: number;
}

const CHECK_BATCH = 200; // files per helper run

/** Compiles each file on its own with libyara: accepted or not, its rule count and the compiler's own errors (file, line). */
export async function checkRuleFiles(paths: readonly string[], options: { helper?: string; timeoutMs?: number } = {}): Promise<FileCheck[]> {
  const helper = options.helper ?? yaraHelperPath();
  requireHelper(helper);
  const out: FileCheck[] = [];
  for (let at = 0; at < paths.length; at += CHECK_BATCH) {
    const batch = paths.slice(at, at + CHECK_BATCH);
    const result = await runTool(helper, ['check', ...batch], { timeoutMs: options.timeoutMs ?? 600_000, maxOutputBytes: 64 * 1024 * 1024 }).catch((cause: unknown) => {
      throw new YaraRuleError('RULE_COMPILER_UNAVAILABLE', `cannot run ${helper}: ${cause instanceof ToolStartError ? String(cause.cause) : String(cause)}`, { cause });
    });
    if (result.code !== 0) throw new YaraRuleError('RULE_ENGINE_REJECTED', `${helper} check ended with ${result.timedOut ? 'a time-out' : `exit ${String(result.code ?? result.signal)}`}: ${result.stderr.slice(0, 500)}`);
    const lines = result.stdout.split('\n').filter((l) => l.length > 0);
    if (lines.length !== batch.length) throw new YaraRuleError('RULE_ENGINE_REJECTED', `${helper} check answered ${lines.length} files of ${batch.length}`);
    for (const line of lines) out.push(JSON.parse(line) as FileCheck);
  }
  return out;
}

export interface InventoryRule {
  readonly ns: string;
  readonly rule: string;
  readonly private: boolean;
  readonly global: boolean;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string | number | boolean>>;
}

export interface CompiledSet {
  readonly rules: readonly InventoryRule[];
  readonly publicRules: number;
  readonly warningCount: number;
}

/**
 * Compiles `sources` (namespace, file path) into `out` with libyara, one
 * namespace per file; returns the inventory libyara reports of the compiled
 * set. A compile error refuses the whole set (RULE_COMPILE_ERROR, file:line).
 */
export async function compileRuleSet(sources: ReadonlyArray<{ namespace: string; path: string }>, out: string, options: { helper?: string; timeoutMs?: number } = {}): Promise<CompiledSet> {
  const helper = options.helper ?? yaraHelperPath();
  requireHelper(helper);
  const result = await runTool(helper, ['compile', out, ...sources.map((s) => `${s.namespace}=${s.path}`)], { timeoutMs: options.timeoutMs ?? 900_000, maxOutputBytes: 512 * 1024 * 1024 }).catch((cause: unknown) => {
    throw new YaraRuleError('RULE_COMPILER_UNAVAILABLE', `cannot run ${helper}: ${String(cause)}`, { cause });
  });
  const lines = result.stdout.split('\n').filter((l) => l.length > 0);
  if (result.code === 1 && lines.length > 0) {
    const failed = JSON.parse(lines[lines.length - 1]!) as { failed?: boolean; errors?: CompileProblem[] };
    const first = failed.errors?.[0];
    if (failed.failed === true) {
      throw new YaraRuleError('RULE_COMPILE_ERROR', `${first?.file ?? '?'}:${first?.line ?? 0}: ${first?.message ?? 'libyara refused the rule set'}`, {
        file: first?.file ?? '', line: first?.line ?? 0, problems: (failed.errors ?? []).map((e) => ({ code: 'RULE_COMPILE_ERROR' as const, file: e.file, line: e.line, message: e.message })),
      });
    }
  }
  if (result.code !== 0) throw new YaraRuleError('RULE_ENGINE_REJECTED', `${helper} compile ended with ${result.timedOut ? 'a time-out' : `exit ${String(result.code ?? result.signal)}`}: ${result.stderr.slice(0, 500)}`);
  const done = JSON.parse(lines[lines.length - 1] ?? '{}') as { done?: boolean; rules?: number; public?: number; warningCount?: number };
  const rules = lines.slice(0, -1).map((l) => JSON.parse(l) as InventoryRule);
  if (done.done !== true || done.rules !== rules.length) throw new YaraRuleError('RULE_ENGINE_REJECTED', `${helper} compile listed ${rules.length} rules but counted ${String(done.rules)}`);
  return { rules, publicRules: done.public ?? 0, warningCount: done.warningCount ?? 0 };
}

export interface ServedMatch {
  readonly ns: string;
  readonly rule: string;
  readonly strings: ReadonlyArray<{ readonly id: string; readonly count: number; readonly offsets: readonly number[] }>;
}

export type ServeAnswer =
  | { readonly ok: true; readonly matches: readonly ServedMatch[]; readonly matchCount: number; readonly evaluated?: number }
  | { readonly ok: false; readonly error: string; readonly libyara?: number };

/** Why the server can no longer answer: the drive is rejected (not this file). */
export class YaraServerError extends Error {
  readonly code: 'YARA_ENGINE_DOWN' | 'YARA_ENGINE_TIMEOUT' | 'YARA_ENGINE_PROTOCOL';
  constructor(code: YaraServerError['code'], message: string) {
    super(message);
    this.code = code;
    this.name = 'YaraServerError';
  }
}

export interface ServeOptions {
  readonly helper?: string;
  readonly threads: number;
  readonly timeoutSeconds: number; // libyara's own limit per file
  /** ms past timeoutSeconds the kiosk waits before it ends the server (it answers on its own first). */
  readonly graceMs?: number;
  /** Folders the sandboxed server may read (the spool); bound read-only at the same paths. */
  readonly readable: readonly string[];
  /** bubblewrap; null runs the server without a sandbox (tests of a machine without one). */
  readonly bwrapPath?: string | null;
}

/** The ready line: what the server loaded. */
export interface ServerReady {
  readonly rules: number;
  readonly public: number;
  readonly libyara: string;
}

/**
 * One long-running `portcullis-yara serve`, sandboxed (no network, nothing
 * writable, the compiled set and the spool read-only), answering scans by id.
 * Any crash, silence past the deadline or malformed answer ends it and fails
 * every waiting scan: the kiosk never reads "no answer" as "clean".
 */
export class YaraServer {
  readonly ready: ServerReady;
  readonly #child: ChildProcessByStdio<Writable, Readable, Readable>;
  readonly #waiting = new Map<string, { resolve: (a: ServeAnswer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #deadlineMs: number;
  #next = 0;
  #failure: YaraServerError | null = null;

  private constructor(child: ChildProcessByStdio<Writable, Readable, Readable>, ready: ServerReady, deadlineMs: number, lines: AsyncIterator<string>) {
    this.#child = child;
    this.ready = ready;
    this.#deadlineMs = deadlineMs;
    void this.#read(lines);
    child.on('exit', (code, signal) => this.#fail(new YaraServerError('YARA_ENGINE_DOWN', `the YARA engine ended (${signal ?? `exit ${String(code)}`})`)));
  }

  static async start(compiled: string, options: ServeOptions): Promise<YaraServer> {
    const helper = options.helper ?? yaraHelperPath();
    requireHelper(helper);
    const args = ['serve', '/rules.yarc', String(options.threads), String(options.timeoutSeconds)];
    const bwrap = options.bwrapPath === undefined ? '/usr/bin/bwrap' : options.bwrapPath;
    const child = bwrap === null
      ? spawn(helper, ['serve', compiled, ...args.slice(2)], { stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn(bwrap, [
        '--unshare-all', // no network, own PID and IPC namespaces
        '--cap-drop', 'ALL',
        '--die-with-parent',
        '--new-session',
        '--ro-bind', '/usr', '/usr',
        '--symlink', 'usr/lib', '/lib',
        '--symlink', 'usr/lib64', '/lib64',
        '--dev', '/dev',
        '--ro-bind', helper, '/portcullis-yara',
        '--ro-bind', compiled, '/rules.yarc',
        ...options.readable.flatMap((d) => ['--ro-bind', d, d]),
        '--remount-ro', '/', // bwrap's own root is a tmpfs: nothing in the sandbox is writable
        '--clearenv',
        '--chdir', '/',
        '--', '/portcullis-yara', ...args,
      ], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => { if (stderr.length < 4096) stderr += s; });
    const lines = createInterface({ input: child.stdout, crlfDelay: Infinity })[Symbol.asyncIterator]();
    const first = await Promise.race([
      lines.next(),
      new Promise<never>((_, reject) => child.once('error', reject)),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 120 s')), 120_000).unref()),
    ]).catch((error: unknown) => {
      child.kill('SIGKILL');
      throw new YaraRuleError('RULE_ENGINE_REJECTED', `the YARA engine did not start: ${String(error)} ${stderr.slice(0, 500)}`);
    });
    const ready = first.done === true ? null : (JSON.parse(first.value) as Partial<ServerReady> & { ready?: boolean; fatal?: string });
    if (ready === null || ready.ready !== true || typeof ready.rules !== 'number' || typeof ready.public !== 'number') {
      child.kill('SIGKILL');
      throw new YaraRuleError('RULE_ENGINE_REJECTED', `the YARA engine did not load the compiled rules: ${ready?.fatal ?? 'no ready line'} ${stderr.slice(0, 500)}`);
    }
    return new YaraServer(child, { rules: ready.rules, public: ready.public, libyara: String(ready.libyara) }, options.timeoutSeconds * 1000 + (options.graceMs ?? 30_000), lines);
  }

  /** Scans the file at `path` (a printable-ASCII path without line breaks in a folder the server may read). `probe` also counts the rules evaluated. */
  scan(path: string, probe = false): Promise<ServeAnswer> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (!/^\/[\x20-\x7e]+$/.test(path)) return Promise.reject(new YaraServerError('YARA_ENGINE_PROTOCOL', `cannot name ${JSON.stringify(path)} to the YARA engine`));
    const id = String(this.#next++);
    return new Promise<ServeAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail(new YaraServerError('YARA_ENGINE_TIMEOUT', `the YARA engine gave no answer within ${this.#deadlineMs / 1000} s: stopped`));
      }, this.#deadlineMs);
      this.#waiting.set(id, { resolve, reject, timer });
      this.#child.stdin.write(`${probe ? 'P' : 'S'} ${id} ${path}\n`);
    });
  }

  get failure(): YaraServerError | null {
    return this.#failure;
  }

  close(): void {
    this.#fail(new YaraServerError('YARA_ENGINE_DOWN', 'the YARA engine was stopped'));
  }

  async #read(lines: AsyncIterator<string>): Promise<void> {
    try {
      for (;;) {
        const step = await lines.next();
        if (step.done === true) break;
        let answer: (ServeAnswer & { id?: unknown }) | null = null;
        try {
          answer = JSON.parse(step.value) as ServeAnswer & { id?: unknown };
        } catch {
          // handled below
        }
        const waiting = answer !== null && typeof answer.id === 'string' ? this.#waiting.get(answer.id) : undefined;
        if (answer === null || waiting === undefined) {
          this.#fail(new YaraServerError('YARA_ENGINE_PROTOCOL', `the YARA engine answered something unexpected: ${step.value.slice(0, 200)}`));
          return;
        }
        this.#waiting.delete(answer.id as string);
        clearTimeout(waiting.timer);
        waiting.resolve(answer);
      }
    } catch {
      // the stream broke: the exit handler fails the waiting scans
    }
    this.#fail(new YaraServerError('YARA_ENGINE_DOWN', 'the YARA engine closed its output'));
  }

  #fail(error: YaraServerError): void {
    if (this.#failure === null) this.#failure = error;
    for (const [id, w] of this.#waiting) {
      clearTimeout(w.timer);
      w.reject(this.#failure);
      this.#waiting.delete(id);
    }
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}
