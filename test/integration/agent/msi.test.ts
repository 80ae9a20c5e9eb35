/**
 * The MSI (agent/windows/build-msi.ts), built with wixl and msibuild and read
 * back with msiinfo: what Windows Installer will do with it is in its
 * tables. Installing and removing it runs under Wine's msiexec in the
 * Windows project (scripts/windows-smoke.sh); the ACLs (MsiLockPermissionsEx)
 * and starting the real service wrapper need Windows (docs/agent.md "MSI").
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildMsi, FOLDER_SDDL, PUBLIC_PROPERTIES } from '../../../agent/windows/build-msi.ts';
import { tempDir } from '../../support/agent-fixtures.ts';

let msi: string;
let dir: string;
const wrapperBytes = Buffer.from('stand-in for the service wrapper');
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** One table as rows of columns (msiinfo export: three header lines, then tab-separated rows). */
function table(name: string): string[][] {
  const text = execFileSync('msiinfo', ['export', msi, name], { encoding: 'utf8' });
  return text.split(/\r?\n/u).slice(3).filter((l) => l !== '').map((l) => l.split('\t'));
}
const row = (name: string, key: string): string[] | undefined => table(name).find((r) => r[0] === key);

beforeAll(() => {
  dir = tempDir('msi');
  writeFileSync(join(dir, 'agent.exe'), 'stand-in for portcullis-agent.exe');
  writeFileSync(join(dir, 'wrapper.exe'), wrapperBytes);
  msi = buildMsi({ agentExe: join(dir, 'agent.exe'), serviceWrapper: join(dir, 'wrapper.exe'), serviceWrapperSha256: sha(wrapperBytes), out: join(dir, 'portcullis-agent.msi'), version: '0.1.0' }).path;
}, 60_000);

