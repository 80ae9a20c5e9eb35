import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { AuditLog, verifyLogBytes } from './audit-log.ts';
import { mountFolderSource, windowsLetterSource, type DriveInfo, type DriveSource } from './drive-sources.ts';
import { main } from './main.ts';
import { loadWatchConfig } from './watch-config.ts';
import { lineNotifier, msgArguments, type HmiMessage } from './notify.ts';
import type { DriveReport } from './drive-report.ts';
import { StatusFolder } from './operator-status.ts';
import { chooseDestination, DriveWatcher, messageFor, runService } from './watch.ts';
import { DEFAULT_IDENTITY, makeDrive, makeTrust, tempDir, writeTrust } from '../test/support/agent-fixtures.ts';

async function until(condition: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(25);
  }
}

function fakeSource(): DriveSource & { drives: DriveInfo[] } {
  const source = { name: 'fake', drives: [] as DriveInfo[], list: () => Promise.resolve([...source.drives]) };
  return source;
}

describe('DriveWatcher', () => {
  it('reports drives present at start, then each arrival and removal once', async () => {
    const source = fakeSource();
    source.drives.push({ key: 'E', mount: 'E:\\', identity: null });
    const events: string[] = [];
    const watcher = new DriveWatcher({ source, intervalMs: 10_000, onArrive: (d) => events.push(`+${d.key}`), onRemove: (d) => events.push(`-${d.key}`), onError: () => events.push('error') });
    await watcher.poll();
    source.drives.push({ key: 'F', mount: 'F:\\', identity: null });
    await watcher.poll();
    await watcher.poll();
    source.drives.splice(0, 1);
    await watcher.poll();
    expect(events).toEqual(['+E', '+F', '-E']);
  });

  it('survives a source that fails and reports the error', async () => {
    const errors: unknown[] = [];
    const watcher = new DriveWatcher({ source: { name: 'broken', list: () => Promise.reject(new Error('lsblk died')) }, intervalMs: 10_000, onArrive: () => undefined, onRemove: () => undefined, onError: (e) => errors.push(e) });
    await watcher.poll();
    expect(errors).toHaveLength(1);
  });
});

describe('the windows-letters source', () => {
  it('lists only removable letters and asks CIM once per arrival', async () => {
    const present = new Set(['E', 'F']);
    const asked: string[] = [];
    const source = windowsLetterSource({
      stamp: (l) => Promise.resolve(present.has(l) ? { serial: `serial-${l}`, boot: null } : null),
      describe: (l) => {
        asked.push(l);
        return Promise.resolve({ letter: l, removable: l === 'E', identity: { ...DEFAULT_IDENTITY, capacity: null } });
      },
    });
    expect((await source.list()).map((d) => d.mount)).toEqual(['E:\\']);
    expect((await source.list()).map((d) => d.mount)).toEqual(['E:\\']);
    present.delete('E');
    expect(await source.list()).toEqual([]);
    present.add('E');
    await source.list();
    expect(asked).toEqual(['E', 'F', 'E']);
  });
});

