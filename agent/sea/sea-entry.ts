/**
 * Entry point of the Windows single executable (Node SEA). It is bundled to
 * one CommonJS file (Node 24's SEA runs CommonJS only) with the WebAssembly
 * BLAKE3 inlined by hash-wasm; docs/agent.md "Building the single executable".
 * In a SEA, process.argv[1] repeats the executable's path, so arguments start at 2.
 */
import { main } from '../main.ts';

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
