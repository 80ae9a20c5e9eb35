/**
 * The review page in a real browser: Debian's Chromium, headless, driven by
 * playwright-core, against the review server on 127.0.0.1 with a real audit
 * database and an imported agent log.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReviewStore, type StaffStore } from '../../kiosk/review/review-store.ts';
import { startReviewServer, type ReviewServer } from '../../kiosk/review/server.ts';
import { EXPORT_HMI, HMI, HOSTILE_IMG, HOSTILE_SCRIPT, parseCsv, writeAgentExport, writeReviewFixture } from '../support/review-fixture.ts';

const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'correct horse battery staple';
const CAROL_PASSWORD = 'carol types carefully';

describe('review page in headless Chromium', () => {
  // scripts/setup.sh installs Debian's chromium: a missing browser is a failure, never a skip.
  it('has the real browser to test with', () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: run ./portcullis setup (Debian package chromium)`).toBe(true);
  });

  let dir: string;
  let staff: StaffStore;
  let server: ReviewServer;
  let context: BrowserContext;
  let page: Page;
  const dialogs: string[] = [];
  const externalRequests: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'review-browser-'));
    const { auditDb, agentLog } = writeReviewFixture(dir);
    staff = openReviewStore(join(dir, 'review.db'));
    await staff.addUser('alice', PASSWORD);
    await staff.addUser('carol', CAROL_PASSWORD);
    staff.importAgentLog(readFileSync(agentLog));
    staff.importAgentLog(readFileSync(writeAgentExport(dir)));
    server = await startReviewServer({ auditDb, staff, port: 0 });
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 1000 },
    });
    // Nothing may leave loopback.
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.hostname !== '127.0.0.1') {
        externalRequests.push(url.href);
        return route.abort();
      }
      return route.continue();
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
  });

  afterAll(async () => {
    await context?.close();
    await server?.close();
    staff?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sends a visitor without a session to the login page and refuses a wrong password', async () => {
    await page.goto(`${server.url}/`);
    expect(new URL(page.url()).pathname).toBe('/login');
    await page.fill('#password-login input[name=username]', 'alice');
    await page.fill('#password-login input[name=password]', 'wrong password!!');
    await page.click('#password-login button');
    await expect.poll(() => page.locator('#login-error').count()).toBe(1);
  });

  it('signs in with a staff account and lists the scans with the chain state', async () => {
    await page.goto(`${server.url}/login`);
    await page.fill('#password-login input[name=username]', 'alice');
    await page.fill('#password-login input[name=password]', PASSWORD);
    await page.click('#password-login button');
    await page.waitForSelector('#scans tbody tr');
    await expect.poll(() => page.locator('#scans tbody tr').count()).toBe(5);
    await expect.poll(() => page.textContent('#chain')).toMatch(/^chain intact: \d+ records/);
    expect(await page.textContent('#who')).toBe('alice');
    await expect.poll(() => page.locator('#chart svg rect').count()).toBeGreaterThan(0);
    await expect.poll(() => page.locator('#top-reasons li').allTextContents()).toContain('UNSAFE_NAME: 3');
  });

  it('filters by verdict and by device serial', async () => {
    await page.selectOption('#filters select[name=verdict]', 'partial');
    await page.click('#filters button');
    await expect.poll(() => page.locator('#scans tbody tr').count()).toBe(2);
    await page.selectOption('#filters select[name=verdict]', '');
    await page.fill('#filters input[name=serial]', 'KINGSTON-1');
    await page.click('#filters button');
    await expect.poll(() => page.locator('#scans tbody tr').count()).toBe(1);
    expect(await page.textContent('#scans tbody tr td:last-child')).toBe('scan-b');
    await page.fill('#filters input[name=serial]', '');
    await page.click('#filters button');
    await expect.poll(() => page.locator('#scans tbody tr').count()).toBe(5);
  });

  it('shows a scan in detail with the HMI that imported its files and what the agent refused', async () => {
    await page.click('a.scan-link:text-is("scan-a")');
    await page.waitForSelector('#detail-agent tr:nth-child(2)');
    expect(await page.textContent('#detail-id')).toBe('scan-a');
    const details = await page.textContent('#detail-body');
    expect(details).toContain('ClamAV 1.4.3');
    expect(details).toContain(`sha256:${'1'.repeat(64)}`);
    const agentRows = await page.locator('#detail-agent tr').allTextContents();
    expect(agentRows.some((r) => r.includes(HMI) && r.includes('IMPORTED') && r.includes('firmware/plc.bin'))).toBe(true);
    expect(agentRows.some((r) => r.includes('FILE_UNLISTED') && r.includes('autorun.inf'))).toBe(true);
  });

  it('marks the HMI records imported from an export, whose chain could not be checked, apart from verified ones', async () => {
    const chainCells = (hmi: string) => page.locator('#detail-agent tr', { hasText: hmi }).locator('td.chain');
    await expect.poll(() => chainCells(EXPORT_HMI).count()).toBe(2);
    const classes = async (hmi: string): Promise<Array<string | null>> => Promise.all((await chainCells(hmi).all()).map((cell) => cell.getAttribute('class')));
    expect(await classes(HMI)).toEqual(['chain chain-verified', 'chain chain-verified', 'chain chain-verified', 'chain chain-verified']);
    expect(await classes(EXPORT_HMI)).toEqual(['chain chain-unverified', 'chain chain-unverified']);
    for (const text of await chainCells(EXPORT_HMI).allTextContents()) expect(text).toMatch(/^unverified/);
    expect(await chainCells(EXPORT_HMI).first().isVisible()).toBe(true);
  });

  it('downloads the HMI records of the filtered scans with their chain state', async () => {
    await page.fill('#filters input[name=serial]', 'SER-scan-a');
    await page.click('#filters button');
    await expect.poll(() => page.locator('#scans tbody tr').count()).toBe(1);
    const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#export-agent-csv')]);
    const [header, ...rows] = parseCsv(readFileSync(await csv.path(), 'utf8'));
    const col = (name: string): number => header!.indexOf(name);
    expect(rows.map((r) => `${r[col('hmi')]} ${r[col('chain')]}`).sort()).toEqual([
      `${HMI} verified`, `${HMI} verified`, `${HMI} verified`, `${HMI} verified`, `${EXPORT_HMI} unverified`, `${EXPORT_HMI} unverified`,
    ]);
    const [json] = await Promise.all([page.waitForEvent('download'), page.click('#export-agent-json')]);
    const records = JSON.parse(readFileSync(await json.path(), 'utf8')) as Array<{ hmi: string; chain: string }>;
    expect(records.filter((r) => r.chain === 'unverified').map((r) => r.hmi)).toEqual([EXPORT_HMI, EXPORT_HMI]);
    await page.fill('#filters input[name=serial]', '');
    await page.click('#filters button');
    await expect.poll(() => page.locator('#scans tbody tr').count()).toBe(5);
  });

  it('renders hostile markup in file names, labels and reasons as literal text', async () => {
    await page.fill('#filters input[name=file]', '<img');
    await page.click('#filters button');
    await expect.poll(() => page.locator('#scans tbody tr').count()).toBe(1);
    await page.click('a.scan-link:text-is("scan-e")');
    await expect.poll(() => page.textContent('#detail-id')).toBe('scan-e');
    const names = await page.locator('#detail-files td.name').allTextContents();
    expect(names).toContain(HOSTILE_IMG);
    expect(names).toContain(HOSTILE_SCRIPT);
    expect(await page.locator(`#detail-files td:text-is(${JSON.stringify(HOSTILE_IMG)})`).isVisible()).toBe(true);
    // No element was created from the names: the only img/script elements are the page's own.
    expect(await page.locator('#detail img, #detail script, #detail svg, #scans img, #scans svg').count()).toBe(0);
    expect(await page.textContent('#detail-body')).toContain('<svg onload=alert(2)>');
    // The picture in docs/ is renewed only when asked (PORTCULLIS_DOC_SCREENSHOTS=1), so a test run leaves the checkout clean.
    await page.screenshot({ path: process.env.PORTCULLIS_DOC_SCREENSHOTS === '1' ? join(import.meta.dirname, '../../docs/review-screenshot.png') : join(tmpdir(), 'portcullis-review-screenshot.png'), fullPage: true });
    expect(dialogs).toEqual([]);
  });

  it('downloads the filtered view as CSV and JSON', async () => {
    await page.fill('#filters input[name=file]', '');
    await page.selectOption('#filters select[name=verdict]', 'rejected');
    await page.click('#filters button');
    await expect.poll(() => page.locator('#scans tbody tr').count()).toBe(1);
    const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
    const csvText = readFileSync(await csv.path(), 'utf8');
    const lines = csvText.trimEnd().split('\r\n');
    expect(lines[0]).toMatch(/^scan_id,status,/);
    expect(lines.slice(1).every((l) => l.startsWith('scan-c,rejected,'))).toBe(true);
    const [json] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
    const scans = JSON.parse(readFileSync(await json.path(), 'utf8')) as Array<{ scanId: string }>;
    expect(scans.map((s) => s.scanId)).toEqual(['scan-c']);
  });

  it('signs out, and a one-time token signs in exactly once', async () => {
    await page.click('.logout button');
    await page.waitForURL(/\/login$/);
    const response = await page.request.get(`${server.url}/api/scans`);
    expect(response.status()).toBe(401);
    const { token } = staff.issueToken('test');
    await page.fill('#token-login input[name=token]', token);
    await page.click('#token-login button');
    await page.waitForSelector('#scans tbody tr');
    expect(await page.textContent('#who')).toBe('token');
    await page.click('.logout button');
    await page.waitForURL(/\/login$/);
    await page.fill('#token-login input[name=token]', token);
    await page.click('#token-login button');
    await expect.poll(() => page.locator('#login-error').count()).toBe(1);
    expect(dialogs).toEqual([]);
    expect(externalRequests).toEqual([]);
  });

  it('pauses the password sign-in of an account after five wrong passwords, while another account and a one-time token still sign in', async () => {
    const signIn = async (user: string, password: string): Promise<void> => {
      await page.fill('#password-login input[name=username]', user);
      await page.fill('#password-login input[name=password]', password);
      await page.click('#password-login button');
    };
    await page.goto(`${server.url}/login`);
    for (let i = 0; i < 5; i++) {
      await signIn('carol', `not carol's password ${i}`);
      await expect.poll(() => page.locator('#login-error').count()).toBe(1);
    }
    await signIn('carol', CAROL_PASSWORD);
    await expect.poll(() => page.locator('#login-locked').count()).toBe(1);
    await signIn('alice', PASSWORD);
    await page.waitForSelector('#scans tbody tr');
    expect(await page.textContent('#who')).toBe('alice');
    await page.click('.logout button');
    await page.waitForURL(/\/login$/);
    await signIn('carol', CAROL_PASSWORD);
    await expect.poll(() => page.locator('#login-locked').count()).toBe(1);
    await page.fill('#token-login input[name=token]', staff.issueToken('locked out').token);
    await page.click('#token-login button');
    await page.waitForSelector('#scans tbody tr');
    expect(await page.textContent('#who')).toBe('token');
    expect(dialogs).toEqual([]);
  });
});
