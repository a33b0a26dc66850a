/*
 * Journey 6: a chat consultation bought on the explore page goes to its
 * room; two mechanics see it in their queue and both press Take: one joins
 * the room, the other is told it was taken.  Then the customer and the
 * mechanic chat: each message reaches the other browser by push (the
 * room's EventSource; no poll, no reload), once and in order, and the
 * journey prints the delivery times' median.  A message whose push was lost
 * shows up on both pages with the next one.
 */
'use strict';

const { assert, eq, db, dbRow, dbValue, losingFirstAnswer } = require('../lib');

const PUSHED = 6;   /* messages sent back and forth */

async function mechanic(t, name) {
  const m = await t.another(name);
  const u = await m.signUp(name);
  db("UPDATE users SET role = 'mechanic' WHERE id = ?", u.id);
  return { m, u };
}

async function consultations(t) {
  const p = t.page;
  const customer = await t.step('sign-up', () => t.signUp('consult'));

  let sessionId;
  await t.step('buy-chat', async () => {
    await t.goto('/');
    await t.clickAndWaitForNavigation('a[href*="plan=chat10"], [data-plan="chat10"]');
    if (!p.url().includes('/checkout/pay/'))
      await t.clickAndWaitForNavigation('main form button[type="submit"]');
    await p.type('input[name="card"]', '4242 4242 4242 4242');
    await t.clickAndWaitForNavigation('button[type="submit"]');
    const s = dbRow("SELECT id, status FROM sessions WHERE user_id = ? AND type = 'chat'", customer.id);
    assert(s, 'no chat session row');
    sessionId = Number(s.id);
    eq(new URL(p.url()).pathname, `/chat/${sessionId}`, 'page after paying');
    await p.waitForSelector('[data-waiting]');
  });

  const a = await t.step('mechanic-a', () => mechanic(t, 'mech-a'));
  const b = await t.step('mechanic-b', () => mechanic(t, 'mech-b'));

  await t.step('both-see-queue', async () => {
    for (const x of [a, b]) {
      await x.m.goto('/dashboard');
      await x.m.clickAndWaitForNavigation('a[href="/mechanic/queue"]');
      await x.m.page.waitForSelector(`#queue tr[data-session="${sessionId}"] button[data-action="take-session"]`);
    }
  });

  await t.step('a-takes', async () => {
    await a.m.clickAndWaitForNavigation(`button[data-action="take-session"][data-session="${sessionId}"]`);
    eq(new URL(a.m.page.url()).pathname, `/chat/${sessionId}`, "mechanic A's page");
  });

  await t.step('b-is-told', async () => {
    await b.m.page.click(`button[data-action="take-session"][data-session="${sessionId}"]`);
    await b.m.waitText('#queue-msg', 'Another mechanic has already taken this consultation.');
    await b.m.assertHumanPage();
    eq(new URL(b.m.page.url()).pathname, '/mechanic/queue', "mechanic B's page");
  });

  await t.step('rows', async () => {
    const rows = db("SELECT user_id FROM session_participants WHERE session_id = ? AND role = 'mechanic'", sessionId);
    eq(rows.length, 1, 'mechanic participants');
    eq(rows[0].user_id, a.u.id, 'the mechanic who joined');
    eq(dbRow('SELECT status FROM sessions WHERE id = ?', sessionId).status, 'active', 'session status');
    await b.m.goto('/mechanic/queue');
    assert(!(await b.m.page.$(`#queue tr[data-session="${sessionId}"]`)), 'the taken consultation is still queued');
  });

  await t.step('customer-sees-mechanic', async () => {
    await t.goto(`/chat/${sessionId}`);
    assert(!(await p.$('[data-waiting]')), 'the room still waits for a mechanic');
  });

  await t.step('push-between-browsers', () => chatByPush(t, a.m, sessionId));
  await t.step('a-lost-push-is-caught-up', () => lostPush(t, a, sessionId));
  await t.step('a-send-whose-answer-is-lost-posts-once', () => lostAnswer(t, sessionId));

  await t.step('a-silent-stream-is-opened-again', () => silentStream(t, a, sessionId));

  await t.step('a-lost-last-message-shows-on-an-open-stream', () => lostLast(t, a, sessionId));

  await t.step('polling-without-eventsource', () => chatByPolling(t, a.m, sessionId));

  await t.step('customer-cannot-queue', async () => {
    const res = await t.goto('/mechanic/queue');
    eq(res.status(), 403, 'queue for a customer');
    await t.waitText('[data-error-message]', 'This page is for mechanics.');
  });
}

