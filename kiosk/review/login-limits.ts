/**
 * How many password sign-ins the review evaluates: per account, so one
 * person's typing cannot lock the others out, and per client address, so one
 * client cannot spray passwords across many user names. Everyone reached
 * through an SSH tunnel or a proxy shares one address, which is why the
 * address limit is the higher one. An attempt is counted when it starts,
 * before the (slow, asynchronous) scrypt check: concurrent guesses cannot
 * exceed the limit. A successful sign-in takes its own attempt back; earlier
 * failures still count until they leave the window. One-time tokens are not
 * limited (a 256-bit token cannot be guessed): a valid one always signs in,
 * which is how staff get in while their account is locked.
 */

export interface LoginLimits {
  readonly windowMs: number; // ms over which attempts are counted
  readonly perAccount: number; // failed or pending password attempts for one user name within the window
  readonly perAddress: number; // failed or pending sign-ins from one client address within the window
}

export const LOGIN_LIMITS: LoginLimits = { windowMs: 10 * 60_000, perAccount: 5, perAddress: 20 };

const PRUNE_ABOVE = 1000; // keys kept before expired ones are dropped

interface Attempt {
  readonly at: number; // ms since the epoch
}

/** A counted attempt: it stays counted as a failure unless `succeeded` takes it back. */
export interface AttemptTicket {
  succeeded(): void;
}

export type AttemptAnswer =
  | { readonly ok: true; readonly ticket: AttemptTicket }
  | { readonly ok: false; readonly locked: 'account' | 'address'; readonly retryAfterMs: number };

export class LoginThrottle {
  private readonly attempts = new Map<string, Attempt[]>(); // "account:NAME" or "address:IP" -> attempts in the window
  private readonly limits: LoginLimits;
  private readonly now: () => number;

  constructor(limits: LoginLimits = LOGIN_LIMITS, now: () => number = Date.now) {
    this.limits = limits;
    this.now = now;
  }

  /**
   * Counts a password attempt for `account` from `address` before it is
   * checked, or refuses it when either is at its limit (a refused attempt is
   * not counted, so a lock ends when the window says, however often it is tried).
   */
  beginPassword(address: string, account: string): AttemptAnswer {
    return this.begin([[`address:${address}`, this.limits.perAddress, 'address'], [`account:${account}`, this.limits.perAccount, 'account']]);
  }

  /** A sign-in that failed without a password check (a wrong token, an empty form): counted for the address while it is under its limit. */
  failedWithoutPassword(address: string): void {
    this.begin([[`address:${address}`, this.limits.perAddress, 'address']]);
  }

  private begin(keys: ReadonlyArray<readonly [string, number, 'account' | 'address']>): AttemptAnswer {
    const t = this.now();
    if (this.attempts.size > PRUNE_ABOVE) this.prune(t);
    for (const [key, limit, locked] of keys) {
      const recent = this.recent(key, t);
      if (recent.length >= limit) return { ok: false, locked, retryAfterMs: Math.max(1, recent[recent.length - limit]!.at + this.limits.windowMs - t) };
    }
    const attempt: Attempt = { at: t };
    for (const [key] of keys) this.recent(key, t).push(attempt);
    return {
      ok: true,
      ticket: {
        succeeded: () => {
          for (const [key] of keys) {
            const list = this.attempts.get(key);
            const i = list?.indexOf(attempt) ?? -1;
            if (i >= 0) list!.splice(i, 1);
          }
        },
      },
    };
  }

  /** The attempts under `key` still inside the window (the stored list, trimmed). */
  private recent(key: string, t: number): Attempt[] {
    const list = (this.attempts.get(key) ?? []).filter((a) => t - a.at < this.limits.windowMs);
    this.attempts.set(key, list);
    return list;
  }

  private prune(t: number): void {
    for (const key of [...this.attempts.keys()]) {
      if (this.recent(key, t).length === 0) this.attempts.delete(key);
    }
  }
}
