/**
 * `./portcullis image test`: the kiosk image, end to end, under QEMU (TCG).
 * One boot per run: the image's disk with -snapshot (the built image never
 * changes), a fresh persistent data disk (the site's configuration: the test
 * signature database and an allowlist; the kiosk writes its key and audit log
 * there), an xHCI controller. Through QMP the test plugs in, one after the
 * other: a FAT32 stick with clean, allowlisted, malicious and disguised files;
 * an exFAT stick; a stick whose MBR and boot sector carry the test database's
 * boot-code pattern (refused, BOOT_CODE_INFECTED); a stick with two partitions; a blank stick; a USB keyboard; a
 * hub carrying a drive and a keyboard (BadUSB); and a stick it pulls out in the
 * middle of the scan. The guest's observer (image/rootfs/usr/lib/portcullis/
 * observe.js) reports tty1, the station's mounts, udev and USBGuard's verdicts.
 * After power-off the sticks' image files and the data disk hold what the
 * guest wrote: every manifest is verified by the project's verifier, the
 * independent one (test/independent/) and the HMI agent, and the audit log's
 * chain is checked. Prints `N passed, N failed`; everything stays under
 * var/image-test/<time>/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { keyIdOf, verifyManifest } from '../../manifest/index.ts';
import { buildImage, PROJECT_ROOT, type BuiltImage, type ImageInfo } from '../../image/build-image.ts';
import { filesScanned, Observer, parseMountinfo, resultVerdict, screenKind, shownCode, type ObservedRecord } from './observer.ts';
import { Qmp } from './qmp.ts';
import {
  buildBlankStick, buildExfatStick, buildFat32Stick, buildTwoPartitionStick, bulkFiles, CLEAN_FILES, extractStick, infectBootCode, MIXED_EXPECTED, MIXED_FILES,
  run, testAllowlist, volumeIdentity,
} from './sticks.ts';

export interface ImageTestOptions {
  /** A built image's folder (image build --out); default: build, or reuse the cached build. */
  readonly imageDir?: string;
  /** Where results go; default var/image-test/<time>/. */
  readonly outDir?: string;
  readonly log?: (line: string) => void;
}

/** Time limits, under TCG emulation on a loaded 2-core machine. */
/** A result or refused screen read whole: the station draws top to bottom, and an observer read can fall between (its last line says it is safe to remove). */
const drawn = (rows: readonly string[]): boolean => rows.some((l) => /Safe to remove the (drive|device)\./.test(l));

const LIMITS = {
  boot: 300_000, // ms: QEMU start to the first-boot key on tty1
  ready: 300_000, // ms: Enter to the station's ready screen (Node's first start; the self-check starts clamd and proves every YARA rule)
  detect: 90_000, // ms: a plugged stick to the station's first screen about it
  scan: 420_000, // ms: a stick's scan under emulation, with room for a restart of the engines
  unplug: 60_000, // ms
  powerOff: 120_000, // ms
} as const;

/** The QEMU stick and keyboard ids (QEMU 7.2: usb-storage 46f4:0001, usb-kbd 0627:0001). */
const QEMU_STORAGE_ID = '46f4:0001';
const QEMU_KEYBOARD_ID = '0627:0001';

interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

class Checks {
  readonly results: CheckResult[] = [];
  private readonly log: (line: string) => void;
  constructor(log: (line: string) => void) {
    this.log = log;
  }

  /** Runs one check: a thrown error is its failure, a returned string its detail. */
  async check(name: string, body: () => Promise<string | void> | string | void): Promise<boolean> {
    try {
      const detail = (await body()) ?? '';
      this.results.push({ name, ok: true, detail });
      this.log(`  ok    ${name}${detail ? `: ${detail}` : ''}`);
      return true;
    } catch (error) {
      const detail = (error as Error).message;
      this.results.push({ name, ok: false, detail });
      this.log(`  FAIL  ${name}: ${detail}`);
      return false;
    }
  }

  get passed(): number {
    return this.results.filter((r) => r.ok).length;
  }

  get failed(): number {
    return this.results.filter((r) => !r.ok).length;
  }
}

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

// ---- the virtual machine -------------------------------------------------------

interface Vm {
  readonly qemu: ChildProcess;
  readonly qmp: Qmp;
  readonly observer: Observer;
  readonly startedAt: number;
  readonly exited: Promise<number | null>;
}

/** QEMU's command line: qboot, no default devices, the kernel and initramfs given directly (issue 19's measurements). */
export function qemuArgs(image: { disk: string; kernel: string; initrd: string; info: Pick<ImageInfo, 'cmdline'> }, run: { dataDisk: string; dir: string }): string[] {
  return [
    '-machine', 'pc,accel=tcg', '-cpu', 'max', '-smp', '2', '-m', '2048',
    '-nodefaults', '-no-user-config', '-display', 'none',
    '-bios', '/usr/share/qemu/qboot.rom',
    '-kernel', image.kernel, '-initrd', image.initrd,
    '-append', `${image.info.cmdline} systemd.wants=portcullis-observe.service`,
    '-rtc', 'base=utc',
    // The image never changes: -snapshot keeps the guest's writes to it in a temporary file.
    '-snapshot',
    '-drive', `file=${image.disk},if=virtio,format=raw`,
    // The persistent partition is a disk of its own here, kept (snapshot=off): the test reads it afterwards.
    '-drive', `file=${run.dataDisk},if=virtio,format=raw,snapshot=off`,
    '-device', 'qemu-xhci,id=xhci',
    // ttyS0: the serial (maintenance) console; ttyS1: the test's observer.
    '-serial', `file:${join(run.dir, 'console.log')}`,
    '-serial', `file:${join(run.dir, 'observe.jsonl')}`,
    '-qmp', `unix:${join(run.dir, 'qmp.sock')},server=on,wait=off`,
  ];
}

