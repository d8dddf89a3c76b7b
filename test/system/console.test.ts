/**
 * The operators' web console (/console) in a real headless Chromium, driven
 * by playwright-core, against the real service (ROLE=api, so a committed
 * draw stays committed until the test records its settlement as unknown
 * through the engine, as test/contract/api/resolve.test.ts does).
 *
 * Proves: signing in (and a wrong key refused), the key kept in session
 * storage only; the customer lookup on the first view; a product's numbers
 * changing after a reserve made through the API; pause and resume; a frozen
 * customer's reason in English and in Chinese (the service's blockerDetails
 * when it sends them, else the console's own text); holds with their events;
 * an unknown settlement resolved; a client key sees no admin actions; labels
 * found by getByLabel and every form submitted with Enter; every request the
 * page makes goes to the service's origin, and the CSP is strict.
 * A screenshot of each view goes to test-results/console/.
 *
 * Needs /usr/bin/chromium (Debian's chromium; .ci/run installs it).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaEngine } from '../../src/engine/quotaEngine.js';
import { CONSOLE_CSP } from '../../src/http/console.js';
import { createEngineContext, uniqueId, type EngineContext } from '../support/engineContext.js';
import { ADMIN_KEY, CLIENT_KEY, startServiceContext, type ServiceContext } from '../support/serviceContext.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = join(ROOT, 'test-results', 'console');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

let svc: ServiceContext;
let engineContext: EngineContext;
let engine: QuotaEngine;
let browser: Browser;
let context: BrowserContext;
/** Every URL any page of the browser context asked for. */
const requested: string[] = [];
/** Console errors of the pages (a CSP violation shows up here). */
const pageErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
  // The console is bundled at build time; build it so this file runs on its own.
  await promisify(execFile)(process.execPath, [join(ROOT, 'scripts', 'build-console.mjs')], { cwd: ROOT });
  mkdirSync(SHOTS, { recursive: true });
  svc = await startServiceContext({ ROLE: 'api' });
  engineContext = await createEngineContext(svc.keyPrefix);
  engine = engineContext.engine;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.on('request', (r) => requested.push(r.url()));
  context.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
}, 120_000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  await engineContext?.close();
  await svc?.stop();
});

async function api(
  method: string,
  path: string,
  body?: unknown,
  key = ADMIN_KEY,
  headers: Record<string, string> = {},
) {
  const res = await svc.call(method, path, { body, key, headers });
  expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
  return res.body;
}

async function product(capacity = 1_000_000): Promise<string> {
  const id = uniqueId('console-p');
  await api('PUT', `/v1/products/${id}`, { capacity });
  return id;
}

async function reserve(productId: string, customerId: string, amount: number) {
  return api('POST', `/v1/products/${productId}/reservations`, { customerId, amount }, CLIENT_KEY, {
    'Idempotency-Key': uniqueId('k'),
  });
}