describe('portcullis-agent.msi', () => {
  it('installs the agent, the service wrapper and its configuration, and the status helper into Program Files\\Portcullis', () => {
    expect(table('File').map((r) => r[2]).sort()).toEqual(['portcullis-agent-service.exe', 'portcullis-agent-service.xml', 'portcullis-agent.exe', 'status-tray.ps1']);
    expect(row('Directory', 'INSTALLDIR')).toEqual(['INSTALLDIR', 'ProgramFiles64Folder', 'Portcullis']);
  });

  it('registers PortcullisAgent as an automatic LocalSystem service, started at install, stopped and removed at uninstall', () => {
    const [, name, , type, start, , , , account, , , component] = row('ServiceInstall', 'ServiceInstall')!;
    expect({ name, type, start, account, component }).toEqual({ name: 'PortcullisAgent', type: '16', start: '2', account: 'LocalSystem', component: 'Service' });
    // msidbServiceControlEvent: 1 start at install, 2 stop at install, 32 stop at uninstall, 128 delete at uninstall.
    expect(row('ServiceControl', 'ServiceControl')?.slice(1, 3)).toEqual(['PortcullisAgent', String(1 + 2 + 32 + 128)]);
  });

  it('runs the set-up as LocalSystem after the files are in place and before the service starts, with the properties, on install only', () => {
    const [, type, source, target] = row('CustomAction', 'SetupHmi')!;
    expect(Number(type)).toBe(18 + 1024 + 2048); // an installed exe, deferred, not impersonated: LocalSystem
    expect(source).toBe('AgentExe');
    // A directory ends with a backslash: "\." keeps it from escaping the closing quote.
    expect(target).toBe('setup --config "[DATADIR]config.json" --destination "[DESTINATION]." --status-folder "[STATUSFOLDER]." --trust-bundle "[TRUSTBUNDLE]"');
    const sequence = Object.fromEntries(table('InstallExecuteSequence').map((r): [string, { condition: string | undefined; at: number }] => [r[0] ?? '', { condition: r[1], at: Number(r[2]) }]));
    expect(sequence.SetupHmi!.condition).toBe('NOT REMOVE~="ALL"');
    expect(sequence.SetupHmi!.at).toBeGreaterThan(sequence.InstallFiles!.at);
    expect(sequence.SetupHmi!.at).toBeLessThan(sequence.StartServices!.at);
    expect(sequence.SetupHmi!.at).toBeLessThan(sequence.InstallFinalize!.at);
  });

  it('takes the trust bundle, destination, status folder and storage policy as secure public properties', () => {
    const secure = row('Property', 'SecureCustomProperties')?.[1]?.split(';') ?? [];
    expect(PUBLIC_PROPERTIES.every((p) => secure.includes(p))).toBe(true);
    expect(row('Property', 'STORAGEPOLICY')?.[1]).toBe('1');
    expect(row('Property', 'ROOTDRIVE')?.[1]).toBe('C:\\');
    expect(row('Directory', 'DESTINATION')?.slice(1)).toEqual(['PORTCULLISROOT', 'Inbox']);
    expect(row('Directory', 'STATUSFOLDER')?.slice(1)).toEqual(['PORTCULLISROOT', 'Status']);
  });

  it('sets the folders\' ACLs: the data folder for SYSTEM and Administrators only, users read (never write) the rest', () => {
    const locks = Object.fromEntries(table('MsiLockPermissionsEx').map((r): [string, { table: string | undefined; sddl: string | undefined }] => [r[1] ?? '', { table: r[2], sddl: r[3] }]));
    expect(Object.keys(locks).sort()).toEqual(['DATADIR', 'DESTINATION', 'INSTALLDIR', 'PORTCULLISROOT', 'SERVICELOGS', 'STATUSFOLDER']);
    for (const dir of ['DATADIR', 'SERVICELOGS']) expect(locks[dir]).toEqual({ table: 'CreateFolder', sddl: FOLDER_SDDL.adminsOnly });
    for (const dir of ['INSTALLDIR', 'PORTCULLISROOT', 'DESTINATION', 'STATUSFOLDER']) expect(locks[dir]).toEqual({ table: 'CreateFolder', sddl: FOLDER_SDDL.usersRead });
    expect(FOLDER_SDDL.adminsOnly).not.toContain(';;;BU)');
    // Users (BU): read and execute only (FILE_GENERIC_READ | FILE_GENERIC_EXECUTE), and inheritance from above cut (P).
    expect(FOLDER_SDDL.usersRead).toMatch(/^O:BAG:SYD:PAI\(.*\(A;OICI;0x1200a9;;;BU\)$/u);
    expect(table('CreateFolder').map((r) => r[0]).sort()).toEqual(Object.keys(locks).sort());
  });

  it('sets the removable-storage deny policy and AutoRun off only with STORAGEPOLICY=1, and starts the status helper at logon', () => {
    const registry = table('Registry');
    const value = (name: string) => registry.find((r) => r[3] === name);
    expect(value('Deny_All')?.slice(1, 6)).toEqual(['2', 'Software\\Policies\\Microsoft\\Windows\\RemovableStorageDevices', 'Deny_All', '#1', 'StoragePolicy']);
    expect(value('NoDriveTypeAutoRun')?.slice(4, 6)).toEqual(['#255', 'StoragePolicy']);
    expect(row('Component', 'StoragePolicy')?.[4]).toBe('STORAGEPOLICY = "1"');
    expect(value('PortcullisStatus')?.[2]).toBe('Software\\Microsoft\\Windows\\CurrentVersion\\Run');
    expect(value('PortcullisStatus')?.[4]).toContain('-File "[#StatusTray]" -StatusFolder "[STATUSFOLDER]."');
  });

  it('refuses to package a service wrapper whose SHA-256 is not the one given', () => {
    expect(() => buildMsi({ agentExe: join(dir, 'agent.exe'), serviceWrapper: join(dir, 'wrapper.exe'), serviceWrapperSha256: '0'.repeat(64), out: join(dir, 'x.msi'), version: '0.1.0' })).toThrow(/SHA-256/u);
  });
});
