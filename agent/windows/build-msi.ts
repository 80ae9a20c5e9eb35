/**
 * Builds portcullis-agent.msi on Linux with Debian's msitools (wixl, msibuild),
 * for deployment by GPO, SCCM/ConfigMgr or Intune:
 *
 *   node agent/windows/build-msi.ts --agent-exe var/sea/portcullis-agent.exe \
 *       --service-wrapper WinSW-x64.exe --service-wrapper-sha256 HEX [--out var/sea/portcullis-agent.msi]
 *
 *   msiexec /i portcullis-agent.msi /qn TRUSTBUNDLE=\\server\share\kiosks.pem [DESTINATION=D:\Plant\Inbox]
 *       [STATUSFOLDER=D:\Plant\Status] [STORAGEPOLICY=0] /l*v install.log
 *
 * What it installs (docs/agent.md "MSI"): the agent and the service wrapper
 * (WinSW, which the Service Control Manager starts: a Node executable cannot
 * speak its protocol) with the wrapper's configuration in
 * %ProgramFiles%\Portcullis; the service PortcullisAgent (LocalSystem,
 * automatic, started at install, stopped and removed at uninstall); the data
 * folder %ProgramData%\Portcullis, the destination and the status folder
 * with their ACLs (MsiLockPermissionsEx: SDDL, Windows Installer 5.0); the
 * removable-storage deny policy and AutoRun off (STORAGEPOLICY=1, the
 * default); the per-user status helper started at logon. A custom action runs
 * `portcullis-agent.exe setup` as LocalSystem to write the trust store from
 * TRUSTBUNDLE and the configuration (agent/setup-hmi.ts): never overwriting,
 * failing the install on a missing or bad bundle.
 *
 * wixl 0.101 has no Component conditions, no LockPermissions and sequences a
 * deferred custom action after InstallFinalize, so the database is finished
 * with msibuild's SQL after wixl has written it (finishQueries).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

export const SERVICE_NAME = 'PortcullisAgent';
/** Stays the same for every version: Windows Installer finds the installed product by it (major upgrades). */
export const UPGRADE_CODE = '2F0E3D4C-5B6A-4978-8695-A4B3C2D1E0F9';

/** SDDL of the folders, as install.ps1 sets them: owner Administrators, protected from inheritance. */
export const FOLDER_SDDL = {
  /** Program files, the destination and its parent, the status folder: SYSTEM and Administrators full control, Users read and execute. */
  usersRead: 'O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)',
  /** The data folder (configuration, trust store, log): SYSTEM and Administrators only. */
  adminsOnly: 'O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)',
} as const;

/** The public properties an administrator may set on the msiexec command line. */
export const PUBLIC_PROPERTIES = ['TRUSTBUNDLE', 'DESTINATION', 'STATUSFOLDER', 'STORAGEPOLICY'] as const;

export interface MsiSources {
  /** Product version, three numbers (Windows Installer compares the first three). */
  readonly version: string;
  /** Start the service at install (the shipped MSI does); false only for tests under Wine, where no wrapper can run. */
  readonly startService?: boolean;
  /** File names in the staging folder wixl runs in. */
  readonly agentExe: string;
  readonly serviceWrapper: string;
  readonly serviceWrapperXml: string;
  readonly statusTray: string;
}

