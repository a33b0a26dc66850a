#!/usr/bin/env node
/*
 * Runs the browser journeys in Debian's headless Chromium (puppeteer-core)
 * against a running stack: source the stack's env file first (scripts/test.sh
 * does).  Prints "ok   <journey>" or "FAIL <journey>: <step>: <reason>" per
 * journey and closes with "N passed, N failed"; a failing step leaves a
 * screenshot under $CD_STATE_DIR/browser-screenshots/.
 *
 * Usage: node tests/browser/run.js [substring ...]   (only matching journeys)
 * Settings: CD_CHROMIUM (default /usr/bin/chromium).
 */
'use strict';

const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');
const { Journey, env } = require('./lib');

const JOURNEY_DIR = path.join(__dirname, 'journeys');

function loadJourneys(filters) {
  const out = [];
  for (const f of fs.readdirSync(JOURNEY_DIR).filter((n) => n.endsWith('.js')).sort()) {
    for (const j of require(path.join(JOURNEY_DIR, f))) {
      if (filters.length === 0 || filters.some((s) => j.name.includes(s))) out.push(j);
    }
  }
  return out;
}

async function runOne(browser, j) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport(j.viewport || { width: 1280, height: 900 });
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text()))
      problems.push(`blocked: ${m.text()}`);
  });
  const t = new Journey(j.name, page);
  try {
    await j.run(t);
    if (problems.length) {
      await t.screenshot('page-errors');
      throw Object.assign(new Error(problems.join('; ')), { step: 'page-errors' });
    }
    return { ok: true };
  } catch (e) {
    if (!t.shot) await t.screenshot(t.stepName);
    return { ok: false, step: e.step || t.stepName, message: e.message.split('\n')[0], shot: t.shot };
  } finally {
    for (const c of t.extraContexts || []) await c.close().catch(() => {});
    await context.close().catch(() => {});
  }
}

async function main() {
  env('CD_BASE_URL');
  const journeys = loadJourneys(process.argv.slice(2));
  const browser = await puppeteer.launch({
    executablePath: process.env.CD_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--lang=en-US'],
  });
  let passed = 0, failed = 0;
  try {
    for (const j of journeys) {
      const t0 = Date.now();
      const r = await runOne(browser, j);
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      if (r.ok) {
        passed++;
        console.log(`ok   ${j.name} (${secs}s)`);
      } else {
        failed++;
        console.log(`FAIL ${j.name}: ${r.step}: ${r.message}`);
        if (r.shot) console.log(`     screenshot: ${r.shot}`);
      }
    }
  } finally {
    await browser.close();
  }
  if (journeys.length === 0) {
    console.log('no journey matched');
    failed++;
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((e) => {
  console.error(`browser tests: ${e.message}`);
  console.log('0 passed, 1 failed');
  process.exitCode = 1;
});
