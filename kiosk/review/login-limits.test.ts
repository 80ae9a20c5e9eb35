import { describe, expect, it } from 'vitest';
import { LoginThrottle } from './login-limits.ts';

describe('sign-in limits', () => {
  const limits = { windowMs: 600_000, perAccount: 5, perAddress: 20 };

  it('ends a lock when the oldest counted failure leaves the window, however often the locked account is tried', () => {
    let t = 0;
    const throttle = new LoginThrottle(limits, () => t);
    for (let i = 0; i < 5; i++) {
      expect(throttle.beginPassword('127.0.0.1', 'alice').ok).toBe(true);
      t += 1000;
    }
    for (let i = 0; i < 50; i++) expect(throttle.beginPassword('127.0.0.1', 'alice')).toMatchObject({ ok: false, locked: 'account', retryAfterMs: 600_000 - 5000 });
    t = 600_000;
    expect(throttle.beginPassword('127.0.0.1', 'alice').ok).toBe(true);
  });

  it('gives a successful attempt back, but keeps the failures before it', () => {
    const throttle = new LoginThrottle(limits, () => 0);
    for (let i = 0; i < 4; i++) expect(throttle.beginPassword('127.0.0.1', 'alice').ok).toBe(true);
    const right = throttle.beginPassword('127.0.0.1', 'alice');
    if (!right.ok) throw new Error('the fifth attempt should be counted');
    right.ticket.succeeded();
    expect(throttle.beginPassword('127.0.0.1', 'alice').ok).toBe(true);
    expect(throttle.beginPassword('127.0.0.1', 'alice')).toMatchObject({ ok: false, locked: 'account' });
  });

  it('counts wrong tokens against the address only, up to its limit', () => {
    const throttle = new LoginThrottle(limits, () => 0);
    for (let i = 0; i < 100; i++) throttle.failedWithoutPassword('10.0.0.9');
    expect(throttle.beginPassword('10.0.0.9', 'alice')).toMatchObject({ ok: false, locked: 'address' });
    expect(throttle.beginPassword('10.0.0.8', 'alice').ok).toBe(true);
  });
});
