/*
 * Helpers for the browser journeys: the stack's environment, the database
 * (read through the mariadb client with the stack's admin option file), a
 * person's actions on a page (sign up, click, type, wait for text), and
 * steps that save a screenshot when they fail.
 */
'use strict';

const { execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

function env(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (dflt !== undefined) return dflt;
    throw new Error(`${name} is not set: source the stack's env file first`);
  }
  return v;
}

const BASE = () => env('CD_BASE_URL');
const SHOTS = () => path.join(env('CD_STATE_DIR'), 'browser-screenshots');

/* A literal for SQL: only integers and our own generated strings pass. */
function lit(v) {
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  if (typeof v === 'string' && /^[A-Za-z0-9@._+: -]*$/.test(v)) return `'${v}'`;
  throw new Error(`refusing to put ${JSON.stringify(v)} into SQL`);
}

/* Runs sql (with ? replaced by literals); returns rows as objects. */
function db(sql, ...args) {
  let i = 0;
  const text = sql.replace(/\?/g, () => lit(args[i++]));
  const out = execFileSync('mariadb', [
    `--defaults-extra-file=${env('CD_DB_ADMIN_CNF')}`, '--batch', '--raw',
    env('CD_DB_NAME'), '-e', text,
  ], { encoding: 'utf8' });
  const lines = out.split('\n').filter((l) => l !== '');
  if (lines.length === 0) return [];
  const cols = lines[0].split('\t');
  return lines.slice(1).map((l) => {
    const vals = l.split('\t');
    const row = {};
    cols.forEach((c, j) => { row[c] = vals[j] === 'NULL' ? null : vals[j]; });
    return row;
  });
}
const dbRow = (sql, ...a) => db(sql, ...a)[0] || null;
const dbValue = (sql, ...a) => { const r = dbRow(sql, ...a); return r ? Object.values(r)[0] : null; };

class AssertionError extends Error {}

