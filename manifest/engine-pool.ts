/**
 * Reuse of BLAKE3 engines from file to file, shared by every implementation
 * (hash-wasm, the SIMD build, the kiosk's native addon): creating an engine
 * per file costs more than hashing a small file, and some hold memory the
 * garbage collector does not see until it runs. A hasher hands its engine
 * back only once its digest is taken, so an engine is never shared while in
 * use; an update after the digest, or a second digest, throws.
 */
import type { Blake3Hasher } from './digest.ts';

export class EnginePool<E> {
  readonly #idle: E[] = [];
  readonly #name: string;
  readonly #maxIdle: number;
  readonly #update: (engine: E, data: Uint8Array) => void;
  readonly #digestHex: (engine: E) => string;

  /** `digestHex` also readies the engine for reuse where that is not done when it is taken (reset, init). */
  constructor(name: string, maxIdle: number, update: (engine: E, data: Uint8Array) => void, digestHex: (engine: E) => string) {
    this.#name = name;
    this.#maxIdle = maxIdle;
    this.#update = update;
    this.#digestHex = digestHex;
  }

  /** A finished engine to use again, or undefined: the caller creates one. */
  take(): E | undefined {
    return this.#idle.pop();
  }

  /** A one-use hasher over `engine`, which must be ready for a new hash. */
  hasher(engine: E): Blake3Hasher {
    let finished = false;
    return {
      update: (data) => {
        if (finished) throw new Error(`${this.#name}: update after digest`);
        this.#update(engine, data);
      },
      digestHex: () => {
        if (finished) throw new Error(`${this.#name}: digest twice`);
        finished = true;
        const hex = this.#digestHex(engine);
        if (this.#idle.length < this.#maxIdle) this.#idle.push(engine); // only once finished: never shared while in use
        return hex;
      },
    };
  }
}
