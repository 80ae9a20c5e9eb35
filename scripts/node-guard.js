// Shared by the bin shims: plain JavaScript so that any Node can run it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MIN_MAJOR = 24;

export function runOnSupportedNode(mainUrl, what) {
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= MIN_MAJOR) {
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
  const tools = fileURLToPath(new URL('../.tools/', import.meta.url));
  const dir = existsSync(tools) ? readdirSync(tools).filter((d) => d.startsWith('node-v24.')).sort().pop() : undefined;
  const node = dir ? `${tools}${dir}/bin/node` : undefined;
  if (!node || !existsSync(node)) {
    console.error(`portcullis-${what}: needs Node.js ${MIN_MAJOR} or later (this is ${process.version}); run ./portcullis setup`);
    process.exitCode = 69;
    return;
  }
  const result = spawnSync(node, [fileURLToPath(mainUrl), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exitCode = result.status ?? 70;
}