async function openSignedIn(key: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${svc.baseUrl}/console`);
  await page.getByLabel('API key', { exact: true }).fill(key);
  await page.getByLabel('API key', { exact: true }).press('Enter');
  await page.getByTestId('role').waitFor();
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

/** The products table's cell for one field of one product (its raw integer in data-value). */
const cell = (page: Page, productId: string, field: string) =>
  page.locator(`tr[data-product="${productId}"] td[data-field="${field}"]`);

/** Opens the products view, narrowed to `productId` by the filter, and waits for its row. */
async function showProduct(page: Page, productId: string) {
  await page.getByRole('button', { name: 'Products', exact: true }).click();
  await page.getByLabel('Product', { exact: true }).fill(productId);
  await page.locator(`tr[data-product="${productId}"]`).waitFor();
  expect(await page.locator('tr[data-product]').count()).toBe(1);
}

describe('the page itself', () => {
  it('is served without a key, with a strict CSP, and asks for an API key', async () => {
    const res = await fetch(`${svc.baseUrl}/console`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).toContain("default-src 'none'");
    expect(CONSOLE_CSP).toContain("connect-src 'self'");
    expect(CONSOLE_CSP).not.toMatch(/unsafe-|https?:|\*/);
    const html = await res.text();
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const script = await fetch(`${svc.baseUrl}/console/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${svc.baseUrl}/console/nothing-here.js`)).status).toBe(404);
  });

  it('refuses an unknown key and keeps the page on the sign-in form', async () => {
    const page = await context.newPage();
    await page.goto(`${svc.baseUrl}/console`);
    await shot(page, 'sign-in');
    await page.getByLabel('API key', { exact: true }).fill('not-a-key-of-this-service');
    await page.getByLabel('API key', { exact: true }).press('Enter');
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/not known/);
    expect(await page.getByTestId('role').count()).toBe(0);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.close();
  });
});

describe('signed in as an admin', () => {
  it('opens on the customer lookup, with the key in session storage only', async () => {
    const page = await openSignedIn(ADMIN_KEY);
    expect(await page.getByTestId('role').textContent()).toContain('admin');
    // The first view after signing in is the customer lookup: its labelled inputs are there.
    await expect.poll(() => page.getByLabel('Customer', { exact: true }).count()).toBe(1);
    expect(await page.getByLabel('Product', { exact: true }).count()).toBe(1);
    const storage = await page.evaluate(() => ({
      session: Object.fromEntries(Object.entries(sessionStorage)),
      local: localStorage.length,
      cookies: document.cookie,
    }));
    expect(Object.values(storage.session)).toContain(ADMIN_KEY);
    expect(storage.local).toBe(0);
    expect(storage.cookies).toBe('');
    // A reload in the same tab stays signed in (the key is checked again).
    await page.reload();
    await page.getByTestId('role').waitFor();
    await page.close();
  });

  it("shows a product's numbers change after a reserve made through the API, and pauses and resumes it", async () => {
    const p = await product(1_000_000);
    await api('PUT', `/v1/products/${p}/customers/c1`, { limit: 100_000 });
    const page = await openSignedIn(ADMIN_KEY);
    await showProduct(page, p);
    expect(await cell(page, p, 'capacity').getAttribute('data-value')).toBe('1000000');
    expect(await cell(page, p, 'held').getAttribute('data-value')).toBe('0');
    expect(await cell(page, p, 'available').getAttribute('data-value')).toBe('1000000');

    await reserve(p, 'c1', 2_500);
    // The view refreshes itself (every 2 s): no click.
    await expect.poll(() => cell(page, p, 'held').getAttribute('data-value'), { timeout: 10_000 }).toBe('2500');
    expect(await cell(page, p, 'available').getAttribute('data-value')).toBe('997500');
    expect(await cell(page, p, 'held').textContent()).toBe('2,500');
    await shot(page, 'products');

    // Pause with a reason (Enter submits), then resume.
    await page.locator(`tr[data-product="${p}"]`).getByRole('button', { name: 'Pause' }).click();
    await page.getByLabel('Pause reason', { exact: true }).fill('bank maintenance');
    await page.getByLabel('Pause reason', { exact: true }).press('Enter');
    await expect.poll(() => cell(page, p, 'status').textContent()).toContain('paused (bank maintenance)');
    expect(await api('GET', `/v1/products/${p}`)).toMatchObject({ status: 'paused', pauseReason: 'bank maintenance' });
    await page.locator(`tr[data-product="${p}"]`).getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => cell(page, p, 'status').textContent()).toBe('open');
    expect(await api('GET', `/v1/products/${p}`)).toMatchObject({ status: 'open' });
    await page.close();
  });

  it(
    'looks up a frozen customer: the reason in English, then in ' +
      "Chinese, and the customer's holds with their events",
    async () => {
      const p = await product(1_000_000);
      await api('PUT', `/v1/products/${p}/customers/frozen-1`, { limit: 50_000 });
      const held = await reserve(p, 'frozen-1', 1_200);
      await api('PUT', `/v1/products/${p}/customers/frozen-1`, {
        limit: 50_000,
        status: 'frozen',
        statusReason: 'risk review 42',
      });

      const page = await openSignedIn(ADMIN_KEY);
      await page.getByLabel('Product', { exact: true }).fill(p);
      await page.getByLabel('Customer', { exact: true }).fill('frozen-1');
      await page.getByLabel('Customer', { exact: true }).press('Enter');
      const blocker = page.locator('li[data-code="ACCOUNT_FROZEN"]');
      await blocker.waitFor();
      expect(await page.getByTestId('drawable').textContent()).toBe('0');
      expect(await page.getByTestId('line-status').textContent()).toBe('frozen (risk review 42)');
      const english = (await blocker.textContent())!;
      expect(english).toContain('risk review 42');
      const enLine = await api('GET', `/v1/products/${p}/customers/frozen-1`, undefined, ADMIN_KEY, {
        'Accept-Language': 'en',
      });
      const enFromService = (
        enLine.blockerDetails as { code: string; title: string; detail: string }[] | undefined
      )?.find((d) => d.code === 'ACCOUNT_FROZEN');
      console.info(
        `console: blocker texts from ` +
          `${enFromService ? "the service's blockerDetails" : "the console's own texts (no blockerDetails)"}`,
      );
      if (enFromService) {
        expect(await blocker.getAttribute('data-source')).toBe('service');
        expect(english).toContain(enFromService.title);
        expect(english).toContain(enFromService.detail);
      } else {
        expect(await blocker.getAttribute('data-source')).toBe('console');
        expect(english).toContain('Account frozen');
      }
      expect(english).not.toMatch(/[\u4e00-\u9fff]/);
      // The hold taken before the freeze, with its events (admin).
      const holds = page.getByTestId('holds');
      await holds.waitFor();
      const row = holds.locator('tr', { hasText: held.reservationId });
      expect(await row.textContent()).toContain('held');
      expect(await row.textContent()).toContain('1,200');
      expect(await row.locator('ol.events li').count()).toBeGreaterThanOrEqual(1);
      await shot(page, 'customer-lookup-en');

      // Chinese: the switch sets Accept-Language and the lookup runs again.
      await page.getByLabel('Language', { exact: true }).selectOption('zh-CN');
      await expect.poll(() => blocker.textContent()).toMatch(/[\u4e00-\u9fff]/);
      const chinese = (await blocker.textContent())!;
      const zhLine = await api('GET', `/v1/products/${p}/customers/frozen-1`, undefined, ADMIN_KEY, {
        'Accept-Language': 'zh-CN',
      });
      const fromService = (
        zhLine.blockerDetails as { code: string; title: string; detail: string }[] | undefined
      )?.find((d) => d.code === 'ACCOUNT_FROZEN');
      if (fromService) {
        // The service explains it (contract: "Languages"): the console shows its text.
        expect(await blocker.getAttribute('data-source')).toBe('service');
        expect(chinese).toContain(fromService.title);
        expect(chinese).toContain(fromService.detail);
      } else {
        expect(await blocker.getAttribute('data-source')).toBe('console');
        expect(chinese).toContain('账户已冻结');
        expect(chinese).toContain('risk review 42');
      }
      await shot(page, 'customer-lookup-zh');
      // Back to English for the pages after this one (the choice is kept in the tab).
      await page.getByLabel('Language', { exact: true }).selectOption('en');
      await expect.poll(() => blocker.textContent()).not.toMatch(/[\u4e00-\u9fff]/);
      await page.close();
    },
  );

  it('resolves an unknown settlement', async () => {
    const p = await product(1_000_000);
    await api('PUT', `/v1/products/${p}/customers/c1`, { limit: 100_000 });
    const r = await reserve(p, 'c1', 4_000);
    await api('POST', `/v1/products/${p}/reservations/${r.reservationId}/commit`, {}, CLIENT_KEY);
    const unknown = await engine.recordSettlement(p, r.reservationId, 'unknown', 'ledger timed out');
    expect(unknown.ok, JSON.stringify(unknown)).toBe(true);
    expect((await api('GET', `/v1/products/${p}/reservations/${r.reservationId}`)).status).toBe('settlement_unknown');

    const page = await openSignedIn(ADMIN_KEY);
    await page.getByRole('button', { name: 'Unknown settlements' }).click();
    await page.getByLabel('Product', { exact: true }).fill(p);
    await page.getByLabel('Product', { exact: true }).press('Enter');
    const row = page.locator(`tr[data-reservation="${r.reservationId}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('4,000');
    await shot(page, 'settlements');

    await row.getByLabel('Reason', { exact: true }).fill('ledger statement 2026-06-18 shows it');
    await row.getByRole('button', { name: 'Settled' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`${r.reservationId} resolved: settled`);
    await page.getByTestId('no-unknown').waitFor();
    expect((await api('GET', `/v1/products/${p}/reservations/${r.reservationId}`)).status).toBe('settled');
    expect(await api('GET', `/v1/products/${p}`)).toMatchObject({ committed: 4_000, settled: 4_000 });
    const events = await api('GET', `/v1/products/${p}/reservations/${r.reservationId}/events`);
    expect(JSON.stringify(events)).toContain('ledger statement 2026-06-18 shows it');
    await page.close();
  });
});