/** A GUID derived from a name (stable across builds): SHA-256, formatted as a version-5-like UUID. */
export function stableGuid(name: string): string {
  const h = createHash('sha256').update(`portcullis-agent msi ${name}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex').toUpperCase();
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

const xmlText = (s: string): string => s.replace(/&/gu, '&amp;').replace(/</gu, '&lt;').replace(/>/gu, '&gt;').replace(/"/gu, '&quot;');

/** WinSW's configuration: it starts the agent's service mode and stops it with Ctrl+C (docs/agent.md "Rolling it out"). */
export function serviceWrapperXml(): string {
  return [
    '<service>',
    `  <id>${SERVICE_NAME}</id>`,
    '  <name>Portcullis HMI agent</name>',
    '  <description>Lets files from USB drives onto this HMI only when a Portcullis kiosk manifest vouches for every byte.</description>',
    '  <executable>%BASE%\\portcullis-agent.exe</executable>',
    '  <arguments>watch --config "%ProgramData%\\Portcullis\\config.json"</arguments>',
    '  <stoptimeout>30 sec</stoptimeout>',
    '  <onfailure action="restart" delay="10 sec" />',
    '  <logpath>%ProgramData%\\Portcullis\\service-logs</logpath>',
    '  <log mode="roll-by-size"><sizeThreshold>10240</sizeThreshold><keepFiles>8</keepFiles></log>',
    '</service>',
    '',
  ].join('\r\n');
}

/**
 * The WiX source (wixl's dialect of WiX 3). A directory given on the command
 * line ends with a backslash, which before a closing quote would escape the
 * quote in the C runtime's argument parsing: the custom action's paths end
 * in "\." instead, which the agent resolves away.
 */
export function productWxs(s: MsiSources): string {
  const guid = (name: string): string => stableGuid(`${name} component`);
  const folder = (id: string): string => `          <Component Id="${id}Folder" Guid="${guid(id)}" Win64="yes"><CreateFolder/></Component>`;
  const powershell = '[System64Folder]WindowsPowerShell\\v1.0\\powershell.exe';
  return `<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="${stableGuid(`product ${s.version}`)}" Name="Portcullis HMI agent" Language="1033" Version="${xmlText(s.version)}" Manufacturer="Portcullis project" UpgradeCode="${UPGRADE_CODE}">
    <Package InstallerVersion="500" Compressed="yes" InstallScope="perMachine" Description="Portcullis HMI agent ${xmlText(s.version)}" Comments="Lets files from USB drives onto this HMI only when a Portcullis kiosk manifest vouches for every byte."/>
    <MajorUpgrade DowngradeErrorMessage="A newer Portcullis HMI agent is already installed."/>
    <Media Id="1" Cabinet="agent.cab" EmbedCab="yes"/>
    <Property Id="ROOTDRIVE" Value="C:\\"/>
    <Property Id="STORAGEPOLICY" Value="1"/>
    <Property Id="ARPNOMODIFY" Value="1"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFiles64Folder">
        <Directory Id="INSTALLDIR" Name="Portcullis">
          <Component Id="Agent" Guid="${guid('Agent')}" Win64="yes">
            <File Id="AgentExe" Name="portcullis-agent.exe" Source="${xmlText(s.agentExe)}" KeyPath="yes"/>
            <CreateFolder/>
          </Component>
          <Component Id="Service" Guid="${guid('Service')}" Win64="yes">
            <File Id="ServiceWrapper" Name="portcullis-agent-service.exe" Source="${xmlText(s.serviceWrapper)}" KeyPath="yes"/>
            <File Id="ServiceWrapperXml" Name="portcullis-agent-service.xml" Source="${xmlText(s.serviceWrapperXml)}"/>
            <ServiceInstall Id="ServiceInstall" Name="${SERVICE_NAME}" DisplayName="Portcullis HMI agent" Description="Lets files from USB drives onto this HMI only when a Portcullis kiosk manifest vouches for every byte." Type="ownProcess" Start="auto" ErrorControl="normal" Account="LocalSystem" Vital="yes"/>
            <ServiceControl Id="ServiceControl" Name="${SERVICE_NAME}"${s.startService === false ? '' : ' Start="install"'} Stop="both" Remove="uninstall" Wait="yes"/>
          </Component>
          <Component Id="StatusHelper" Guid="${guid('StatusHelper')}" Win64="yes">
            <File Id="StatusTray" Name="status-tray.ps1" Source="${xmlText(s.statusTray)}" KeyPath="yes"/>
            <RegistryValue Root="HKLM" Key="Software\\Microsoft\\Windows\\CurrentVersion\\Run" Name="PortcullisStatus" Type="string" Value="&quot;${powershell}&quot; -NoProfile -NonInteractive -WindowStyle Hidden -ExecutionPolicy Bypass -File &quot;[#StatusTray]&quot; -StatusFolder &quot;[STATUSFOLDER].&quot;"/>
          </Component>
        </Directory>
      </Directory>
      <Directory Id="CommonAppDataFolder">
        <Directory Id="DATADIR" Name="Portcullis">
${folder('Data')}
          <Component Id="StoragePolicy" Guid="${guid('StoragePolicy')}" Win64="yes">
            <RegistryValue Root="HKLM" Key="Software\\Policies\\Microsoft\\Windows\\RemovableStorageDevices" Name="Deny_All" Type="integer" Value="1" KeyPath="yes"/>
            <RegistryValue Root="HKLM" Key="Software\\Microsoft\\Windows\\CurrentVersion\\Policies\\Explorer" Name="NoDriveTypeAutoRun" Type="integer" Value="255"/>
          </Component>
          <Directory Id="SERVICELOGS" Name="service-logs">
${folder('ServiceLogs')}
          </Directory>
        </Directory>
      </Directory>
      <Directory Id="PORTCULLISROOT" Name="Portcullis">
${folder('Root')}
        <Directory Id="DESTINATION" Name="Inbox">
${folder('Destination')}
        </Directory>
        <Directory Id="STATUSFOLDER" Name="Status">
${folder('Status')}
        </Directory>
      </Directory>
    </Directory>
    <CustomAction Id="SetupHmi" FileKey="AgentExe" ExeCommand="setup --config &quot;[DATADIR]config.json&quot; --destination &quot;[DESTINATION].&quot; --status-folder &quot;[STATUSFOLDER].&quot; --trust-bundle &quot;[TRUSTBUNDLE]&quot;" Execute="deferred" Impersonate="no" Return="check"/>
    <InstallExecuteSequence>
      <Custom Action="SetupHmi" After="InstallFiles">NOT REMOVE~="ALL"</Custom>
    </InstallExecuteSequence>
    <Feature Id="Agent" Title="Portcullis HMI agent" Level="1">
      <ComponentRef Id="Agent"/>
      <ComponentRef Id="Service"/>
      <ComponentRef Id="StatusHelper"/>
      <ComponentRef Id="DataFolder"/>
      <ComponentRef Id="ServiceLogsFolder"/>
      <ComponentRef Id="RootFolder"/>
      <ComponentRef Id="DestinationFolder"/>
      <ComponentRef Id="StatusFolder"/>
      <ComponentRef Id="StoragePolicy"/>
    </Feature>
  </Product>
</Wix>
`;
}

const sql = (text: string): string => `'${text.replace(/'/gu, "''")}'`;

