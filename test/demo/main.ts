/**
 * `./portcullis demo [--dir DIR]`: the two-program demo (demo.ts): a drive
 * image through the kiosk and then the HMI agent, on built-in defaults.
 * `./portcullis demo station [--work-dir DIR]`: the station's screen with
 * the demo drive inserted by hand (station-demo.ts). Exit 0 when the demo
 * showed what it should, 1 otherwise, 64 on a usage error.
 */
import { parseArgs } from 'node:util';
import { PortcullisError } from '../../manifest/index.ts';
import { EXIT } from '../../kiosk/core/exit-codes.ts';

const USAGE = 'usage: ./portcullis demo [--dir DIR] | ./portcullis demo station [--work-dir DIR]';

export async function main(argv: readonly string[]): Promise<number> {
  try {
    if (argv[0] === 'station') {
      const { values, positionals } = parseArgs({ args: argv.slice(1), options: { 'work-dir': { type: 'string' } }, strict: true, allowPositionals: true });
      if (positionals.length > 0) throw new TypeError(`unexpected argument ${positionals[0]!}`);
      const { runDemoStation } = await import('./station-demo.ts');
      return await runDemoStation(values['work-dir'] ? { workDir: values['work-dir'] } : {});
    }
    const { values, positionals } = parseArgs({ args: [...argv], options: { dir: { type: 'string' } }, strict: true, allowPositionals: true });
    if (positionals.length > 0) throw new TypeError(`unexpected argument ${positionals[0]!}`);
    const { runDemo } = await import('./demo.ts');
    const result = await runDemo(values.dir ? { dir: values.dir } : {});
    return result.ok ? EXIT.OK : EXIT.FAILURE;
  } catch (error) {
    if (error instanceof TypeError) {
      console.error(`demo: ${error.message}\n${USAGE}`);
      return EXIT.USAGE;
    }
    if (error instanceof PortcullisError) {
      console.error(`demo: ${error.code}: ${error.message}`);
      return EXIT.FAILURE;
    }
    throw error;
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