async function startVm(image: BuiltImage, dataDisk: string, dir: string): Promise<Vm> {
  const args = qemuArgs(image, { dataDisk, dir });
  await writeFile(join(dir, 'qemu-command.txt'), `qemu-system-x86_64 ${args.map((a) => (/[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n`);
  const startedAt = Date.now();
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let qemuOutput = '';
  qemu.stdout?.on('data', (d: Buffer) => { qemuOutput += d.toString(); });
  qemu.stderr?.on('data', (d: Buffer) => { qemuOutput += d.toString(); });
  const exited = new Promise<number | null>((r) => qemu.on('exit', (code) => {
    void writeFile(join(dir, 'qemu.log'), qemuOutput);
    r(code);
  }));
  const observer = new Observer(join(dir, 'observe.jsonl'));
  observer.start();
  const qmp = await Qmp.connect(join(dir, 'qmp.sock'));
  return { qemu, qmp, observer, startedAt, exited };
}

async function stopVm(vm: Vm, log: (line: string) => void): Promise<{ clean: boolean; ms: number }> {
  const started = Date.now();
  if (vm.qemu.exitCode !== null) return { clean: false, ms: 0 };
  // ACPI power button: systemd stops the station (it unmounts, stops clamd, closes the log) and the data partition.
  await vm.qmp.execute('system_powerdown').catch(() => undefined);
  const code = await Promise.race([vm.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), LIMITS.powerOff))]);
  if (code === 'timeout') {
    log('  the guest did not power off in time: QEMU killed');
    vm.qemu.kill('SIGKILL');
    await vm.exited;
    return { clean: false, ms: Date.now() - started };
  }
  vm.qmp.close();
  return { clean: true, ms: Date.now() - started };
}

// ---- plugging devices -------------------------------------------------------------

async function plugStick(vm: Vm, id: string, file: string, serial: string, port: string): Promise<void> {
  await vm.qmp.execute('blockdev-add', { 'node-name': `${id}-disk`, driver: 'raw', file: { driver: 'file', filename: file } });
  await vm.qmp.execute('device_add', { driver: 'usb-storage', id, bus: 'xhci.0', port, drive: `${id}-disk`, serial, removable: true });
}

async function unplug(vm: Vm, ids: readonly string[], disks: readonly string[] = []): Promise<void> {
  for (const id of ids) {
    const from = vm.qmp.events.length;
    await vm.qmp.execute('device_del', { id });
    await vm.qmp.waitForEvent((e) => e.event === 'DEVICE_DELETED' && e.data?.device === id && vm.qmp.events.indexOf(e) >= from, LIMITS.unplug);
  }
  // The stick's file is closed (and flushed) when its block node goes.
  for (const node of disks) await vm.qmp.execute('blockdev-del', { 'node-name': node });
}

/** Mount records of the station's drives (/run/portcullis/media/*) seen since record `from`. */
function mountsSince(vm: Vm, from: number): Array<{ at: number; lines: string[] }> {
  return vm.observer.records.slice(from).filter((r) => r.kind === 'mounts').map((r) => ({ at: r.t, lines: r.lines ?? [] }));
}

function usbSince(vm: Vm, from: number): ObservedRecord[] {
  return vm.observer.records.slice(from).filter((r) => r.kind === 'usb');
}

/** Every state USB device `id` was seen in since record `from`. */
function usbStates(vm: Vm, from: number, id: string): Array<{ authorized: string | null; drivers: Array<string | null> }> {
  return usbSince(vm, from).flatMap((r) => (r.devices ?? []).filter((d) => d.id === id).map((d) => ({ authorized: d.authorized, drivers: d.interfaces.map((i) => i.driver) })));
}

const isReady = (rows: string[]): boolean => screenKind(rows) === 'ready';

// ---- what the host reads afterwards ------------------------------------------------

async function dumpFromDataDisk(dataDisk: string, dir: string): Promise<{ audit: string; publicKey: string }> {
  // A copy, checked (its journal replayed) as the kiosk would find it at the next boot.
  const copy = join(dir, 'data-checked.img');
  await copyFile(dataDisk, copy);
  await run('e2fsck', ['-fy', copy]).catch(() => undefined); // exit 1: "errors corrected", the journal replayed
  const audit = join(dir, 'audit.db');
  const publicKey = join(dir, 'kiosk.pub.pem');
  for (const [from, to] of [['/audit/audit.db', audit], ['/audit/audit.db-wal', `${audit}-wal`], ['/keys/kiosk.pub.pem', publicKey]] as const) {
    await rm(to, { force: true });
    await run('debugfs', ['-R', `dump -p ${from} ${to}`, copy]).catch(() => undefined);
  }
  await rm(copy, { force: true });
  // A WAL that debugfs found empty or missing is no WAL.
  if ((await stat(`${audit}-wal`).catch(() => null))?.size === 0) await rm(`${audit}-wal`, { force: true });
  return { audit, publicKey };
}

const KIOSK_BIN = join(PROJECT_ROOT, 'kiosk', 'bin', 'portcullis-kiosk.js');
const AGENT_BIN = join(PROJECT_ROOT, 'agent', 'bin', 'portcullis-agent.js');

