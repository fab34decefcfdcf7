// console.mjs: an operator uses the web console of a tenantmcp dev server
// in headless Debian chromium: signs in as the dev administrator through
// the dev sign-in page, finds a tenant, suspends and resumes it, starts
// and ends an impersonation with a reason, sees it in the tenant's audit
// view, and views the tenant's charts. Screenshots of each page go to
// SHOTS.
//
//   node tools/browser/console.mjs
//
// Environment:
//   BASE_URL   the dev server, e.g. http://127.0.0.1:8080 (required)
//   TENANT     the external id of the tenant to act on (default acme)
//   SHOTS      a directory for screenshots console-<page>.png (optional)
//   CHROMIUM   the browser (default /usr/bin/chromium; never downloaded)
//
// It talks to the Go test driving it in lines: after each step it prints
// one JSON object {"step": ..., ...} and, for steps the test checks from
// outside (suspended, resumed, impersonating, ended), waits for a line
// "ok" (or "fail: why") on standard input. The last line is
// {"step":"done"}; on failure it prints the error and exits 1.
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.BASE_URL;
if (!base) {
  console.error('BASE_URL is required (the dev server, e.g. http://127.0.0.1:8080)');
  process.exit(2);
}
const tenant = process.env.TENANT || 'acme';
const shots = process.env.SHOTS || '';

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// report prints a step; with wait, it waits for the test's answer.
async function report(step, fields = {}, wait = false) {
  console.log(JSON.stringify({ step, ...fields }));
  if (!wait) return;
  const { value, done } = await lines.next();
  if (done || value.trim() !== 'ok') throw new Error(`the test refused step ${step}: ${done ? 'stdin closed' : value}`);
}

async function shot(page, name) {
  if (shots) await page.screenshot({ path: join(shots, `console-${name}.png`), fullPage: true });
}

// flash returns the text of the page's status message.
async function flash(page) {
  return (await page.locator('.flash').innerText()).trim();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const errors = [];
page.on('console', m => { if (m.type() === 'error') errors.push(`${m.text()} (${m.location().url})`); });
page.on('pageerror', e => errors.push(e.message));

try {
  // Sign in: the console sends the browser to the dev sign-in page.
  await page.goto(`${base}/console/`);
  await page.getByRole('heading', { name: 'Sign in to tenantmcp dev' }).waitFor();
  await page.getByRole('radio', { name: /Administrator/ }).check();
  await Promise.all([
    page.waitForURL(u => u.pathname === '/console/tenants'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
  await shot(page, 'tenants');
  await report('signed-in');

  // Find the tenant.
  await page.getByLabel('Name or external id').fill(tenant);
  await Promise.all([page.waitForURL(u => u.searchParams.get('q') === tenant), page.getByRole('button', { name: 'Filter' }).click()]);
  const rows = page.locator('tbody tr');
  if (await rows.count() !== 1) throw new Error(`searching for ${tenant} found ${await rows.count()} tenants`);
  await rows.first().getByRole('link').click();
  await page.waitForURL(u => /^\/console\/tenants\/t[a-z0-9]+$/.test(u.pathname));
  const id = page.url().split('/').pop();
  await shot(page, 'tenant');
  await report('found', { id });

  // Suspend it, through its confirmation page.
  await page.getByRole('link', { name: 'Suspend…' }).click();
  await page.getByRole('heading', { name: new RegExp(`Suspend tenant .*${tenant}`) }).waitFor();
  await page.getByLabel(/Reason/).fill('browser test: suspend for an unpaid invoice');
  await shot(page, 'confirm');
  await page.getByRole('button', { name: /^Suspend / }).click();
  await page.waitForURL(u => u.pathname === `/console/tenants/${id}`);
  if (!(await flash(page)).startsWith('Suspend: done')) throw new Error(`after suspend: ${await flash(page)}`);
  await report('suspended', { id }, true);

  // Resume it, with the keyboard only.
  await page.getByRole('link', { name: 'Resume…' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: /Resume tenant/ }).waitFor();
  await page.getByLabel(/Reason/).focus();
  await page.keyboard.type('browser test: invoice paid');
  await page.getByRole('button', { name: /^Resume / }).focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(u => u.pathname === `/console/tenants/${id}`);
  if (!(await flash(page)).startsWith('Resume: done')) throw new Error(`after resume: ${await flash(page)}`);
  await report('resumed', { id }, true);

  // Impersonate it, with a reason.
  await page.getByRole('link', { name: 'Impersonate…' }).click();
  await page.waitForURL(u => u.pathname === '/console/impersonation');
  if (await page.getByLabel(/Tenant id/).inputValue() !== id) throw new Error('the impersonation form is not prefilled with the tenant');
  const reason = 'browser test: customer cannot see their documents';
  await page.getByLabel(/^Reason/).fill(reason);
  await page.getByLabel(/Ticket/).fill('SUP-1234');
  await page.getByRole('button', { name: 'Start impersonation' }).click();
  await page.locator('#secret').waitFor();
  const credential = await page.locator('#secret').inputValue();
  await shot(page, 'impersonation');
  const endButton = page.getByRole('button', { name: /^End impersonation imp_/ });
  if (await endButton.count() !== 1) throw new Error(`${await endButton.count()} active impersonations, want 1`);
  const grant = (await endButton.getAttribute('aria-label')).split(' ').pop();
  await report('impersonating', { id, grant, credential }, true);
  await endButton.click();
  await page.waitForURL(u => u.pathname === '/console/impersonation');
  if (!(await flash(page)).includes('ended')) throw new Error(`after end: ${await flash(page)}`);
  await report('ended', { id, grant }, true);

  // The tenant's audit view shows the impersonation and its reason.
  await page.goto(`${base}/console/audit?tenant=${id}`);
  await page.getByRole('heading', { name: 'Audit', level: 1 }).waitFor();
  const audit = await page.locator('main').innerText();
  for (const want of ['impersonate_tenant', 'end_impersonation', 'suspend_tenant', 'resume_tenant', reason]) {
    if (!audit.includes(want)) throw new Error(`the tenant's audit view does not show ${want}:\n${audit}`);
  }
  await shot(page, 'audit');
  await report('audited', { id });

  // Its charts.
  await page.goto(`${base}/console/charts?tenant=${id}`);
  await page.waitForURL(u => u.pathname === `/console/charts/${id}`);
  const charts = page.locator('svg[role="img"]');
  await charts.first().waitFor();
  await shot(page, 'charts');
  await report('charts', { id, charts: await charts.count() });

  // The jobs page.
  await page.getByRole('link', { name: 'Jobs' }).click();
  await page.getByRole('heading', { name: /jobs/i, level: 1 }).waitFor();
  await shot(page, 'jobs');

  if (errors.length) throw new Error(`the pages logged errors (CSP violations?): ${errors.join('; ')}`);
  await report('done');
} catch (err) {
  console.error(err?.stack || String(err));
  console.error(await page.content().catch(() => ''));
  process.exitCode = 1;
} finally {
  await browser.close();
  process.stdin.destroy();
}
