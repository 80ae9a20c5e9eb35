// Shared by the bin shims: plain JavaScript so that any Node can run it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MIN_MAJOR = 24;

/**
 * V8 flags the kiosk runs with. V8 grows its young generation with the
 * allocation rate (to 3 x 32 MiB here), so a long scan's peak RSS grew with
 * the drive although its live heap stays at about 15 MiB; a 4 MiB semi-space
 * keeps it flat (bench/scan.ts --memory). The flag only works at start-up.
 * `./portcullis` passes the same flags.
 */
export const KIOSK_NODE_FLAGS = ['--max-semi-space-size=4'];

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
    const dir = existsSync(tools) ? readdirSync(tools).filter((d) => d.startsWith('node-v24.')).sort().pop() : undefined;
    node = dir ? `${tools}${dir}/bin/node` : undefined;
    if (!node || !existsSync(node)) {
      console.error(`portcullis-${what}: needs Node.js ${MIN_MAJOR} or later (this is ${process.version}); run ./portcullis setup`);
      process.exitCode = 69;
      return;
    }
  }
  const result = spawnSync(node, [...nodeFlags, fileURLToPath(mainUrl), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exitCode = result.status ?? 70;
}