describe('with the keyboard alone', () => {
  it(
    'signs in and looks up a customer: the cursor starts in each ' +
      'first field, labels are tied to inputs, Enter submits',
    async () => {
      const p = await product(100_000);
      await api('PUT', `/v1/products/${p}/customers/c-kb`, { limit: 7_000 });
      const page = await context.newPage();
      await page.goto(`${svc.baseUrl}/console`);
      const focused = () => page.evaluate(() => document.activeElement?.id ?? null);
      const unlabelled = () =>
        page.evaluate(() =>
          [...document.querySelectorAll('input, select')]
            .filter((e) => (e as HTMLInputElement).labels?.length !== 1)
            .map((e) => e.outerHTML),
        );
      await expect.poll(focused).toBe('api-key');
      expect(await unlabelled()).toEqual([]);
      await page.keyboard.type(ADMIN_KEY);
      await page.keyboard.press('Enter');
      await expect.poll(focused).toBe('lookup-product');
      expect(await unlabelled()).toEqual([]);
      expect(await page.getByLabel('Product', { exact: true }).getAttribute('id')).toBe('lookup-product');
      expect(await page.getByLabel('Customer', { exact: true }).getAttribute('id')).toBe('lookup-customer');
      await page.keyboard.type(p);
      await page.keyboard.press('Tab');
      await page.keyboard.type('c-kb');
      await page.keyboard.press('Enter');
      await expect
        .poll(() =>
          page
            .getByTestId('drawable')
            .textContent()
            .catch(() => null),
        )
        .toBe('7,000');
      await page.close();
    },
  );
});