/** What wixl cannot say, in Windows Installer SQL (msibuild -q), applied in this order. */
export function finishQueries(): string[] {
  const locks: Array<[string, keyof typeof FOLDER_SDDL]> = [
    ['INSTALLDIR', 'usersRead'], ['DATADIR', 'adminsOnly'], ['SERVICELOGS', 'adminsOnly'],
    ['PORTCULLISROOT', 'usersRead'], ['DESTINATION', 'usersRead'], ['STATUSFOLDER', 'usersRead'],
  ];
  return [
    // The storage policy only with STORAGEPOLICY=1 (the default); 0 for a pilot, or where a GPO sets it.
    `UPDATE \`Component\` SET \`Condition\` = ${sql('STORAGEPOLICY = "1"')} WHERE \`Component\` = 'StoragePolicy'`,
    // Public properties passed to the server side of a managed install.
    `UPDATE \`Property\` SET \`Value\` = ${sql(`WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;${PUBLIC_PROPERTIES.join(';')}`)} WHERE \`Property\` = 'SecureCustomProperties'`,
    // The set-up after the files are in place and before the service starts (wixl put it after InstallFinalize).
    "UPDATE `InstallExecuteSequence` SET `Sequence` = 4001 WHERE `Action` = 'SetupHmi'",
    'CREATE TABLE `MsiLockPermissionsEx` (`MsiLockPermissionsEx` CHAR(72) NOT NULL, `LockObject` CHAR(72) NOT NULL, `Table` CHAR(32) NOT NULL, `SDDLText` LONGCHAR NOT NULL, `Condition` CHAR(255) PRIMARY KEY `MsiLockPermissionsEx`)',
    ...locks.map(([dir, sddl]) => `INSERT INTO \`MsiLockPermissionsEx\` (\`MsiLockPermissionsEx\`, \`LockObject\`, \`Table\`, \`SDDLText\`) VALUES (${sql(`Lock${dir}`)}, ${sql(dir)}, 'CreateFolder', ${sql(FOLDER_SDDL[sddl])})`),
  ];
}

