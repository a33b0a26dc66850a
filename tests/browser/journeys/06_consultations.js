/*
 * Journey 6: a chat consultation bought on the explore page goes to its
 * room; two mechanics see it in their queue and both press Take: one joins
 * the room, the other is told it was taken.
 */
'use strict';

const { assert, eq, db, dbRow } = require('../lib');

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

  await t.step('customer-cannot-queue', async () => {
    const res = await t.goto('/mechanic/queue');
    eq(res.status(), 403, 'queue for a customer');
    await t.waitText('[data-error-message]', 'This page is for mechanics.');
  });
}

module.exports = [{ name: 'consultations-mechanic-queue', run: consultations }];
