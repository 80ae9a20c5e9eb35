/* global setInterval */
// The QEMU test's view into the kiosk (test/image/, docs/image.md): what tty1
// shows, the station's mounts, udev and USB authorization, input devices,
// listening sockets and the journal, written as JSON lines to the second serial
// port. Read-only; not enabled in the image: only a test's kernel command line
// (systemd.wants=portcullis-observe.service) starts it.
import { spawn } from 'node:child_process';
import { openSync, readFileSync, readdirSync, readlinkSync, writeSync } from 'node:fs';

const out = openSync(process.argv[2] ?? '/dev/ttyS1', 'w');
const emit = (kind, data) => writeSync(out, `${JSON.stringify({ t: Date.now(), kind, ...data })}\n`);
const read = (path) => { try { return readFileSync(path); } catch { return null; } };
const text = (path) => read(path)?.toString('utf8').trim() ?? null;
const last = new Map();
const changed = (key, value) => {
  const s = JSON.stringify(value);
  if (last.get(key) === s) return false;
  last.set(key, s);
  return true;
};

// tty1 as a person sees it: /dev/vcsu1 holds one UTF-32 character per cell, 80 x 25.
function screen() {
  const cells = read('/dev/vcsu1');
  if (!cells) return;
  const chars = [];
  for (let i = 0; i + 4 <= cells.length; i += 4) chars.push(String.fromCodePoint(cells.readUInt32LE(i) || 32));
  const rows = [];
  for (let r = 0; r < chars.length / 80; r++) rows.push(chars.slice(r * 80, r * 80 + 80).join('').trimEnd());
  if (changed('screen', rows)) emit('screen', { rows });
}

// The station mounts in its own mount namespace: read its mountinfo.
function kioskPid() {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const cmd = read(`/proc/${pid}/cmdline`)?.toString('utf8') ?? '';
    if (cmd.includes('portcullis-kiosk.js\0run')) return pid;
  }
  return null;
}
let pid = null;
function mounts() {
  if (!pid || !read(`/proc/${pid}/cmdline`)) pid = kioskPid();
  const lines = pid ? (read(`/proc/${pid}/mountinfo`)?.toString('utf8') ?? '').split('\n').filter((l) => l.includes(' /run/portcullis/media/')) : [];
  if (changed('mounts', lines)) emit('mounts', { lines });
}

// Every USB device: ids, authorized (USBGuard), and the driver bound to each interface.
function usb() {
  const base = '/sys/bus/usb/devices';
  const devices = [];
  for (const name of readdirSync(base).filter((n) => !n.includes(':') && !n.startsWith('usb'))) {
    const interfaces = readdirSync(base).filter((n) => n.startsWith(`${name}:`)).map((i) => {
      let driver = null;
      try { driver = readlinkSync(`${base}/${i}/driver`).split('/').pop(); } catch { /* none */ }
      return { name: i, class: text(`${base}/${i}/bInterfaceClass`), driver };
    });
    devices.push({ name, id: `${text(`${base}/${name}/idVendor`)}:${text(`${base}/${name}/idProduct`)}`, product: text(`${base}/${name}/product`), authorized: text(`${base}/${name}/authorized`), interfaces });
  }
  if (changed('usb', devices)) emit('usb', { devices });
  const inputs = (text('/proc/bus/input/devices') ?? '').split('\n').filter((l) => l.startsWith('N: Name=')).map((l) => l.slice(8));
  if (changed('inputs', inputs)) emit('inputs', { names: inputs });
}

// Listening TCP sockets and bound UDP sockets (state 0A is LISTEN; UDP 07 is unconnected).
function listening() {
  const sockets = [];
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6']) {
    for (const line of (text(`/proc/net/${proto}`) ?? '').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 3 && ((proto.startsWith('tcp') && f[3] === '0A') || (proto.startsWith('udp') && f[3] === '07'))) sockets.push(`${proto} ${f[1]}`);
    }
  }
  if (changed('listen', sockets)) emit('listen', { sockets });
}

function follow(kind, command, args) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  let buffered = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop();
    for (const line of lines) if (line.trim()) emit(kind, { line });
  });
}

emit('hello', { uptime: text('/proc/uptime') });
follow('udev', 'udevadm', ['monitor', '--udev', '--subsystem-match=block', '--subsystem-match=usb']);
follow('journal', 'journalctl', ['-f', '-n', 'all', '-o', 'short-monotonic', '--no-hostname']);
setInterval(screen, 250);
setInterval(mounts, 250);
setInterval(usb, 1000);
setInterval(listening, 2000);
