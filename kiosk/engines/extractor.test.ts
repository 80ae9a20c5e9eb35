/**
 * The extractor's sandbox, run for real (bubblewrap from Debian): what a
 * parser taken over by a hostile archive could reach. The sandbox's own
 * command line is reused with a probe tool in libarchive's place.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createExtractor, EXTRACTOR_DEFAULTS, ExtractorError, proveExtractor, sandboxArgs } from './extractor.ts';

const work = mkdtempSync(join(tmpdir(), 'portcullis-extractor-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const LIMITS = { cpuSeconds: 5, maxOutputBytes: 1024 * 1024 };

/** The sandbox's command line with `tool` (and its arguments) where the decompressor would run. */
function sandboxWith(tool: string): string {
  return `${EXTRACTOR_DEFAULTS.bwrapPath} ${sandboxArgs(EXTRACTOR_DEFAULTS, [], LIMITS).map((a) => `'${a}'`).join(' ')} ${tool}`;
}

/** Runs `command` (a program under /usr, no arguments) where a decompressor would run, with `input` on standard input. */
function inSandbox(command: string, input = 'input bytes\n'): { stdout: string; stderr: string; status: number | null } {
  const path = join(work, 'input');
  writeFileSync(path, input);
  const fd = openSync(path, 'r');
  try {
    const r = spawnSync(EXTRACTOR_DEFAULTS.bwrapPath, sandboxArgs(EXTRACTOR_DEFAULTS, [command], LIMITS), { stdio: [fd, 'pipe', 'pipe'] });
    return { stdout: r.stdout.toString(), stderr: r.stderr.toString(), status: r.status };
  } finally {
    closeSync(fd);
  }
}

let counter = 0;
const scratch = (): { path: string; fd: number } => {
  const path = join(work, `sample-${counter++}`);
  return { path, fd: openSync(path, 'wx', 0o600) };
};

describe('the extractor\'s sandbox', () => {
  it('runs the parser as nobody with no capabilities and no environment but its locale', () => {
    expect(inSandbox('/usr/bin/id').stdout.trim()).toBe('uid=65534 gid=65534 groups=65534');
    const dump = spawnSync('sh', ['-c', sandboxWith('/usr/bin/setpriv -d')]).stdout.toString();
    expect(dump).toMatch(/^no_new_privs: 1$/m);
    expect(dump).toMatch(/^Capability bounding set: \[none\]$/m);
    expect(dump).toMatch(/^Parent death signal: KILL$/m);
    expect(inSandbox('/usr/bin/env').stdout.trim().split('\n').sort()).toEqual(['LANG=C.UTF-8', 'PWD=/']);
  });

  it('shows the parser no file of the kiosk: only /usr, a minimal /dev and its input on standard input', () => {
    expect(inSandbox('/usr/bin/ls').stdout.trim().split('\n').sort()).toEqual(['bin', 'dev', 'lib', 'lib64', 'usr']);
    expect(inSandbox('/usr/bin/cat').stdout).toBe('input bytes\n');
  });

  it('gives the parser no network: a namespace of its own with nothing but loopback', () => {
    // /sys is not mounted; the kernel's own view of the network namespace comes through `ip` via netlink.
    const ip = spawnSync('sh', ['-c', sandboxWith('/usr/sbin/ip -o link')]);
    const links = ip.stdout.toString().trim().split('\n');
    expect(links).toHaveLength(1);
    expect(links[0]).toMatch(/^1: lo: /);
  });

  it('proves itself at start-up, and says what to install when it cannot run', async () => {
    await expect(proveExtractor(createExtractor(), scratch)).resolves.toBeUndefined();
    const missing = createExtractor({ bwrapPath: join(work, 'no-bwrap') });
    await expect(proveExtractor(missing, scratch)).rejects.toBeInstanceOf(ExtractorError);
    await expect(proveExtractor(missing, scratch)).rejects.toThrow(/bubblewrap.*libarchive-tools/);
    const wrongTool = createExtractor({ commands: { gzip: ['/usr/bin/false'] } });
    await expect(proveExtractor(wrongTool, scratch)).rejects.toMatchObject({ code: 'EXTRACTOR_UNAVAILABLE' });
  });
});