function assert(cond, msg) {
  if (!cond) throw new AssertionError(msg);
}
function eq(actual, expected, what) {
  if (String(actual) !== String(expected))
    throw new AssertionError(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/*
 * A password long and random enough for any password rule.  The dashes keep
 * cracklib from ever seeing a run of consecutive characters in the random
 * part (it refuses "systematic" passwords, and a plain hex string is one
 * now and then).
 */
const password = () => 'Pw correct horse ' + crypto.randomBytes(6).toString('hex').split('').join('-');
const uniqueEmail = (tag) => `br-${tag}-${Date.now()}-${crypto.randomBytes(3).toString('hex')}@creditdesk.test`;

/*
 * One journey's context: its page, and step(name, fn), which records the
 * step and, if fn throws, saves <journey>-<step>.png and rethrows.
 */
class Journey {
  constructor(name, page) {
    this.name = name;
    this.page = page;
    this.stepName = 'start';
    this.shot = null;
  }

  async step(name, fn) {
    this.stepName = name;
    if (process.env.CD_BROWSER_DEBUG) console.log(`  .. ${this.name}: ${name} at ${new Date().toISOString().slice(11, 23)}`);
    let result;
    try {
      result = await fn();
    } catch (e) {
      await this.screenshot(name);
      e.step = name;
      throw e;
    }
    // CD_BROWSER_SHOTS=all: every step's page, to read the journeys as a person sees them
    if (process.env.CD_BROWSER_SHOTS === 'all') await this.screenshot(name);
    return result;
  }

  async screenshot(step) {
    try {
      fs.mkdirSync(SHOTS(), { recursive: true });
      const file = path.join(SHOTS(), `${this.name}-${step}`.replace(/[^A-Za-z0-9._-]+/g, '_') + '.png');
      await this.page.screenshot({ path: file, fullPage: true });
      this.shot = file;
    } catch (e) {
      this.shot = `(no screenshot: ${e.message})`;
    }
  }

  url(p) { return BASE() + p; }

  /*
   * Another person at another browser (own cookies): a Journey on a page of
   * a new incognito context, closed with this journey (see run.js).
   */
  async another(name) {
    const context = await this.page.browser().createBrowserContext();
    this.extraContexts = (this.extraContexts || []).concat(context);
    const page = await context.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.setDefaultTimeout(15000);
    return new Journey(`${this.name}-${name}`, page);
  }

  async goto(p) {
    const res = await this.page.goto(this.url(p), { waitUntil: 'load' });
    return res;
  }

  /* Pays on the emulator's hosted Checkout page the browser is on. */
  async payHosted(card = '4242 4242 4242 4242') {
    assert(this.page.url().includes('/checkout/pay/'), 'not on the checkout page: ' + this.page.url());
    await this.page.type('input[name="card"]', card);
    await this.clickAndWaitForNavigation('button[type="submit"]');
  }

  /* A consultation's Buy on the explore page: a link, or a form with a POST button. */
  async buyConsultation(plan) {
    await this.goto('/');
    await this.clickAndWaitForNavigation(`a[href*="plan=${plan}"], [data-plan="${plan}"]`);
    if (!this.page.url().includes('/checkout/pay/'))
      await this.clickAndWaitForNavigation('main form button[type="submit"]');
  }

  /* Buys Voice AI Therapy minutes (a Firewall user) and pays them. */
  async buyVoice() {
    await this.goto('/');
    await this.clickAndWaitForNavigation('button[data-action="buy-voice"]');
    await this.payHosted();
  }

  /* Signs up through /register as a person would; returns {id, email, password}. */
  async signUp(tag) {
    const email = uniqueEmail(tag), pw = password();
    await this.goto('/register');
    await this.page.type('input[name="name"]', 'Browser ' + tag);
    await this.page.type('input[name="email"]', email);
    await this.page.type('input[name="password"]', pw);
    await Promise.all([
      this.page.waitForNavigation({ waitUntil: 'load' }),
      this.page.click('form[data-form="register"] button[type="submit"]'),
    ]);
    const id = dbValue('SELECT id FROM users WHERE email = ?', email);
    assert(id, `user ${email} was not created`);
    return { id: Number(id), email, password: pw };
  }

  async signIn(email, pw) {
    await this.goto('/login');
    await this.page.type('input[name="email"]', email);
    await this.page.type('input[name="password"]', pw);
    await Promise.all([
      this.page.waitForNavigation({ waitUntil: 'load' }),
      this.page.click('form[data-form="login"] button[type="submit"]'),
    ]);
  }

  async signOut() {
    await this.page.deleteCookie(...(await this.page.cookies()));
  }

  /* The visible text of selector (the whole page by default). */
  async text(selector = 'body') {
    return this.page.$eval(selector, (el) => el.innerText);
  }

  /* Waits until selector's text contains s (or matches a RegExp). */
  async waitText(selector, s, timeout = 10000) {
    try {
      await this.page.waitForFunction((sel, src, isRe) => {
        const el = document.querySelector(sel);
        if (!el) return false;
        return isRe ? new RegExp(src).test(el.innerText) : el.innerText.includes(src);
      }, { timeout }, selector, s instanceof RegExp ? s.source : s, s instanceof RegExp);
    } catch (e) {
      const got = await this.text(selector).catch(() => '(not on the page)');
      throw new AssertionError(`"${selector}" never showed ${s}; it shows: ${got.slice(0, 400)}`);
    }
  }

  async clickAndWaitForNavigation(selector) {
    await Promise.all([
      this.page.waitForNavigation({ waitUntil: 'load' }),
      this.page.click(selector),
    ]);
  }

  /* The frame whose URL contains part (Stripe's iframes). */
  async frame(part, timeout = 10000) {
    const end = Date.now() + timeout;
    for (;;) {
      const f = this.page.frames().find((fr) => fr.url().includes(part));
      if (f) {
        await f.waitForSelector('body');
        return f;
      }
      if (Date.now() > end) throw new AssertionError(`no iframe ${part} on the page`);
      await sleep(100);
    }
  }

  /*
   * POSTs JSON to the API as this person, from the page they are on (its
   * session cookie and CSRF token, as app.js sends them); returns
   * {status, body}.  For what a journey needs made but does not click.
   */
  async post(p, body) {
    return this.page.evaluate(async (url, b) => {
      const meta = document.querySelector('meta[name="csrf-token"]');
      const headers = { Accept: 'application/json', 'Content-Type': 'application/json' };
      if (meta) headers['X-CSRF-Token'] = meta.content;
      const res = await fetch(url, { method: 'POST', credentials: 'same-origin', headers,
        body: JSON.stringify(b || {}) });
      return { status: res.status, body: await res.json().catch(() => null) };
    }, p, body);
  }

  /* Books an expert's time through the API; returns the booking (201 or throws). */
  async book(expertId, startTime, durationMinutes = 30) {
    const r = await this.post('/api/bookings', { expertId, startTime, durationMinutes });
    eq(r.status, 201, `booking ${startTime}: ${JSON.stringify(r.body)}`);
    return r.body.booking;
  }

  /* Checks the page shows no raw JSON, HTTP status codes or stack traces. */
  async assertHumanPage() {
    const t = await this.text();
    assert(!/\{\s*"error"/.test(t), 'the page shows raw JSON: ' + t.slice(0, 300));
    assert(!/\bHTTP\s*\d{3}\b/.test(t), 'the page shows an HTTP status: ' + t.slice(0, 300));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls fn until it returns a truthy value (database rows written by a webhook). */
async function eventually(fn, what, timeout = 15000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new AssertionError(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/* POSTs to the Stripe emulator's control API (as Stripe's side would act). */
async function emu(p, body) {
  const res = await fetch(env('CD_EMU_URL').replace(/\/$/, '') + p, { method: 'POST',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body || {}) });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/*
 * A booking's PaymentIntent paid at Stripe, and the booking scheduled by
 * the webhook (the payment recorded as live would record it).
 */
async function paidAtStripe(booking) {
  const r = await emu(`/_emu/payment_intents/${booking.paymentIntentId}/succeed`);
  eq(r.status, 200, `emulator paying ${booking.paymentIntentId}`);
  await eventually(() => (dbRow('SELECT b.status, p.status AS pay FROM bookings b JOIN payments p ' +
    'ON p.booking_id = b.id WHERE b.id = ?', booking.id) || {}).pay === 'succeeded',
  `booking ${booking.id} paid`);
  return booking.id;
}

/*
 * Runs act while the page's first `method path` request reaches the server
 * but loses its answer, as a connection dropped after the commit would: the
 * test sends that request itself, with the page's headers and cookies, and
 * the page's own is aborted.  Later ones go through.  Resolves to
 * {keys: each attempt's Idempotency-Key, lost: the status the lost answer had}.
 */
async function losingFirstAnswer(page, method, path, act) {
  const cookie = (await page.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const seen = { keys: [], lost: null };
  const onRequest = async (req) => {
    if (req.method() !== method || new URL(req.url()).pathname !== path) return req.continue();
    seen.keys.push(req.headers()['idempotency-key']);
    if (seen.keys.length > 1) return req.continue();
    const first = await fetch(req.url(), { method, body: req.postData(),
      headers: { ...req.headers(), cookie } });
    seen.lost = first.status;
    return req.abort('connectionreset');
  };
  await page.setRequestInterception(true);
  page.on('request', onRequest);
  try {
    await act();
  } finally {
    page.off('request', onRequest);
    await page.setRequestInterception(false);
  }
  return seen;
}

module.exports = {
  env, db, dbRow, dbValue, assert, eq, AssertionError, Journey, password, uniqueEmail,
  sleep, eventually, emu, paidAtStripe, losingFirstAnswer,
};
