import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog, verifyLogBytes } from './audit-log.ts';
import type { DriveSource } from './drive-sources.ts';
import { main } from './main.ts';
import type { HmiMessage, Notifier } from './notify.ts';
import {
  parseStoragePolicy, readStoragePolicy, regQueryArguments, STORAGE_POLICY_KEY, StoragePolicyMonitor, type RegOutput, type RegRunner,
  type StoragePolicyReading,
} from './storage-policy.ts';
import { loadWatchConfig } from './watch-config.ts';
import { runService } from './watch.ts';
import { MemoryLog, tempDir, writeTrust } from '../test/support/agent-fixtures.ts';

const HEADER = `${STORAGE_POLICY_KEY.replace('HKLM', 'HKEY_LOCAL_MACHINE')}`;

/** What reg.exe prints on an English build: a blank line, the key, the value line indented by four spaces. */
const dword = (hex: string): RegOutput => ({ exitCode: 0, stdout: `\r\n${HEADER}\r\n    Deny_All    REG_DWORD    ${hex}\r\n\r\n`, stderr: '' });
const MISSING: RegOutput = { exitCode: 1, stdout: '', stderr: 'ERROR: The system was unable to find the specified registry key or value.\r\n' };
const GERMAN_MISSING: RegOutput = { exitCode: 1, stdout: '', stderr: 'FEHLER: Der angegebene Registrierungsschlüssel bzw. Wert wurde nicht gefunden.\r\n' };

function runner(...answers: Array<RegOutput | Error>): RegRunner & { calls: Array<readonly string[]> } {
  const calls: Array<readonly string[]> = [];
  const run = (args: readonly string[]): Promise<RegOutput> => {
    calls.push(args);
    const answer = answers[Math.min(calls.length, answers.length) - 1]!;
    return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
  };
  return Object.assign(run, { calls });
}

function memoryNotifier(): Notifier & { messages: HmiMessage[] } {
  const messages: HmiMessage[] = [];
  return {
    messages,
    notify: (m) => {
      messages.push(m);
      return Promise.resolve();
    },
  };
}

