// The dashboard's browser driver for tests/integration/test_dashboard.py:
// drives Chromium (playwright-core) through the login, the overview, a
// drill-down, a household's file and the logout, and writes what the pages
// show to observed.json, with screenshots, into LEVEE_DASHBOARD_OUT. It
// asserts nothing itself: the Python test compares what was shown with the
// API's JSON.
//
// Environment: LEVEE_DASHBOARD_URL (the gateway), LEVEE_DASHBOARD_TOKEN (a
// county's), LEVEE_DASHBOARD_FUND_TOKEN (a fund manager's: no dashboard),
// LEVEE_DASHBOARD_HOUSEHOLD (a household to open from the overview),
// LEVEE_DASHBOARD_FOREIGN (a household outside the token's region),
// LEVEE_DASHBOARD_OUT, LEVEE_CHROMIUM (default /usr/bin/chromium).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name, dflt) => {
  const v = process.env[name] || dflt;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env('LEVEE_DASHBOARD_URL');
const TOKEN = env('LEVEE_DASHBOARD_TOKEN');
const FUND_TOKEN = env('LEVEE_DASHBOARD_FUND_TOKEN');
const HOUSEHOLD = env('LEVEE_DASHBOARD_HOUSEHOLD');
const FOREIGN = env('LEVEE_DASHBOARD_FOREIGN');
const OUT = env('LEVEE_DASHBOARD_OUT');
const CHROMIUM = env('LEVEE_CHROMIUM', '/usr/bin/chromium');
const WAIT_MS = 60000; // a slow, shared machine

const observed = { steps: [], console: {}, requests_failed: [] };
let phase = 'start';
const t0 = Date.now();

function step(what) {
  observed.steps.push({ what, ms: Date.now() - t0 });
  console.log(`[browser ${((Date.now() - t0) / 1000).toFixed(1)}s] ${what}`);
}

// What the current page shows: cards' figures, tables, chart data.
function snapshot(page) {
  return page.evaluate(async () => {
    const text = (el) => (el ? el.textContent.replace(/\s+/g, ' ').trim() : null);
    const kpis = {};
    for (const k of document.querySelectorAll('[data-kpi]')) {
      kpis[k.dataset.kpi] = { label: text(k.querySelector('.kpi-label')), value: text(k.querySelector('.kpi-value')) };
    }
    const tables = {};
    for (const t of document.querySelectorAll('table[data-testid]')) {
      tables[t.dataset.testid] = {
        head: [...t.tHead.rows[0].cells].map(text),
        rows: [...t.tBodies[0].rows].filter((r) => !r.querySelector('td.empty')).map((r) => [...r.cells].map(text)),
      };
    }
    let charts = {};
    try {
      const echarts = await import('/web/vendor/echarts.esm.min.mjs');
      for (const el of document.querySelectorAll('.chart')) {
        const c = echarts.getInstanceByDom(el);
        if (!c) continue;
        const o = c.getOption();
        charts[el.id] = {
          x: o.xAxis && o.xAxis[0] ? o.xAxis[0].data || null : null,
          y: o.yAxis && o.yAxis[0] ? o.yAxis[0].data || null : null,
          series: o.series.map((s) => ({ name: s.name, type: s.type, data: s.data })),
        };
      }
    } catch (e) {
      charts = { error: String(e) };
    }
    const view = document.getElementById('view');
    const page = view.querySelector('.page');
    return {
      view: view.dataset.view || null,
      region: page ? page.dataset.region || null : null,
      household: page ? page.dataset.household || null : null,
      title: text(view.querySelector('h1')),
      who: text(document.getElementById('who')),
      errors: [...view.querySelectorAll('.error')].map(text).filter(Boolean),
      kpis,
      tables,
      charts,
      text: view.innerText,
      token_stored: sessionStorage.getItem('levee.token') !== null,
      logout_visible: document.getElementById('logout').offsetParent !== null,
    };
  });
}

async function ready(page, view, extra = '') {
  await page.waitForSelector(`#view[data-view="${view}"][aria-busy="false"] ${extra}`.trim(), { timeout: WAIT_MS });
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: WAIT_MS });
  try {
    observed.browser = browser.version();
    const context = await browser.newContext({
      viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1, locale: 'zh-CN',
      timezoneId: 'Asia/Shanghai', reducedMotion: 'reduce',
    });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('console', (m) => {
      if (m.type() === 'error') (observed.console[phase] ||= []).push(m.text());
    });
    page.on('pageerror', (e) => (observed.console[phase] ||= []).push(`pageerror: ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400) observed.requests_failed.push({ phase, url: r.url(), status: r.status() });
    });

    phase = 'login';
    await page.goto(`${BASE}/`, { timeout: WAIT_MS });
    await ready(page, 'login');
    step('login screen');
    await page.screenshot({ path: join(OUT, 'login.png') });
    await page.fill('#token', 'lvt_not_a_real_token');
    await page.click('.login button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('.login .error').textContent.length > 0);
    observed.bad_login = await snapshot(page);
    step('a wrong token is refused');
    await page.fill('#token', FUND_TOKEN);
    await page.click('.login button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('.login .error').textContent.includes('角色'));
    observed.fund_login = await snapshot(page);
    step("a fund manager's token is told the dashboard needs a region role");

    phase = 'overview';
    await page.fill('#token', TOKEN);
    const t = Date.now();
    await page.click('.login button[type="submit"]');
    await ready(page, 'overview');
    observed.overview_ms = Date.now() - t;
    observed.overview = await snapshot(page);
    step(`overview shown in ${observed.overview_ms} ms`);
    await page.screenshot({ path: join(OUT, 'dashboard.png'), fullPage: true });

    phase = 'drill';
    const first = page.locator('table[data-testid="regions"] tbody tr').first().locator('a');
    const code = (await first.getAttribute('href')).replace(/^.*region=/, '');
    await first.click();
    await ready(page, 'overview', `.page[data-region="${code}"]`);
    observed.drill = await snapshot(page);
    step(`drill-down to ${code}`);
    await page.screenshot({ path: join(OUT, 'drill-down.png'), fullPage: true });

    phase = 'household';
    await page.goto(`${BASE}/#/`);
    await ready(page, 'overview', `.page[data-region="${observed.overview.region}"]`);
    await page.locator('table[data-testid="monitored"] a', { hasText: HOUSEHOLD }).first().click();
    await ready(page, 'household', `.page[data-household="${HOUSEHOLD}"]`);
    observed.household = await snapshot(page);
    step(`household ${HOUSEHOLD}`);
    await page.screenshot({ path: join(OUT, 'household.png'), fullPage: true });

    phase = 'foreign';
    await page.goto(`${BASE}/#/household/${encodeURIComponent(FOREIGN)}`);
    await ready(page, 'error');
    observed.foreign = await snapshot(page);
    step('a household of another county is not shown');

    phase = 'logout';
    await page.click('#logout');
    await ready(page, 'login');
    observed.logout = await snapshot(page);
    step('logged out');
    await context.close();
  } finally {
    await browser.close();
  }
}

try {
  await main();
  observed.ok = true;
} catch (e) {
  observed.ok = false;
  observed.failure = String(e && e.stack ? e.stack : e);
  console.error(observed.failure);
}
writeFileSync(join(OUT, 'observed.json'), JSON.stringify(observed, null, 1));
process.exit(observed.ok ? 0 : 1);