describe('signed in with a client key', () => {
  it('hides what the role may not do: no unknown settlements, no pause or resume, no events', async () => {
    const p = await product(10_000);
    await api('PUT', `/v1/products/${p}/customers/c1`, { limit: 5_000 });
    await reserve(p, 'c1', 100);
    const page = await openSignedIn(CLIENT_KEY);
    expect(await page.getByTestId('role').textContent()).toContain('client');
    expect(await page.getByRole('button', { name: 'Unknown settlements' }).count()).toBe(0);
    await page.getByLabel('Product', { exact: true }).fill(p);
    await page.getByLabel('Customer', { exact: true }).fill('c1');
    await page.getByLabel('Customer', { exact: true }).press('Enter');
    await page.getByTestId('drawable').waitFor();
    expect(await page.getByTestId('drawable').textContent()).toBe('4,900');
    expect(await page.getByRole('columnheader', { name: 'events' }).count()).toBe(0);
    await showProduct(page, p);
    expect(await page.getByRole('columnheader', { name: 'actions' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /Pause|Resume/ }).count()).toBe(0);
    await shot(page, 'products-client');
    expect(await page.evaluate(() => Object.values(sessionStorage))).toContain(CLIENT_KEY);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key', { exact: true }).waitFor();
    expect(await page.evaluate(() => Object.values(sessionStorage))).not.toContain(CLIENT_KEY);
    await page.close();
  });
});

describe('everything the page loads comes from the service', () => {
  it('every request of every page went to the service origin, and no CSP violation was reported', () => {
    const origin = new URL(svc.baseUrl).origin;
    expect(requested.length).toBeGreaterThan(20);
    const elsewhere = requested.filter((url) => new URL(url).origin !== origin);
    expect(elsewhere).toEqual([]);
    expect(pageErrors.filter((e) => /Content Security Policy/i.test(e))).toEqual([]);
  });
});