export interface MsiBuildOptions {
  readonly agentExe: string;
  readonly serviceWrapper: string;
  /** The wrapper's expected SHA-256: a different file stops the build. */
  readonly serviceWrapperSha256: string;
  readonly out: string;
  readonly version: string;
  /** false: the service is registered but not started at install (tests under Wine only). */
  readonly startService?: boolean;
}

const sha256Of = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

export function buildMsi(options: MsiBuildOptions): { path: string; sha256: string } {
  if (!/^\d+\.\d+\.\d+$/u.test(options.version)) throw new Error(`--version ${options.version}: expected three numbers, as Windows Installer compares them`);
  const wrapperSha = sha256Of(options.serviceWrapper);
  if (wrapperSha !== options.serviceWrapperSha256.toLowerCase()) {
    throw new Error(`${options.serviceWrapper} has SHA-256 ${wrapperSha}, expected ${options.serviceWrapperSha256}: refusing to package it`);
  }
  const stage = mkdtempSync(join(tmpdir(), 'portcullis-msi-'));
  try {
    copyFileSync(options.agentExe, join(stage, 'portcullis-agent.exe'));
    copyFileSync(options.serviceWrapper, join(stage, 'portcullis-agent-service.exe'));
    writeFileSync(join(stage, 'portcullis-agent-service.xml'), serviceWrapperXml());
    copyFileSync(join(import.meta.dirname, 'status-tray.ps1'), join(stage, 'status-tray.ps1'));
    writeFileSync(join(stage, 'product.wxs'), productWxs({
      version: options.version, startService: options.startService, agentExe: 'portcullis-agent.exe', serviceWrapper: 'portcullis-agent-service.exe',
      serviceWrapperXml: 'portcullis-agent-service.xml', statusTray: 'status-tray.ps1',
    }));
    const out = resolve(options.out);
    rmSync(out, { force: true });
    execFileSync('wixl', ['-a', 'x64', '-o', out, 'product.wxs'], { cwd: stage, stdio: ['ignore', 'ignore', 'pipe'] });
    for (const query of finishQueries()) execFileSync('msibuild', [out, '-q', query], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { path: out, sha256: sha256Of(out) };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

const USAGE = `usage: node agent/windows/build-msi.ts --agent-exe EXE --service-wrapper WinSW-x64.exe --service-wrapper-sha256 HEX
                                      [--out var/sea/portcullis-agent.msi] [--version X.Y.Z]
Needs wixl and msibuild (Debian: wixl, msitools; ./portcullis setup installs them). docs/agent.md "MSI".`;

if (import.meta.main) {
  const repo = resolve(import.meta.dirname, '../..');
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        'agent-exe': { type: 'string', default: join(repo, 'var/sea/portcullis-agent.exe') },
        'service-wrapper': { type: 'string' },
        'service-wrapper-sha256': { type: 'string' },
        out: { type: 'string', default: join(repo, 'var/sea/portcullis-agent.msi') },
        version: { type: 'string', default: (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version },
        help: { type: 'boolean', short: 'h', default: false },
        // Tests under Wine only: Wine has no .NET for WinSW, so no wrapper there can be started.
        'no-start-service': { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    process.stderr.write(`build-msi: ${(error as Error).message}\n\n${USAGE}\n`);
    process.exit(64);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
  } else if (!values['service-wrapper'] || !values['service-wrapper-sha256']) {
    process.stderr.write(`build-msi: --service-wrapper and --service-wrapper-sha256 are required\n\n${USAGE}\n`);
    process.exitCode = 64;
  } else {
    const built = buildMsi({
      agentExe: values['agent-exe'], serviceWrapper: values['service-wrapper'], serviceWrapperSha256: values['service-wrapper-sha256'],
      out: values.out, version: values.version, startService: !values['no-start-service'],
    });
    process.stdout.write(`${built.path} sha256 ${built.sha256}\n`);
  }
}
