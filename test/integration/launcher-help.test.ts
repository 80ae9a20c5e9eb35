/**
 * The help of the entry points a person types first: `./portcullis help`
 * (the comment block of the launcher, nothing of its code) and
 * `node agent/sea/build.ts --help` (the usage, never a stack trace). Bad
 * input to either is a usage error (64).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');
const STACK = /\n\s+at /;

function run(command: string, args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(command, [...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('./portcullis help', () => {
  it('prints the commands and no line of the script itself', () => {
    const r = run(join(ROOT, 'portcullis'), ['help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Entry point for a fresh checkout/);
    for (const command of ['demo', 'test', 'kiosk ARGS...', 'agent ARGS...', 'setup']) expect(r.stdout).toContain(`./portcullis ${command}`);
    expect(r.stdout).not.toMatch(/set -euo pipefail|#!|\$\(|bindir/);
  });

  it('answers an unknown command with the same text and exit 64', () => {
    const r = run(join(ROOT, 'portcullis'), ['frobnicate']);
    expect(r.status).toBe(64);
    expect(r.stdout).toBe(run(join(ROOT, 'portcullis'), ['help']).stdout);
  });
});

describe('node agent/sea/build.ts', () => {
  it('--help prints the usage and the pinned Node it needs, and builds nothing', () => {
    const r = run(process.execPath, [join(ROOT, 'agent/sea/build.ts'), '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: node agent\/sea\/build\.ts/);
    expect(r.stdout).toContain('.tools/node-v');
    expect(`${r.stdout}${r.stderr}`).not.toMatch(STACK);
  });

  it.for([['--bogus'], ['--target', 'mac'], ['--out']])('%s is a usage error (64), not a stack trace', (args) => {
    const r = run(process.execPath, [join(ROOT, 'agent/sea/build.ts'), ...args]);
    expect(r.status).toBe(64);
    expect(r.stderr).toMatch(/usage: node agent\/sea\/build\.ts/);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(STACK);
  });
});
