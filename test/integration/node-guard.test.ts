/**
 * The launchers' guard: the kiosk must run with its V8 flags (its memory stays
 * flat only with them), however it is started; the agent runs in-process.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { KIOSK_NODE_FLAGS } from '../../scripts/node-guard.js';

const dir = mkdtempSync(join(tmpdir(), 'node-guard-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const guard = pathToFileURL(join(import.meta.dirname, '../../scripts/node-guard.js')).href;

/** A main module that reports how it was run, and a launcher that starts it through the guard. */
function launcher(flags: readonly string[]): string {
  const main = join(dir, 'main.mjs');
  writeFileSync(main, `export async function main(argv) {
    console.log(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, argv }));
    if (argv.includes('wait')) {
      const alive = setInterval(() => {}, 1000); // a signal listener alone keeps no process alive
      const stopped = new Promise((resolve) => process.once('SIGTERM', resolve));
      console.log(JSON.stringify({ ready: true }));
      await stopped;
      clearInterval(alive);
      console.log(JSON.stringify({ stopped: true }));
      return 3;
    }
    return argv.includes('fail') ? 7 : 0;
  }
  if (import.meta.main) process.exitCode = await main(process.argv.slice(2));\n`);
  const bin = join(dir, `bin-${flags.length}.mjs`);
  writeFileSync(bin, `import { runOnSupportedNode } from ${JSON.stringify(guard)};
console.log(JSON.stringify({ launcherPid: process.pid }));
runOnSupportedNode(new URL(${JSON.stringify(pathToFileURL(main).href)}), 'test', ${JSON.stringify(flags)});\n`);
  return bin;
}

function run(bin: string, args: string[], nodeArgs: string[] = []): { status: number | null; lines: Array<Record<string, unknown>> } {
  const r = spawnSync(process.execPath, [...nodeArgs, bin, ...args], { encoding: 'utf8' });
  return { status: r.status, lines: r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('runOnSupportedNode', () => {
  it('re-runs the kiosk with its V8 flags when started without them, passing arguments and exit code through', () => {
    const { status, lines } = run(launcher(KIOSK_NODE_FLAGS), ['scan', 'fail']);
    expect(status).toBe(7);
    const [launched, ran] = lines as [{ launcherPid: number }, { pid: number; execArgv: string[]; argv: string[] }];
    expect(ran.pid).not.toBe(launched.launcherPid);
    for (const flag of KIOSK_NODE_FLAGS) expect(ran.execArgv).toContain(flag);
    expect(ran.argv).toEqual(['scan', 'fail']);
  });

  it('runs in-process when the flags are already there (the shebang gives them) or none are asked for', () => {
    const withFlags = run(launcher(KIOSK_NODE_FLAGS), ['help'], [...KIOSK_NODE_FLAGS]);
    expect(withFlags.status).toBe(0);
    expect((withFlags.lines[1] as { pid: number }).pid).toBe((withFlags.lines[0] as { launcherPid: number }).launcherPid);
    const agent = run(launcher([]), ['verify']);
    expect((agent.lines[1] as { pid: number }).pid).toBe((agent.lines[0] as { launcherPid: number }).launcherPid);
  });

  it('passes a SIGTERM sent to the launcher on to the kiosk, which stops cleanly', { timeout: 20_000 }, async () => {
    const parent = spawn(process.execPath, [launcher(KIOSK_NODE_FLAGS), 'run', 'wait'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    try {
      const exited = new Promise<number | null>((resolve) => parent.on('exit', (code) => resolve(code)));
      await new Promise<void>((resolve) => parent.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('"ready":true')) resolve(); }));
      parent.kill('SIGTERM');
      expect(await exited).toBe(3);
      expect(out).toContain('"stopped":true');
    } finally {
      // A broken forward leaves both processes waiting: end them, so the run does not hang.
      const child = /"pid":(\d+)/.exec(out)?.[1];
      if (child) try { process.kill(Number(child), 'SIGKILL'); } catch { /* already ended */ }
      parent.kill('SIGKILL');
    }
  });

  it('ends by the same signal when the kiosk is killed by one', () => {
    const bin = launcher(KIOSK_NODE_FLAGS);
    const main = join(dir, 'main.mjs');
    writeFileSync(main, 'export async function main() { process.kill(process.pid, "SIGKILL"); }\nif (import.meta.main) await main();\n');
    const r = spawnSync(process.execPath, [bin], { encoding: 'utf8' });
    expect(r.signal).toBe('SIGKILL');
  });

  it('is the same set of flags in every kiosk launcher: the shebang and ./portcullis', () => {
    const shebang = readFileSync(join(import.meta.dirname, '../../kiosk/bin/portcullis-kiosk.js'), 'utf8').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${KIOSK_NODE_FLAGS.join(' ')}`);
    const script = readFileSync(join(import.meta.dirname, '../../portcullis'), 'utf8');
    expect(/^kiosk_flags="(.*)"$/m.exec(script)?.[1]).toBe(KIOSK_NODE_FLAGS.join(' '));
    expect(script).toMatch(/kiosk\) exec node \$kiosk_flags /);
  });

  it('names V8 flags that this Node accepts', () => {
    expect(execFileSync(process.execPath, [...KIOSK_NODE_FLAGS, '-e', 'console.log("ok")'], { encoding: 'utf8' }).trim()).toBe('ok');
  });
});