describe('service mode', () => {
  it('notices a drive mounted under a watched folder, imports it, and logs its removal', async () => {
    const mountRoot = tempDir('media');
    const dest = tempDir('inbox');
    const trustPath = writeTrust({ policy: { requireMediaBinding: false } });
    const logPath = join(tempDir('log'), 'agent.jsonl');
    const drive = await makeDrive({ files: { 'README.txt': 'hello', 'fw/plc.bin': 'firmware' } });
    const messages: string[] = [];
    const reports: DriveReport[] = [];
    const controller = new AbortController();
    const service = runService(
      {
        source: mountFolderSource([mountRoot]),
        trustPath,
        destination: dest,
        log: new AuditLog(logPath, { hmi: 'HMI-3' }),
        notifier: lineNotifier((line) => messages.push(line)),
        intervalMs: 200,
        settleMs: 0,
        onReport: (r) => reports.push(r),
      },
      controller.signal,
    );
    await sleep(100);
    renameSync(drive.root, join(mountRoot, 'USB-STICK')); // a mount appears in one step
    await until(() => reports.length === 1);
    expect(readFileSync(join(dest, 'fw/plc.bin'), 'utf8')).toBe('firmware');
    expect(messages[0]).toMatch(/^\[HMI info\] Portcullis: checking drive /u); // before anything was read
    expect(messages[1]).toMatch(/^\[HMI ok\] Portcullis: drive imported/u);
    rmSync(join(mountRoot, 'USB-STICK'), { recursive: true });
    await until(() => readFileSync(logPath, 'utf8').includes('drive.removed'));
    controller.abort();
    await service;
    const chain = verifyLogBytes(readFileSync(logPath));
    expect(chain.ok).toBe(true);
    const events = chain.ok ? chain.entries.map((r) => r.event) : [];
    expect(events[0]).toBe('agent.started');
    expect(events).toEqual(expect.arrayContaining(['drive.arrived', 'drive.checked', 'file.imported', 'import.finished', 'drive.removed']));
    expect(events.at(-1)).toBe('agent.stopped');
  });

  it('aborts a drive removed before its import starts: nothing is imported', async () => {
    const source = fakeSource();
    const drive = await makeDrive({ files: { 'a.txt': 'a' } });
    const dest = tempDir('inbox');
    const controller = new AbortController();
    const reports: DriveReport[] = [];
    const service = runService(
      {
        source, trustPath: writeTrust({ policy: { requireMediaBinding: false } }), destination: dest, log: new AuditLog(join(tempDir('log'), 'l.jsonl'), { hmi: 'HMI' }),
        notifier: lineNotifier(() => undefined), intervalMs: 50, settleMs: 1000, onReport: (r) => reports.push(r),
      },
      controller.signal,
    );
    source.drives.push({ key: 'E', mount: drive.root, identity: null });
    await sleep(200);
    source.drives.length = 0;
    await sleep(200);
    controller.abort();
    await service;
    expect(reports).toEqual([]);
    expect(existsSync(join(dest, 'a.txt'))).toBe(false);
  });

  it('tells the HMI user when a drive is refused', async () => {
    const source = fakeSource();
    const drive = await makeDrive({ files: { 'a.txt': 'a' } });
    const messages: HmiMessage[] = [];
    const controller = new AbortController();
    const service = runService(
      {
        source, trustPath: writeTrust(), destination: tempDir('inbox'), log: new AuditLog(join(tempDir('log'), 'l.jsonl'), { hmi: 'HMI' }),
        notifier: {
          notify: (m) => {
            messages.push(m);
            return Promise.resolve();
          },
        }, intervalMs: 50, settleMs: 0,
      },
      controller.signal,
    );
    source.drives.push({ key: 'E', mount: drive.root, identity: { ...DEFAULT_IDENTITY, label: 'OTHER' } });
    await until(() => messages.length === 2);
    controller.abort();
    await service;
    expect(messages.map((m) => m.level)).toEqual(['info', 'refused']);
    expect(messages[1]?.text).toContain('MEDIA_MISMATCH');
  });

  it('tells the HMI user a drive is being checked, then what was copied and what was not, and leaves a per-file report users can read', async () => {
    const source = fakeSource();
    const drive = await makeDrive({ files: { 'README.txt': 'hello', 'tools/extra.exe': 'MZ', 'fw/plc.bin': 'firmware' }, unlisted: ['tools/extra.exe'] });
    const statusFolder = join(tempDir('status'), 'Status');
    const messages: HmiMessage[] = [];
    const states: string[] = [];
    const controller = new AbortController();
    const service = runService(
      {
        source, trustPath: writeTrust(), destination: tempDir('inbox'), log: new AuditLog(join(tempDir('log'), 'l.jsonl'), { hmi: 'HMI' }),
        notifier: {
          notify: (m) => {
            messages.push(m);
            // What a user's helper would see at that moment.
            states.push((JSON.parse(readFileSync(join(statusFolder, 'status.json'), 'utf8')) as { state: string }).state);
            return Promise.resolve();
          },
        },
        intervalMs: 50, settleMs: 0, statusFolder,
      },
      controller.signal,
    );
    source.drives.push({ key: 'E', mount: drive.root, identity: DEFAULT_IDENTITY });
    await until(() => messages.length === 2);
    controller.abort();
    await service;
    expect(messages.map((m) => m.level)).toEqual(['info', 'partial']);
    expect(states).toEqual(['checking', 'partial']);
    expect(messages[1]?.text).toContain('tools/extra.exe'); // the file that stayed out is named, with where the full list is
    expect(messages[1]?.text).toContain(join(statusFolder, 'reports'));
    const status = JSON.parse(readFileSync(join(statusFolder, 'status.json'), 'utf8')) as { state: string; report: string };
    const report = readFileSync(status.report, 'utf8');
    expect(report).toBe(readFileSync(join(statusFolder, 'latest.txt'), 'utf8'));
    expect(report.split('\r\n').filter((l) => l.startsWith('NOT COPIED')).map((l) => /\(([A-Z_]+)\)$/u.exec(l)?.[1])).toEqual(['FILE_UNLISTED']);
    expect(report.split('\r\n').filter((l) => l.startsWith('copied')).length).toBe(2);
    // Readable by anyone on POSIX (on Windows the installer gives Users read on the folder).
    for (const file of ['status.json', 'status.txt', 'latest.txt']) expect(statSync(join(statusFolder, file)).mode & 0o004).toBe(0o004);
  });
});