/* The bodies shown in a room, top to bottom. */
function shown(page) {
  return page.$$eval('#chat .message', (els) => els.map((li) => ({
    id: Number(li.getAttribute('data-id')), body: li.querySelector('.body').textContent })));
}

/* A request listener that collects every GET of a room's messages into urls. */
function readsOfMessages(urls) {
  return (req) => {
    if (req.method() === 'GET' && /\/api\/sessions\/\d+\/messages(\?|$)/.test(req.url())) urls.push(req.url());
  };
}

/* Waits until a room page shows a message with this body. */
function showsMessage(page, text, timeout = 5000) {
  return page.waitForFunction((s) => Array.prototype.some.call(
    document.querySelectorAll('#chat .message .body'), (b) => b.textContent === s),
  { polling: 'mutation', timeout }, text);
}

/* Sends text from one room page and returns the ms until the other shows it. */
async function deliver(from, to, text) {
  await from.page.type('#chat-body', text);
  const t0 = Date.now();
  await from.page.keyboard.press('Enter');
  await showsMessage(to.page, text);
  return Date.now() - t0;
}

/*
 * Customer (t) and mechanic (m) are both in the room: messages go back and
 * forth by push while neither page asks for messages.
 */
async function chatByPush(t, m, sessionId) {
  await t.goto(`/chat/${sessionId}`);
  for (const x of [t, m]) await x.page.waitForSelector('#chat[data-stream="open"]');
  const polls = [];
  const watch = readsOfMessages(polls);
  for (const x of [t, m]) x.page.on('request', watch);
  const times = [];
  try {
    for (let i = 0; i < PUSHED; i++) {
      const [from, to] = i % 2 ? [m, t] : [t, m];
      times.push(await deliver(from, to, `push ${i}: <b>&amp;</b> ünïcode`));
    }
  } finally {
    for (const x of [t, m]) x.page.off('request', watch);
  }
  eq(JSON.stringify(polls), '[]', 'requests for messages while the rooms were open');
  const want = roomRows(sessionId);
  eq(JSON.parse(want).length, PUSHED, 'messages saved');
  for (const x of [t, m]) eq(JSON.stringify(await shown(x.page)), want, 'each message once, in the server\'s order');
  times.sort((x, y) => x - y);
  console.log(`       chat push delivery between two browsers: p50 ${times[Math.floor(times.length / 2)]} ms,` +
    ` max ${times[times.length - 1]} ms (${PUSHED} messages)`);
}

/*
 * A send whose answer is lost (losingFirstAnswer): the page hears nothing and
 * sends it once more with the same Idempotency-Key.  The room holds it once,
 * and the page shows it once.
 */
async function lostAnswer(t, sessionId) {
  const p = t.page, text = 'sent while the line dropped';
  const seen = await losingFirstAnswer(p, 'POST', `/api/sessions/${sessionId}/messages`, async () => {
    await p.type('#chat-body', text);
    await p.keyboard.press('Enter');
    await showsMessage(p, text);
    await t.waitText('#chat [data-msg]', /^$/);
  });
  const key = seen.keys[0];
  eq(JSON.stringify([seen.lost, seen.keys.length, seen.keys[1]]), JSON.stringify([201, 2, key]),
    'the first send posted, then the page sent it again with the same key');
  assert(/^[0-9a-f]{32}$/.test(key), `no Idempotency-Key: ${key}`);
  eq(dbValue('SELECT COUNT(*) FROM session_messages WHERE session_id = ? AND body = ? AND idempotency_key = ?',
    sessionId, text, key), 1, 'rows of the message');
  eq(JSON.stringify(await shown(p)), roomRows(sessionId), 'the page shows each message once');
}

/*
 * A message committed whose push never came (its publisher was down, say):
 * written straight into the room, as the messages API would (the guard's
 * new version is its seq).
 */
function writeUnpushed(sessionId, userId, body) {
  db('UPDATE sessions SET version = version + 1 WHERE id = ?', sessionId);
  db('INSERT INTO session_messages (session_id, user_id, body, seq) SELECT ?, ?, ?, version' +
     ' FROM sessions WHERE id = ?', sessionId, userId, body, sessionId);
}