describe('reading Deny_All from reg.exe', () => {
  it('asks reg.exe for exactly Deny_All under the policy key, in the 64-bit view', async () => {
    const run = runner(dword('0x1'));
    await readStoragePolicy(run);
    expect(run.calls).toEqual([['query', 'HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\RemovableStorageDevices', '/v', 'Deny_All', '/reg:64']]);
    expect(regQueryArguments()).toEqual(run.calls[0]);
  });

  it('calls the policy in force when Deny_All is the DWORD 1', async () => {
    expect(await readStoragePolicy(runner(dword('0x1')))).toEqual({ inForce: true, detail: 'Deny_All = 1' });
  });

  it('calls the policy off when Deny_All is 0 or any other number', async () => {
    expect(await readStoragePolicy(runner(dword('0x0')))).toEqual({ inForce: false, detail: 'Deny_All = 0, not 1' });
    expect((await readStoragePolicy(runner(dword('0xffffffff')))).inForce).toBe(false);
  });

  it('calls the policy off when the value or key is missing, whatever the language of the message', async () => {
    const english = await readStoragePolicy(runner(MISSING));
    expect(english.inForce).toBe(false);
    expect(english.detail).toContain('Deny_All is not set or cannot be read');
    const german = await readStoragePolicy(runner(GERMAN_MISSING));
    expect(german.inForce).toBe(false);
    expect(german.detail).toContain('FEHLER');
  });

  it('calls the policy off when reg.exe cannot be run, is killed, or exits oddly', async () => {
    const missingTool = await readStoragePolicy(runner(Object.assign(new Error('spawn C:\\Windows\\System32\\reg.exe ENOENT'), { code: 'ENOENT' })));
    expect(missingTool).toMatchObject({ inForce: false });
    expect(missingTool.detail).toContain('reg.exe could not be run');
    expect((await readStoragePolicy(runner({ exitCode: null, stdout: '', stderr: '' }))).detail).toContain('killed');
    expect((await readStoragePolicy(runner({ exitCode: 5, stdout: '', stderr: '' }))).detail).toContain('exit code 5');
  });

  it('finds the REG_DWORD line in a layout other than the English one (tabs, no indent, other header lines)', () => {
    const localized: RegOutput = {
      exitCode: 0,
      stdout: `${HEADER}\nDeny_All\tREG_DWORD\t0x00000001\nFin de la recherche : 1 correspondance(s) trouvée(s).\n`,
      stderr: '',
    };
    expect(parseStoragePolicy(localized)).toEqual({ inForce: true, detail: 'Deny_All = 1' });
    expect(parseStoragePolicy({ ...localized, stdout: localized.stdout.replace('Deny_All', 'DENY_ALL') }).inForce).toBe(true);
  });

  it('refuses anything but a single REG_DWORD: a string "1", a look-alike name, two lines', () => {
    const out = (body: string): RegOutput => ({ exitCode: 0, stdout: `\r\n${HEADER}\r\n${body}\r\n`, stderr: '' });
    expect(parseStoragePolicy(out('    Deny_All    REG_SZ    1'))).toEqual({ inForce: false, detail: 'Deny_All is REG_SZ, not REG_DWORD: Windows ignores it' });
    expect(parseStoragePolicy(out('    Deny_All_Old    REG_DWORD    0x1')).inForce).toBe(false);
    expect(parseStoragePolicy(out('    Deny_All    REG_DWORD    0x1\r\n    Deny_All    REG_DWORD    0x0')).detail).toBe('expected 1 Deny_All line in reg.exe\'s answer, got 2');
    expect(parseStoragePolicy(out('    Deny_All    REG_DWORD    one')).inForce).toBe(false);
  });
});

describe('the storage-policy monitor', () => {
  function monitor(readings: StoragePolicyReading[], log = new MemoryLog()): { m: StoragePolicyMonitor; log: MemoryLog; notifier: ReturnType<typeof memoryNotifier>; said: string[] } {
    const notifier = memoryNotifier();
    const said: string[] = [];
    let i = 0;
    const m = new StoragePolicyMonitor({
      required: true,
      read: () => Promise.resolve(readings[Math.min(i++, readings.length - 1)]!),
      log,
      notifier,
      say: (line) => said.push(line),
    });
    return { m, log, notifier, said };
  }
  const ON = { inForce: true, detail: 'Deny_All = 1' };
  const OFF = { inForce: false, detail: 'Deny_All = 0, not 1' };
  const MISSING_VALUE = { inForce: false, detail: 'Deny_All is not set or cannot be read' };

  it('logs each change once, not every check, and tells the HMI when it goes off and when it comes back', async () => {
    const { m, log, notifier, said } = monitor([ON, ON, OFF, OFF, MISSING_VALUE, ON, ON]);
    for (let i = 0; i < 7; i++) await m.check();
    expect(log.events.map((e) => [e.event, e.code, e.outcome])).toEqual([
      ['agent.storage-policy', 'STORAGE_POLICY_ON', 'info'],
      ['agent.storage-policy', 'STORAGE_POLICY_OFF', 'failed'],
      ['agent.storage-policy', 'STORAGE_POLICY_ON', 'info'],
    ]);
    expect(notifier.messages.map((n) => n.level)).toEqual(['error', 'ok']);
    expect(notifier.messages[0]?.text).toContain('STORAGE_POLICY_OFF');
    expect(said).toHaveLength(3);
    expect(said[1]).toContain('WARNING: STORAGE_POLICY_OFF');
  });

  it('tells the HMI at start-up when the policy is off from the first check', async () => {
    const { m, log, notifier } = monitor([MISSING_VALUE]);
    await m.check();
    expect(log.events.map((e) => e.code)).toEqual(['STORAGE_POLICY_OFF']);
    expect(log.events[0]?.reason).toContain('Deny_All is not set');
    expect(notifier.messages).toHaveLength(1);
  });

  it('records a change again at the next check when the log could not take it', async () => {
    const log = new MemoryLog();
    log.failAfter = 0;
    const { m, notifier } = monitor([OFF], log);
    await m.check();
    expect(log.events).toEqual([]);
    expect(notifier.messages).toEqual([]);
    log.failAfter = Number.POSITIVE_INFINITY;
    await m.check();
    expect(log.events.map((e) => e.code)).toEqual(['STORAGE_POLICY_OFF']);
    expect(notifier.messages).toHaveLength(1);
  });

  it('when the configuration opts out, logs that once as a warning and never reads the registry', async () => {
    const log = new MemoryLog();
    const said: string[] = [];
    let reads = 0;
    const m = new StoragePolicyMonitor({
      required: false,
      read: () => {
        reads++;
        return Promise.resolve(ON);
      },
      log,
      notifier: memoryNotifier(),
      say: (line) => said.push(line),
      intervalMs: 1,
    });
    await m.start();
    await new Promise((r) => setTimeout(r, 20));
    await m.stop();
    expect(log.events.map((e) => e.code)).toEqual(['STORAGE_POLICY_NOT_REQUIRED']);
    expect(said[0]).toContain('WARNING');
    expect(reads).toBe(0);
  });
});