describe('the operator status folder', () => {
  it('writes progress while files are checked, at most once a second, and always the last file', () => {
    const folder = join(tempDir('status'), 'Status');
    const status = new StatusFolder({ folder });
    const drive = { mount: 'E:\\', label: 'LINE3' };
    const read = () => JSON.parse(readFileSync(join(folder, 'status.json'), 'utf8')) as { state: string; progress: { filesDone: number } | null };
    status.checking(drive);
    expect(read()).toMatchObject({ state: 'checking', progress: null });
    status.progress(drive, { filesDone: 1, filesTotal: 3, bytesDone: 10, bytesTotal: 30 });
    expect(read()).toMatchObject({ state: 'importing', progress: { filesDone: 1 } });
    status.progress(drive, { filesDone: 2, filesTotal: 3, bytesDone: 20, bytesTotal: 30 }); // within the second: skipped
    expect(read().progress?.filesDone).toBe(1);
    status.progress(drive, { filesDone: 3, filesTotal: 3, bytesDone: 30, bytesTotal: 30 }); // the last one is always written
    expect(read().progress?.filesDone).toBe(3);
  });

  it('never stops an import when the status folder cannot be written, and says so on the service output', () => {
    const said: string[] = [];
    const status = new StatusFolder({ folder: '/proc/portcullis-status', say: (l) => said.push(l) });
    expect(() => status.checking({ mount: 'E:\\', label: null })).not.toThrow();
    expect(said.length).toBe(1);
  });
});

describe('service configuration and messages', () => {
  it('requires config and policy destinations to agree', () => {
    expect(chooseDestination('/srv/in', makeTrust())).toBe('/srv/in');
    expect(chooseDestination(null, makeTrust({ policy: { destination: '/srv/in' } }))).toBe('/srv/in');
    expect(() => chooseDestination('/srv/a', makeTrust({ policy: { destination: '/srv/b' } }))).toThrow(expect.objectContaining({ code: 'DESTINATION_INVALID' }));
    expect(() => chooseDestination(null, makeTrust())).toThrow(expect.objectContaining({ code: 'DESTINATION_INVALID' }));
  });

  it('reads the example configuration shipped for Windows, resolving paths beside it', () => {
    const path = join(import.meta.dirname, './windows/config.example.json');
    const config = loadWatchConfig(path);
    expect(config).toMatchObject({ source: 'auto', pollIntervalMs: 2000, settleMs: 2000, notify: 'auto', requireStoragePolicy: true });
    expect(config.destination).toContain('Inbox');
    expect(config.trust).toBe(join(import.meta.dirname, './windows/trust.json'));
  });

  it('refuses a watch configuration that fails its schema (exit 1, CONFIG_INVALID)', async () => {
    const dir = tempDir('cfg');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ formatVersion: 1, trust: 'trust.json', log: 'log.jsonl', pollIntervalSeconds: 0 }));
    const err: string[] = [];
    expect(await main(['watch', '--config', join(dir, 'config.json')], { stdout: () => undefined, stderr: (t) => void err.push(t) })).toBe(1);
    expect(err.join('')).toContain('CONFIG_INVALID: ');
    expect(err.join('')).toContain('pollIntervalSeconds');
  });

  it('escapes and clips what msg.exe shows, and passes it as one argument without a shell', () => {
    const args = msgArguments({ level: 'refused', title: 'Portcullis: drive refused', text: `label \u202eexe.pdf\n${'x'.repeat(400)}` });
    expect(args.slice(0, 2)).toEqual(['*', '/TIME:120']);
    expect(args[2]).toContain('\\u{202e}');
    expect(args[2]!.length).toBeLessThanOrEqual(255);
  });

  it('words the outcome for the HMI user', () => {
    const base = { mode: 'import', drive: 'E:\\', approved: true, code: 'APPROVED', reason: '', manifestDigest: null, keyId: null, kiosk: null, issuedAt: null, expiresAt: null, destination: 'C:\\Inbox', files: [] } as const;
    expect(messageFor({ ...base, counts: { permitted: 0, imported: 2, skipped: 0, refused: 1 } }).level).toBe('partial');
    expect(messageFor({ ...base, counts: { permitted: 0, imported: 0, skipped: 0, refused: 1 } }).level).toBe('refused');
    expect(messageFor({ ...base, approved: false, code: 'KEY_REVOKED', counts: { permitted: 0, imported: 0, skipped: 0, refused: 0 } }).text).toContain('KEY_REVOKED');
    // Refused files are named in the summary (up to three, then a count).
    const refused = (n: number) => ({ path: `f${n}.bin`, outcome: 'refused', code: 'FILE_HASH_MISMATCH', reason: 'r', destination: null, digests: null }) as const;
    const five = messageFor({ ...base, files: [1, 2, 3, 4, 5].map(refused), counts: { permitted: 0, imported: 1, skipped: 0, refused: 5 } }).text;
    expect(['f1.bin', 'f2.bin', 'f3.bin', 'f4.bin'].map((f) => five.includes(f))).toEqual([true, true, true, false]);
  });
});

describe('mount-folder source', () => {
  it('treats real subfolders as drives and ignores files and symlinks', async () => {
    const root = tempDir('media');
    mkdirSync(join(root, 'STICK'));
    writeFileSync(join(root, 'note.txt'), 'x');
    symlinkSync('/etc', join(root, 'etc-link'));
    expect((await mountFolderSource([root, join(root, 'missing')]).list()).map((d) => d.mount)).toEqual([join(root, 'STICK')]);
  });
});
