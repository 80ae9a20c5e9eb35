/**
 * Measures INSTREAM throughput of ClamdClient (1 and 2 concurrent streams)
 * against `clamdscan --multiscan --fdpass` (clamd reads the files itself) on
 * the same random files, with clamd's result cache off and the test database.
 * A measurement for people, not a test.
 *
 * Run: node bench/clamd-throughput.ts [FILES] [MIB_PER_FILE] [ROUNDS]
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClamdClient } from '../kiosk/engines/clamav/client.ts';
import { startTestClamd } from '../test/support/test-clamd.ts';

const MiB = 1024 * 1024;

async function scanFiles(client: ClamdClient, files: readonly string[], concurrency: number): Promise<void> {
  const queue = [...files];
  const worker = async (): Promise<void> => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const result = await client.scanStream(createReadStream(file, { highWaterMark: MiB }));
      if (result.status !== 'clean') throw new Error(`${file}: expected clean, got ${JSON.stringify(result)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

function run(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited with ${String(code)}`))));
  });
}

async function median(rounds: number, work: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = process.hrtime.bigint();
    await work();
    times.push(Number(process.hrtime.bigint() - started) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? Number.NaN;
}

async function main(count: number, mibPerFile: number, rounds: number): Promise<void> {
  const clamd = await startTestClamd({ disableCache: true });
  const dataDir = await mkdtemp(join(tmpdir(), 'pc-measure-'));
  try {
    await mkdir(dataDir, { recursive: true });
    const files: string[] = [];
    const block = new Uint8Array(mibPerFile * MiB);
    for (let i = 0; i < count; i++) {
      randomFillSync(block);
      const file = join(dataDir, `random-${i}.bin`);
      await writeFile(file, block);
      files.push(file);
    }
    for (const file of files) await readFile(file); // warm the page cache so every run reads from memory
    const totalMiB = count * mibPerFile;
    const rows: [string, number][] = [
      ['INSTREAM, 1 stream (ClamdClient)', await median(rounds, () => scanFiles(clamd.client, files, 1))],
      ['INSTREAM, 2 streams (ClamdClient)', await median(rounds, () => scanFiles(clamd.client, files, 2))],
      ['clamdscan --stream (INSTREAM, C client)', await median(rounds, () => run('clamdscan', ['--config-file', clamd.configPath, '--stream', '--no-summary', ...files]))],
      ['clamdscan --multiscan --fdpass', await median(rounds, () => run('clamdscan', ['--config-file', clamd.configPath, '--multiscan', '--fdpass', '--no-summary', ...files]))],
    ];
    const reference = rows[rows.length - 1]?.[1] ?? Number.NaN;
    process.stdout.write(`${count} files x ${mibPerFile} MiB random data = ${totalMiB} MiB; clamd ${clamd.version.raw}, DisableCache yes; median of ${rounds}\n`);
    for (const [name, seconds] of rows) {
      const rate = (totalMiB / seconds).toFixed(0).padStart(6);
      process.stdout.write(`${name.padEnd(42)} ${seconds.toFixed(2).padStart(7)} s ${rate} MiB/s  x${(reference / seconds).toFixed(2)} of fdpass\n`);
    }
  } finally {
    await clamd.dispose();
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const [files = '4', mib = '100', rounds = '3'] = process.argv.slice(2);
  await main(Number(files), Number(mib), Number(rounds));
}