/* The bodies and ids a room should show: the server's, in its order. */
function roomRows(sessionId) {
  const rows = db('SELECT id, body FROM session_messages WHERE session_id = ? ORDER BY seq, id', sessionId);
  return JSON.stringify(rows.map((r) => ({ id: Number(r.id), body: r.body })));
}

/*
 * A message whose push never came (writeUnpushed).  The next pushed message
 * names it as the one before, so both pages, which never saw it, fetch the
 * latest messages once and show it, in the server's order: the sender's
 * page too, which has already shown its own message from the send's answer.
 */
async function lostPush(t, mech, sessionId) {
  writeUnpushed(sessionId, mech.u.id, 'lost push');
  const polls = [];
  const watch = readsOfMessages(polls);
  for (const x of [t, mech.m]) x.page.on('request', watch);
  try {
    await deliver(mech.m, t, 'after the lost one');
    for (const x of [t, mech.m]) await showsMessage(x.page, 'lost push');
  } finally {
    for (const x of [t, mech.m]) x.page.off('request', watch);
  }
  eq(polls.length, 2, 'one fetch of the latest messages per page');
  const want = roomRows(sessionId);
  for (const x of [t, mech.m]) eq(JSON.stringify(await shown(x.page)), want, 'the lost one in its place');
}

/*
 * A new room page, with the page settings given (window.creditdesk…), that
 * must show a message written without a push, and every message once in
 * the server's order.  Returns how many times it opened the stream and the
 * stream's state at the end.
 */
async function unpushedShows(t, mech, sessionId, settings, body) {
  const page = await t.page.browserContext().newPage();
  let streams = 0;
  try {
    page.on('request', (req) => { if (/\/stream$/.test(req.url())) streams++; });
    await page.evaluateOnNewDocument((s) => Object.assign(window, s), settings);
    await page.goto(t.url(`/chat/${sessionId}`), { waitUntil: 'load' });
    await page.waitForSelector('#chat[data-stream="open"]');
    writeUnpushed(sessionId, mech.u.id, body);
    await showsMessage(page, body, 8000);
    eq(JSON.stringify(await shown(page)), roomRows(sessionId), 'every message once, in order');
    return { streams, state: await page.$eval('#chat', (el) => el.getAttribute('data-stream')) };
  } finally {
    await page.close();
  }
}

/*
 * A stream gone silent (its machine's nginx hung, or a connection that died
 * without closing) brings not even nginx's 25 s ping.  A page that has heard
 * nothing for longer than it allows (1.5 s here, a minute in use) opens the
 * stream again and catches up: a message whose push it missed shows.
 */
async function silentStream(t, mech, sessionId) {
  const got = await unpushedShows(t, mech, sessionId, { creditdeskStreamSilenceMs: 1500 },
    'missed while silent');
  assert(got.streams >= 2, `the silent stream was opened ${got.streams} time(s)`);
}

/*
 * A lost push that no message follows, on a stream that stays open: the
 * page's periodic catch-up shows it, and the stream is never opened again.
 */
async function lostLast(t, mech, sessionId) {
  const got = await unpushedShows(t, mech, sessionId, { creditdeskCatchUpMs: 1500 },
    'lost and nothing after it');
  eq(got.streams, 1, 'the stream was opened once');
  eq(got.state, 'open', 'the stream stays open');
}

/* A browser without EventSource polls instead, and still gets the messages. */
async function chatByPolling(t, m, sessionId) {
  const page = await t.page.browserContext().newPage();
  try {
    await page.evaluateOnNewDocument(() => { window.EventSource = undefined; });
    await page.goto(t.url(`/chat/${sessionId}`), { waitUntil: 'load' });
    await page.waitForSelector('#chat[data-stream="polling"]');
    const elapsed = await deliver(m, { page }, 'polled, not pushed');
    assert(elapsed < 3000, `the polling page took ${elapsed} ms`);
    const bodies = await shown(page);
    eq(bodies.filter((x) => x.body === 'polled, not pushed').length, 1, 'the polled message shown once');
  } finally {
    await page.close();
  }
}

module.exports = [{ name: 'consultations-mechanic-queue', run: consultations }];