describe('the service checks the storage policy', () => {
  it('at start-up before any drive, and again on its schedule, logging the change into the hash chain', async () => {
    const logPath = join(tempDir('log'), 'agent.jsonl');
    const reg = runner(MISSING, MISSING, dword('0x1'));
    const notifier = memoryNotifier();
    const source: DriveSource = { name: 'none', list: () => Promise.resolve([]) };
    const controller = new AbortController();
    const service = runService(
      {
        source, trustPath: writeTrust(), destination: tempDir('inbox'), log: new AuditLog(logPath, { hmi: 'HMI-3' }), notifier,
        intervalMs: 10_000, settleMs: 0, storagePolicy: { required: true, read: () => readStoragePolicy(reg), intervalMs: 5 },
      },
      controller.signal,
    );
    const end = Date.now() + 5000;
    while (reg.calls.length < 4 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    await service;
    const chain = verifyLogBytes(readFileSync(logPath));
    expect(chain.ok).toBe(true);
    const records = chain.ok ? chain.entries.map((r) => `${r.event} ${r.code}`) : [];
    expect(records).toEqual(['agent.started SERVICE_STARTED', 'agent.storage-policy STORAGE_POLICY_OFF', 'agent.storage-policy STORAGE_POLICY_ON', 'agent.stopped SERVICE_STOPPED']);
    expect(notifier.messages.map((n) => n.level)).toEqual(['error', 'ok']);
  });
});

describe('requireStoragePolicy in the watch configuration', () => {
  function configWith(extra: Record<string, unknown>): string {
    const path = join(tempDir('cfg'), 'config.json');
    writeFileSync(path, JSON.stringify({ formatVersion: 1, trust: 'trust.json', log: 'log.jsonl', ...extra }));
    return path;
  }

  it('defaults to true and may be set to false', () => {
    expect(loadWatchConfig(configWith({})).requireStoragePolicy).toBe(true);
    expect(loadWatchConfig(configWith({ requireStoragePolicy: false })).requireStoragePolicy).toBe(false);
  });

  it('refuses a value that is not a boolean (exit 1, CONFIG_INVALID naming the field)', async () => {
    const err: string[] = [];
    expect(await main(['watch', '--config', configWith({ requireStoragePolicy: 'no' })], { stdout: () => undefined, stderr: (t) => void err.push(t) })).toBe(1);
    expect(err.join('')).toContain('CONFIG_INVALID');
    expect(err.join('')).toContain('requireStoragePolicy');
  });
});