function runNode(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('exit', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

const sha256 = async (path: string): Promise<string> => createHash('sha256').update(await readFile(path)).digest('hex');

/** The manifest on an extracted stick, checked three ways: the project's verifier, the independent one, the agent. */
async function checkManifest(checks: Checks, what: string, stick: { image: string; filesystem: 'fat32' | 'exfat'; label: string }, dir: string, publicKeyPem: string, expect: { pass: readonly string[]; blocked: Readonly<Record<string, string>> }): Promise<void> {
  const files = join(dir, 'files');
  await rm(files, { recursive: true, force: true });
  await extractStick(stick.image, stick.filesystem, files);
  const envelopePath = join(files, '.portcullis', 'manifest.dsse.json');
  const envelope = await readFile(envelopePath).catch(() => null);
  await checks.check(`${what}: the kiosk wrote a manifest onto the stick`, () => {
    assert(envelope, `no .portcullis/manifest.dsse.json on the stick`);
    return `${envelope.length} bytes`;
  });
  if (!envelope) return;
  const publicKey = createPublicKey(publicKeyPem);
  await checks.check(`${what}: the manifest verifies with the project's verifier (manifest/verify.ts)`, async () => {
    const verified = verifyManifest(envelope, { keys: [{ keyId: keyIdOf(publicKey), publicKey }] }, new Date());
    const subjects = verified.statement.subject.map((s) => s.name).sort();
    assert(JSON.stringify(subjects) === JSON.stringify([...expect.pass].sort()), `subjects ${JSON.stringify(subjects)}, expected ${JSON.stringify([...expect.pass].sort())}`);
    const blocked = Object.fromEntries(verified.statement.predicate.blocked.map((b) => [b.path, b.reasons]));
    for (const [path, code] of Object.entries(expect.blocked)) assert(blocked[path]?.includes(code), `${path} blocked with ${JSON.stringify(blocked[path])}, expected ${code}`);
    assert(Object.keys(blocked).length === Object.keys(expect.blocked).length, `blocked ${JSON.stringify(blocked)}`);
    for (const s of verified.statement.subject) {
      assert((await sha256(join(files, s.name))) === s.digest.sha256, `${s.name}: the file on the stick does not match its subject digest`);
    }
    const media = verified.statement.predicate.media;
    const id = await volumeIdentity(stick.image);
    assert(media.volumeId === id.volumeId && media.capacity === id.capacity, `media ${JSON.stringify(media)} differs from the stick's boot sector ${JSON.stringify(id)}`);
    assert(media.usb?.vendorId === QEMU_STORAGE_ID.slice(0, 4), `media.usb ${JSON.stringify(media.usb)}`);
    return `${subjects.length} subjects, ${Object.keys(blocked).length} blocked, key ${verified.keyId.slice(0, 16)}..., media ${media.filesystem} ${media.volumeId} usb ${media.usb?.vendorId}:${media.usb?.productId}/${media.usb?.serial}`;
  });
  await checks.check(`${what}: the manifest verifies with the independent verifier (test/independent/verify_manifest.py)`, async () => {
    await writeFile(join(dir, 'kiosk.pub.pem'), publicKeyPem);
    const result = await new Promise<{ code: number | null; out: string }>((r) => {
      const child = spawn('python3', [join(PROJECT_ROOT, 'test', 'independent', 'verify_manifest.py'), '--envelope', envelopePath, '--key', join(dir, 'kiosk.pub.pem'), '--now', new Date().toISOString().replace(/\.\d+Z$/, 'Z')], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
      child.on('exit', (code) => r({ code, out }));
    });
    assert(result.code === 0, `exit ${result.code}: ${result.out.trim().slice(0, 400)}`);
    return 'valid';
  });
  await checks.check(`${what}: the HMI agent verifies the stick against the manifest (portcullis-agent verify)`, async () => {
    const trust = join(dir, 'agent-trust.json');
    await rm(trust, { force: true });
    const added = await runNode([AGENT_BIN, 'trust', 'add', join(dir, 'kiosk.pub.pem'), '--trust', trust, '--label', 'image-test-kiosk']);
    assert(added.code === 0, `trust add: exit ${added.code}: ${added.stderr.trim()}`);
    const id = await volumeIdentity(stick.image);
    const identity = join(dir, 'identity.json');
    await writeFile(identity, JSON.stringify({ filesystem: id.filesystem, volumeId: id.volumeId, label: stick.label, capacity: id.capacity }));
    const verified = await runNode([AGENT_BIN, 'verify', files, '--trust', trust, '--identity', identity, '--json', '--log', join(dir, 'agent-log.jsonl')]);
    const want = Object.keys(expect.blocked).length === 0 ? 0 : 10;
    assert(verified.code === want, `exit ${verified.code} (want ${want}): ${(verified.stdout + verified.stderr).trim().slice(0, 600)}`);
    return `exit ${verified.code} (${want === 0 ? 'every file permitted' : 'the listed files permitted, the blocked ones refused'})`;
  });
}

// ---- the run ---------------------------------------------------------------------------

export async function runImageTest(options: ImageTestOptions = {}): Promise<number> {
  const log = options.log ?? ((line: string) => console.log(line));
  const runStarted = Date.now();
  const stamp = new Date().toISOString().replace(/[:.]/g, '').replace(/\d{3}Z$/, 'Z');
  const dir = resolve(options.outDir ?? join(PROJECT_ROOT, 'var', 'image-test', stamp));
  await mkdir(join(dir, 'sticks'), { recursive: true });
  const checks = new Checks(log);
  const timings: Record<string, number> = {};
  log(`image test: results in ${dir}`);

  // 1. The image: built, or reused from the cache when nothing that goes into it changed.
  let image: BuiltImage;
  if (options.imageDir) {
    const d = resolve(options.imageDir);
    image = { dir: d, disk: join(d, 'portcullis-kiosk.img'), kernel: join(d, 'vmlinuz'), initrd: join(d, 'initrd.img'), info: JSON.parse(await readFile(join(d, 'image.json'), 'utf8')) as ImageInfo, seconds: 0 };
  } else {
    image = await buildImage({ log });
  }
  timings.buildSeconds = image.seconds;
  log(`image ${image.info.key}: ${image.info.kernel}, ${image.info.diskMiB} MiB (build or cache look-up ${image.seconds.toFixed(0)} s)`);

  // 2. The sticks, and the persistent data disk with the site's configuration.
  const sticks = join(dir, 'sticks');
  const fat32 = { image: join(sticks, 'fat32-mixed.img'), filesystem: 'fat32' as const, label: 'LINE3', serial: 'PCFAT32MIXED1' };
  const exfat = { image: join(sticks, 'exfat-clean.img'), filesystem: 'exfat' as const, label: 'PUMP4', serial: 'PCEXFATCLEAN1' };
  const twoParts = join(sticks, 'two-partitions.img');
  const blank = join(sticks, 'blank.img');
  const composite = join(sticks, 'badusb-storage.img');
  const pulled = { image: join(sticks, 'pulled-mid-scan.img'), filesystem: 'fat32' as const, label: 'SHIFTLOGS', serial: 'PCPULLED00001' };
  const bootInfected = { image: join(sticks, 'boot-code-infected.img'), filesystem: 'fat32' as const, label: 'BOOTVIRUS', serial: 'PCBOOTCODE001' };
  await buildFat32Stick(fat32.image, { label: fat32.label, volumeId: '1A2B3C4D', sizeMiB: 64, files: MIXED_FILES });
  await buildExfatStick(exfat.image, { label: exfat.label, volumeId: '5E6F7A8B', sizeMiB: 32, files: CLEAN_FILES });
  await buildTwoPartitionStick(twoParts);
  await buildBlankStick(blank, 16);
  await buildFat32Stick(composite, { label: 'BADUSB', volumeId: 'BADB0001', sizeMiB: 40, files: [{ path: 'payload.txt', content: new TextEncoder().encode('nothing to see here\r\n') }] });
  await buildFat32Stick(pulled.image, { label: pulled.label, volumeId: '0BAD0F00', sizeMiB: 100, files: bulkFiles(64, 1024 * 1024) });
  await buildFat32Stick(bootInfected.image, { label: bootInfected.label, volumeId: 'B007C0DE', sizeMiB: 40, files: CLEAN_FILES });
  await infectBootCode(bootInfected.image);
  // Refused sticks, and the infected one (mounted read-only and scanned, no manifest): never written to.
  const untouched = { [twoParts]: await sha256(twoParts), [blank]: await sha256(blank), [composite]: await sha256(composite), [bootInfected.image]: await sha256(bootInfected.image) };

  const seed = join(dir, 'data-seed');
  await mkdir(join(seed, 'config'), { recursive: true });
  await mkdir(join(seed, 'allowlist'), { recursive: true });
  // The site's settings: the project's test signature database (EICAR and test patterns; no
  // signatures can be downloaded here), the allowlist with the test firmware.
  await writeFile(join(seed, 'config', 'kiosk.json'), `${JSON.stringify({ kioskId: 'image-test-kiosk', keyPath: '/var/lib/portcullis/keys/kiosk.key', auditDb: '/var/lib/portcullis/audit/audit.db', clamavDb: 'test', allowlistDir: '/var/lib/portcullis/allowlist', workDir: '/run/portcullis-work/scan' }, null, 2)}\n`);
  await writeFile(join(seed, 'allowlist', 'image-test.json'), testAllowlist());
  const dataDisk = join(dir, 'data.img');
  await run('mkfs.ext4', ['-q', '-L', 'PCDATA', '-d', seed, dataDisk, '256M']);

  // 3. Boot once; every case runs in this one VM.
  log('booting the kiosk under QEMU (TCG)...');
  const vm = await startVm(image, dataDisk, dir);
  const obs = vm.observer;
  let shownKey = '';
  try {
    await checks.check('boot: the first boot generates the signing key and shows its public key on tty1', async () => {
      const r = await obs.waitForScreen((rows) => screenKind(rows) === 'first-boot-key' && rows.some((l) => l.includes('END PUBLIC KEY')), 'the first-boot key screen', LIMITS.boot);
      timings.bootToKeyMs = r.at - vm.startedAt;
      const rows = r.rows ?? [];
      shownKey = rows.slice(rows.findIndex((l) => l.includes('BEGIN PUBLIC KEY')), rows.findIndex((l) => l.includes('END PUBLIC KEY')) + 1).join('\n');
      const keyId = rows.find((l) => l.startsWith('key id '))?.slice(7) ?? '';
      assert(/^[0-9a-f]{64}$/.test(keyId), `no key id on the screen: ${rows.join(' | ')}`);
      return `after ${seconds(timings.bootToKeyMs)}, key id ${keyId.slice(0, 16)}...`;
    });
    const systemdUp = obs.records.find((r) => r.kind === 'hello');
    if (systemdUp) timings.bootToObserverMs = systemdUp.at - vm.startedAt;
    // The technician (or installer) presses Enter on the kiosk's keyboard.
    const enterAt = Date.now();
    await vm.qmp.execute('send-key', { keys: [{ type: 'qcode', data: 'ret' }] });
    await checks.check('boot: the station passes its self-check and shows ready on tty1', async () => {
      const r = await obs.waitForScreen((rows) => isReady(rows) || screenKind(rows) === 'out-of-service', 'the ready screen', LIMITS.ready);
      assert(isReady(r.rows ?? []), `the station is out of service: ${(r.rows ?? []).filter((l) => l.trim()).slice(-8).join(' | ')}`);
      timings.enterToReadyMs = r.at - enterAt;
      // Boot time without the pause for the key: QEMU start to the key screen, then Enter to ready.
      timings.bootToReadyMs = (timings.bootToKeyMs ?? 0) + timings.enterToReadyMs;
      return `${seconds(timings.enterToReadyMs)} after Enter; boot to ready without the pause ${seconds(timings.bootToReadyMs)}`;
    });
    await checks.check('boot: nothing listens on the network', () => {
      const sockets = obs.latest('listen')?.sockets;
      assert(sockets !== undefined, 'the observer reported no sockets');
      assert(sockets.length === 0, `listening: ${sockets.join(', ')}`);
      return 'no TCP listener, no bound UDP socket';
    });
    await checks.check('boot: the serial port is the maintenance console (login prompt there, none on tty1)', async () => {
      const console = await readFile(join(dir, 'console.log'), 'utf8');
      assert(/portcullis-kiosk login:/.test(console), 'no login prompt on the serial console');
      const services = obs.records.filter((r) => r.kind === 'journal' && /Started (getty@tty|autovt@)/.test(r.line ?? ''));
      assert(services.length === 0, `a getty started on a virtual terminal: ${services[0]?.line}`);
      return 'ttyS0 has a login prompt; no getty on any virtual terminal';
    });

    // 4. The FAT32 stick: detected, mounted read-only, scanned, PARTIAL, manifest written, unplugged.
    {
      const from = obs.records.length;
      const plugged = Date.now();
      await plugStick(vm, 'fat32', fat32.image, fat32.serial, '1');
      await checks.check('FAT32 stick: udev announces its block device and partition', async () => {
        const r = await obs.waitFor((x) => x.kind === 'udev' && /add\s+\S+\/block\/sd[a-z]+\/sd[a-z]+1 \(block\)/.test(x.line ?? ''), 'udev: add .../sdX1 (block)', LIMITS.detect, from);
        timings.fat32UdevMs = r.at - plugged;
        return `${seconds(timings.fat32UdevMs)} after the plug: ${(r.line ?? '').replace(/\s+/g, ' ').slice(0, 90)}`;
      });
      await checks.check('FAT32 stick: the station scans it, the first file scanned', async () => {
        const r = await obs.waitForScreen((rows) => (filesScanned(rows) ?? 0) >= 1 || screenKind(rows) === 'result', 'the scanning screen with a file done', LIMITS.scan, from);
        timings.fat32FirstFileMs = r.at - plugged;
        return `${seconds(timings.fat32FirstFileMs)} from insertion to the first file scanned (detection, checks, mount, identity, boot sectors, walk; the engines already running)`;
      });
      await checks.check('FAT32 stick: mounted read-only, nosuid, nodev, noexec while scanned', () => {
        const seen = mountsSince(vm, from).flatMap((m) => m.lines).map(parseMountinfo).filter((m) => m !== null);
        const first = seen.find((m) => m.mountPoint.startsWith('/run/portcullis/media/'));
        assert(first, 'the station never mounted it (no mount under /run/portcullis/media)');
        for (const flag of ['ro', 'nosuid', 'nodev', 'noexec']) assert(first.options.includes(flag), `mounted with ${first.options.join(',')}: no ${flag}`);
        assert(first.fsType === 'vfat', `filesystem ${first.fsType}`);
        return `${first.source} on ${first.mountPoint} type ${first.fsType} (${first.options.join(',')})`;
      });
      let result: string[] = [];
      await checks.check('FAT32 stick: the result is PARTIAL, the malicious and disguised files blocked', async () => {
        const r = await obs.waitForScreen((rows) => ['result', 'refused'].includes(screenKind(rows)) && drawn(rows), 'the result screen', LIMITS.scan, from);
        timings.fat32ResultMs = r.at - plugged;
        result = r.rows ?? [];
        assert(resultVerdict(result) === 'partial', `the screen shows ${screenKind(result)} / ${resultVerdict(result)}: ${result.filter((l) => l.trim()).join(' | ')}`);
        for (const path of Object.keys(MIXED_EXPECTED.blocked)) assert(result.some((l) => l.includes(`x ${path}`)), `${path} is not listed as blocked`);
        return `${seconds(timings.fat32ResultMs)} after the plug: ${result.find((l) => /files? may pass/.test(l))?.trim()}`;
      });
      await checks.check('FAT32 stick: read-only again after the manifest was written', () => {
        const last = mountsSince(vm, from).map((m) => m.lines.map(parseMountinfo).find((x) => x?.mountPoint.startsWith('/run/portcullis/media/'))).filter((m) => m).pop();
        assert(last, 'no mount seen');
        assert(last.options.includes('ro'), `the last mount state seen is ${last.options.join(',')}`);
        return last.options.join(',');
      });
      const removed = Date.now();
      await unplug(vm, ['fat32'], ['fat32-disk']);
      await checks.check('FAT32 stick: unplugged, the station unmounts it and is ready again', async () => {
        await obs.waitForScreen(isReady, 'ready after the unplug', LIMITS.unplug, from);
        const last = mountsSince(vm, from).pop();
        assert(!last || last.lines.length === 0, `still mounted: ${last?.lines.join(' | ')}`);
        return `${seconds(Date.now() - removed)}`;
      });
    }

    // 5. The exFAT stick: clean files only, approved.
    {
      const from = obs.records.length;
      const plugged = Date.now();
      await plugStick(vm, 'exfat', exfat.image, exfat.serial, '1');
      await checks.check('exFAT stick: scanned and APPROVED, mounted read-only as exfat', async () => {
        const r = await obs.waitForScreen((rows) => ['result', 'refused'].includes(screenKind(rows)) && drawn(rows), 'the result screen', LIMITS.scan, from);
        timings.exfatResultMs = r.at - plugged;
        const verdict = resultVerdict(r.rows ?? []);
        assert(verdict === 'approved', `the screen shows ${screenKind(r.rows ?? [])} / ${verdict}: ${(r.rows ?? []).filter((l) => l.trim()).join(' | ')}`);
        const first = mountsSince(vm, from).flatMap((m) => m.lines).map(parseMountinfo).find((m) => m?.mountPoint.startsWith('/run/portcullis/media/'));
        assert(first, 'never mounted');
        assert(first.fsType === 'exfat' && ['ro', 'nosuid', 'nodev', 'noexec'].every((f) => first.options.includes(f)), `mounted ${first.fsType} (${first.options.join(',')})`);
        return `${seconds(timings.exfatResultMs)} after the plug; ${first.fsType} (${first.options.join(',')})`;
      });
      await unplug(vm, ['exfat'], ['exfat-disk']);
      await checks.check('exFAT stick: unplugged, ready again', async () => {
        await obs.waitForScreen(isReady, 'ready after the unplug', LIMITS.unplug, from);
      });
    }

    // 5b. A stick whose boot code is infected: its files are clean, its MBR and boot sector are not.
    {
      const from = obs.records.length;
      const plugged = Date.now();
      await plugStick(vm, 'bootcode', bootInfected.image, bootInfected.serial, '1');
      await checks.check('boot-code stick: REJECTED with BOOT_CODE_INFECTED (its MBR and boot sector scanned from /dev/sdX)', async () => {
        const r = await obs.waitForScreen((rows) => ['result', 'refused'].includes(screenKind(rows)) && drawn(rows), 'the result screen', LIMITS.scan, from);
        timings.bootCodeResultMs = r.at - plugged;
        const rows = r.rows ?? [];
        assert(resultVerdict(rows) === 'rejected', `the screen shows ${screenKind(rows)} / ${resultVerdict(rows)}: ${rows.filter((l) => l.trim()).join(' | ')}`);
        assert(rows.some((l) => l.includes('BOOT_CODE_INFECTED')), `no BOOT_CODE_INFECTED on the screen: ${rows.filter((l) => l.trim()).join(' | ')}`);
        const first = mountsSince(vm, from).flatMap((m) => m.lines).map(parseMountinfo).find((m) => m?.mountPoint.startsWith('/run/portcullis/media/'));
        assert(first && first.options.includes('ro'), `mounted ${JSON.stringify(first)}`);
        return `${seconds(timings.bootCodeResultMs)} after the plug: ${rows.find((l) => l.includes('BOOT_CODE_INFECTED'))?.trim().slice(0, 90)}`;
      });
      await unplug(vm, ['bootcode'], ['bootcode-disk']);
      await checks.check('boot-code stick: unplugged, ready again', async () => {
        await obs.waitForScreen(isReady, 'ready after the unplug', LIMITS.unplug, from);
      });
    }

    // 6. Sticks the station refuses before mounting anything.
    const refusal = async (name: string, plug: () => Promise<void>, ids: string[], disks: string[], expectCode: string, extra?: (from: number) => string): Promise<void> => {
      const from = obs.records.length;
      const plugged = Date.now();
      await plug();
      await checks.check(`${name}: refused (${expectCode}), nothing mounted`, async () => {
        const r = await obs.waitForScreen((rows) => ['refused', 'result'].includes(screenKind(rows)) && drawn(rows), 'the refused screen', LIMITS.detect, from);
        const rows = r.rows ?? [];
        assert(screenKind(rows) === 'refused', `the screen shows ${screenKind(rows)}: ${rows.filter((l) => l.trim()).join(' | ')}`);
        const code = shownCode(rows);
        assert(code === expectCode, `refused with ${code}: ${rows.filter((l) => l.trim()).join(' | ')}`);
        // Give a late mount the chance to show, then prove there was none.
        await new Promise((w) => setTimeout(w, 2000));
        const mounted = mountsSince(vm, from).flatMap((m) => m.lines);
        assert(mounted.length === 0, `mounted: ${mounted.join(' | ')}`);
        const more = extra?.(from);
        return `${seconds(r.at - plugged)} after the plug${more ? `; ${more}` : ''}`;
      });
      await unplug(vm, ids, disks);
      await checks.check(`${name}: unplugged, ready again`, async () => {
        await obs.waitForScreen(isReady, 'ready after the unplug', LIMITS.unplug, from);
      });
    };
    await refusal('two-partition stick', () => plugStick(vm, 'twoparts', twoParts, 'PCTWOPARTS001', '1'), ['twoparts'], ['twoparts-disk'], 'VOLUME_UNKNOWN_FS');
    await refusal('blank stick (no partition, no filesystem)', () => plugStick(vm, 'blank', blank, 'PCBLANK000001', '1'), ['blank'], ['blank-disk'], 'VOLUME_NO_PARTITION');
    await refusal('USB keyboard', () => vm.qmp.execute('device_add', { driver: 'usb-kbd', id: 'kbd', bus: 'xhci.0', port: '1' }).then(() => undefined), ['kbd'], [], 'DEVICE_NO_STORAGE', (from) => {
      const states = usbStates(vm, from, QEMU_KEYBOARD_ID);
      assert(states.length > 0, 'the observer never saw the keyboard');
      assert(states.every((s) => s.authorized === '0' && s.drivers.every((d) => d === null)), `USBGuard let it through: ${JSON.stringify(states)}`);
      const inputs = obs.records.slice(from).filter((r) => r.kind === 'inputs').flatMap((r) => r.names ?? []);
      assert(!inputs.some((n) => /QEMU USB Keyboard/i.test(n)), `an input device was made: ${inputs.join(', ')}`);
      return 'USBGuard blocked it (authorized=0, no driver, no input device)';
    });
    await refusal('BadUSB: a hub with a drive and a keyboard in one plug', async () => {
      await vm.qmp.execute('blockdev-add', { 'node-name': 'badusb-disk', driver: 'raw', file: { driver: 'file', filename: composite } });
      await vm.qmp.execute('device_add', { driver: 'usb-hub', id: 'badusb-hub', bus: 'xhci.0', port: '2' });
      await vm.qmp.execute('device_add', { driver: 'usb-storage', id: 'badusb-storage', bus: 'xhci.0', port: '2.1', drive: 'badusb-disk', serial: 'PCBADUSB00001', removable: true });
      await vm.qmp.execute('device_add', { driver: 'usb-kbd', id: 'badusb-kbd', bus: 'xhci.0', port: '2.2' });
    }, ['badusb-kbd', 'badusb-storage', 'badusb-hub'], ['badusb-disk'], 'DEVICE_BADUSB', (from) => {
      const kbd = usbStates(vm, from, QEMU_KEYBOARD_ID);
      assert(kbd.length > 0 && kbd.every((s) => s.authorized === '0'), `USBGuard let its keyboard through: ${JSON.stringify(kbd)}`);
      return 'its keyboard blocked by USBGuard';
    });

    // 7. A stick pulled out in the middle of its scan.
    {
      const from = obs.records.length;
      const plugged = Date.now();
      await plugStick(vm, 'pulled', pulled.image, pulled.serial, '1');
      let pulledAt = 0;
      await checks.check('pulled stick: scanning, then pulled out mid-scan', async () => {
        const r = await obs.waitForScreen((rows) => (filesScanned(rows) ?? 0) >= 1 || ['result', 'refused'].includes(screenKind(rows)), 'a file scanned', LIMITS.scan, from);
        assert(screenKind(r.rows ?? []) === 'scanning', `the scan ended before it could be pulled: ${screenKind(r.rows ?? [])}`);
        timings.pulledFirstFileMs = r.at - plugged;
        pulledAt = Date.now();
        await unplug(vm, ['pulled'], ['pulled-disk']);
        return `${seconds(timings.pulledFirstFileMs)} from insertion to the first file scanned; pulled at "${(r.rows ?? []).find((l) => l.includes('Files'))?.trim()}"`;
      });
      await checks.check('pulled stick: the station says it was removed and NOTHING was approved', async () => {
        // The whole screen, not one read while the station was still drawing it (a capture had the header's "removed" and no body yet).
        const removedShown = (rows: readonly string[]): boolean => screenKind(rows) === 'removed' && rows.some((l) => l.includes('NOTHING was approved'));
        const r = await obs.waitForScreen(removedShown, 'the removed screen saying NOTHING was approved', LIMITS.unplug, from);
        assert(removedShown(r.rows ?? []), (r.rows ?? []).join(' | '));
        return `${seconds(r.at - pulledAt)} after the pull`;
      });
      // The technician acknowledges with Enter on the kiosk's keyboard.
      await vm.qmp.execute('send-key', { keys: [{ type: 'qcode', data: 'ret' }] });
      await checks.check('pulled stick: Enter on the kiosk keyboard, ready again', async () => {
        await obs.waitForScreen(isReady, 'ready after Enter', LIMITS.unplug, from);
      });
      await checks.check('pulled stick: the station unmounts what is left of it once the scan has stopped', async () => {
        const r = await obs.waitFor((x) => x.kind === 'mounts' && (x.lines ?? []).length === 0, 'no mount left', LIMITS.unplug, from + 1);
        return `${seconds(r.at - pulledAt)} after the pull`;
      });
    }
    await checks.check('end: still nothing listening on the network', () => {
      const sockets = obs.latest('listen')?.sockets ?? [];
      assert(sockets.length === 0, `listening: ${sockets.join(', ')}`);
    });
  } catch (error) {
    await checks.check('the run reached its end', () => {
      throw error;
    });
  } finally {
    const stopped = await stopVm(vm, log);
    obs.stop();
    timings.powerOffMs = stopped.ms;
    await checks.check('power-off: the guest shuts down cleanly on the ACPI power button', () => {
      assert(stopped.clean, 'it had to be killed');
      return seconds(stopped.ms);
    });
  }

  // 8. What the guest wrote, read on the host.
  const { audit, publicKey } = await dumpFromDataDisk(dataDisk, dir);
  let scanIds: Record<string, string> = {};
  const pem = await readFile(publicKey, 'utf8').catch(() => '');
  await checks.check('data partition: the key shown at first boot is the kiosk\'s key on the persistent partition', () => {
    assert(pem.includes('BEGIN PUBLIC KEY'), 'no keys/kiosk.pub.pem on the data disk');
    assert(shownKey !== '' && pem.trim() === shownKey.trim(), `shown:\n${shownKey}\non disk:\n${pem}`);
    return `key id ${keyIdOf(createPublicKey(pem)).slice(0, 16)}...`;
  });
  await checks.check('audit log: the hash chain verifies (portcullis-kiosk log verify)', async () => {
    const r = await runNode([KIOSK_BIN, 'log', 'verify', '--db', audit]);
    assert(r.code === 0, `exit ${r.code}: ${(r.stdout + r.stderr).trim()}`);
    return r.stdout.trim().split('\n')[0] ?? '';
  });
  await checks.check('audit log: the independent chain checker agrees (kiosk/audit/verify_audit_chain.py)', async () => {
    const r = await new Promise<{ code: number | null; out: string }>((done) => {
      const child = spawn('python3', [join(PROJECT_ROOT, 'kiosk', 'audit', 'verify_audit_chain.py'), audit], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
      child.on('exit', (code) => done({ code, out }));
    });
    assert(r.code === 0, `exit ${r.code}: ${r.out.trim()}`);
    return r.out.trim().split('\n').pop() ?? '';
  });
  await checks.check('audit log: every insertion recorded, refusals with their codes', () => {
    const db = new Database(audit, { readonly: true, fileMustExist: true });
    try {
      const events = db.prepare('SELECT type, data FROM events WHERE type IN (\'DEVICE_ACCEPTED\', \'DEVICE_REFUSED\') ORDER BY seq').all() as Array<{ type: string; data: string }>;
      const codes = events.map((e) => (e.type === 'DEVICE_REFUSED' ? (JSON.parse(e.data) as { code: string }).code : 'ACCEPTED'));
      const want = ['ACCEPTED', 'ACCEPTED', 'ACCEPTED', 'VOLUME_UNKNOWN_FS', 'VOLUME_NO_PARTITION', 'DEVICE_NO_STORAGE', 'DEVICE_BADUSB', 'ACCEPTED'];
      assert(JSON.stringify(codes) === JSON.stringify(want), `recorded ${codes.join(', ')}; expected ${want.join(', ')}`);
      return codes.join(', ');
    } finally {
      db.close();
    }
  });
  await checks.check('audit log: FAT32 partial and exFAT approved with manifests; the pulled scan aborted with no manifest', async () => {
    const r = await runNode([KIOSK_BIN, 'log', 'list', '--db', audit, '--json']);
    assert(r.code === 0, `log list: exit ${r.code}: ${r.stderr}`);
    const scans = (JSON.parse(r.stdout) as Array<{ scanId: string; status: string; usb: { serial: string | null } | null; manifestDigest?: string | null; driveReasons?: string[] | string | null; manifest?: unknown }>).reverse();
    const bySerial = (s: string): (typeof scans)[number] | undefined => scans.find((x) => x.usb?.serial === s);
    const f = bySerial(fat32.serial);
    const e = bySerial(exfat.serial);
    const p = bySerial(pulled.serial);
    const b = bySerial(bootInfected.serial);
    assert(b?.status === 'rejected' && JSON.stringify(b).includes('BOOT_CODE_INFECTED') && !JSON.stringify(b).match(/"manifest(Digest)?":"sha256:/), `boot-code stick: ${JSON.stringify(b)}`);
    scanIds = Object.fromEntries(scans.map((s) => [s.usb?.serial ?? '', s.scanId]));
    assert(scans.length === 4, `${scans.length} scans recorded: ${JSON.stringify(scans).slice(0, 400)}`);
    assert(f?.status === 'partial', `FAT32: ${JSON.stringify(f)}`);
    assert(e?.status === 'approved', `exFAT: ${JSON.stringify(e)}`);
    assert(p && (p.status === 'interrupted' || (p.status === 'rejected' && JSON.stringify(p).includes('SCAN_ABORTED'))), `pulled: ${JSON.stringify(p)}`);
    assert(!JSON.stringify(p).match(/"manifest(Digest)?":"sha256:/), `pulled: a manifest was recorded: ${JSON.stringify(p)}`);
    return `FAT32 ${f.status}, exFAT ${e.status}, boot-code stick ${b.status} (BOOT_CODE_INFECTED), pulled ${p.status}${JSON.stringify(p).includes('SCAN_ABORTED') ? ' (SCAN_ABORTED)' : ''}`;
  });
  await checks.check('audit log: every scanned stick\'s MBR and boot sector scanned: clean on the clean sticks, the test pattern found in both on the infected one', () => {
    const db = new Database(audit, { readonly: true, fileMustExist: true });
    try {
      const regionsOf = (serial: string): string => {
        const row = db.prepare('SELECT data FROM events WHERE type = \'BOOT_SECTORS_SCANNED\' AND scan_id = ?').get(scanIds[serial] ?? '') as { data: string } | undefined;
        assert(row, `no BOOT_SECTORS_SCANNED for ${serial}`);
        const data = JSON.parse(row.data) as { disk: string | null; regions: Array<{ name: string; device: string; result: string; signature?: string }> };
        return data.regions.map((x) => `${x.name}@${x.device}:${x.result}${x.signature ? `:${x.signature}` : ''}`).join(' ');
      };
      const shown: string[] = [];
      for (const serial of [fat32.serial, exfat.serial, pulled.serial]) {
        const regions = regionsOf(serial);
        assert(/^mbr@\/dev\/sd[a-z]+:clean volume-boot@\/dev\/sd[a-z]+1:clean$/.test(regions), `${serial}: ${regions}`);
        shown.push(`${serial} ${regions}`);
      }
      const infected = regionsOf(bootInfected.serial);
      assert(/^mbr@\/dev\/sd[a-z]+:found:Portcullis\.Test\.BootCode\.UNOFFICIAL volume-boot@\/dev\/sd[a-z]+1:found:Portcullis\.Test\.BootCode\.UNOFFICIAL$/.test(infected), `${bootInfected.serial}: ${infected}`);
      shown.push(`${bootInfected.serial} ${infected}`);
      return shown.join('; ');
    } finally {
      db.close();
    }
  });

  // 9. The sticks: manifests verified three ways; nothing written to refused or pulled sticks.
  await checkManifest(checks, 'FAT32 stick', fat32, join(dir, 'fat32'), pem, MIXED_EXPECTED);
  await checkManifest(checks, 'exFAT stick', exfat, join(dir, 'exfat'), pem, { pass: CLEAN_FILES.map((f) => f.path), blocked: {} });
  await checks.check('pulled stick: no manifest on it', async () => {
    const files = join(dir, 'pulled', 'files');
    await extractStick(pulled.image, 'fat32', files);
    const all = await listFiles(files);
    assert(!all.some((p) => p.startsWith('.portcullis/')), `found ${all.filter((p) => p.startsWith('.portcullis/')).join(', ')}`);
    return `${all.length} files, no .portcullis/`;
  });
  await checks.check('refused sticks: not one byte written to them', async () => {
    for (const [path, digest] of Object.entries(untouched)) assert((await sha256(path)) === digest, `${relative(dir, path)} changed`);
    return Object.keys(untouched).map((p) => relative(sticks, p)).join(', ');
  });

  timings.totalMs = Date.now() - runStarted;
  await writeFile(join(dir, 'report.json'), `${JSON.stringify({ image: image.info, timings, checks: checks.results }, null, 2)}\n`);
  log('');
  log(`timings: ${Object.entries(timings).map(([k, v]) => `${k} ${k.endsWith('Ms') ? seconds(v) : `${Number(v).toFixed(0)} s`}`).join(', ')}`);
  log(`results: ${dir}`);
  log(`${checks.passed} passed, ${checks.failed} failed`);
  return checks.failed === 0 ? 0 : 1;
}
