// Shared by the bin shims: plain JavaScript so that any Node can run it.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const MIN_MAJOR = 24;

/**
 * V8 flags the kiosk runs with. A scan's live heap stays at 10-20 MiB however
 * large the drive, but V8 sizes its heap by allocation rate: its young
 * generation grows to 3 x 32 MiB, and its old generation and code keep
 * headroom that a long scan fills, so peak RSS still grew with the drive
 * (bench/scan.ts --memory). A 4 MiB semi-space and V8's optimize-for-size mode
 * keep it flat, for about 2 CPU-seconds more on the 2 GiB scan bench (whose
 * time is clamd's). They only work at start-up; `./portcullis` and the
 * kiosk launcher's shebang pass the same flags (test/unit/node-guard.test.ts).
 */
export const KIOSK_NODE_FLAGS = ['--max-semi-space-size=4', '--optimize-for-size'];

/**
 * Runs `mainUrl`'s `main(argv)` on Node 24 or later with `nodeFlags`: in this
 * process when it already has them, else in a child on the right Node.
 */
export function runOnSupportedNode(mainUrl, what, nodeFlags = []) {
  const major = Number(process.versions.node.split('.')[0]);
  const flagsPresent = nodeFlags.every((f) => process.execArgv.includes(f));
  if (major >= MIN_MAJOR && flagsPresent) {
    import(mainUrl.href).then(
      async (mod) => {
        process.exitCode = await mod.main(process.argv.slice(2));
      },
      (error) => {
        console.error(error);
        process.exitCode = 70;
      },
    );
    return;
  }
  let node = process.execPath;
  if (major < MIN_MAJOR) {
    const tools = fileURLToPath(new URL('../.tools/', import.meta.url));
    // The newest pinned Node for this machine: versions compared as numbers (v24.9 < v24.21).
    const suffix = `-linux-${process.arch}`;
    const version = (d) => d.slice('node-v'.length, -suffix.length).split('.').map(Number);
    const newer = (a, b) => { for (let i = 0; i < 3; i++) if (version(a)[i] !== version(b)[i]) return version(a)[i] - version(b)[i]; return 0; };
    const dir = existsSync(tools) ? readdirSync(tools).filter((d) => d.startsWith('node-v24.') && d.endsWith(suffix)).sort(newer).pop() : undefined;
    node = dir ? `${tools}${dir}/bin/node` : undefined;
    if (!node || !existsSync(node)) {
      console.error(`portcullis-${what}: needs Node.js ${MIN_MAJOR} or later (this is ${process.version}); run ./portcullis setup`);
      process.exitCode = 69;
      return;
    }
  }
  // The child gets this process's own Node options too, and the stop signals a service
  // manager sends to this process alone: a station stopped with SIGTERM must still unmount
  // and stop clamd. Ctrl-C reaches the child from the terminal itself (same process group),
  // so SIGINT is only kept from ending this process early, not sent a second time.
  let child;
  try {
    child = spawn(node, [...process.execArgv.filter((a) => !nodeFlags.includes(a)), ...nodeFlags, fileURLToPath(mainUrl), ...process.argv.slice(2)], { stdio: 'inherit' });
  } catch (error) {
    console.error(`portcullis-${what}: cannot start ${node}: ${error.message}`);
    process.exitCode = 70;
    return;
  }
  const forward = (signal) => () => child.kill(signal);
  const handlers = { SIGTERM: forward('SIGTERM'), SIGHUP: forward('SIGHUP'), SIGINT: () => {} };
  for (const [signal, handler] of Object.entries(handlers)) process.on(signal, handler);
  child.on('error', (error) => {
    console.error(`portcullis-${what}: cannot start ${node}: ${error.message}`);
    process.exitCode = 70;
  });
  child.on('exit', (code, signal) => {
    for (const [name, handler] of Object.entries(handlers)) process.off(name, handler);
    if (signal) {
      // End the same way, so a shell or service manager sees the signal, not an ordinary failure.
      process.exitCode = 128 + (constants.signals[signal] ?? 0);
      process.kill(process.pid, signal);
      return;
    }
    process.exitCode = code ?? 70;
  });
}
