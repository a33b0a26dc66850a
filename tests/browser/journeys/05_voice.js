/*
 * Journey 5: Voice AI Therapy.  The dashboard shows the minutes left and the
 * nearest expiry; /voice starts a session, counts the minutes down, End
 * charges the whole minutes the server's clock measured (less at most the
 * grace the page's own count may take off), and a session ends by itself when the
 * minutes run out (the page's clock runs 60 times faster for that part).
 */
'use strict';

const { assert, eq, db, dbRow } = require('../lib');

async function voice(t) {
  const p = t.page;
  const user = await t.step('sign-up', () => t.signUp('voice'));

  await t.step('not-premium', async () => {
    await t.goto('/voice');
    await t.waitText('main', 'Voice AI Therapy comes with the Pro plan. See the plans');
  });

  db("UPDATE users SET tier = 'firewall' WHERE id = ?", user.id);
  // 15 minutes bought and paid, 12 of them used in a first session (the
  // server's clock backdated), so that 3 are left, as a customer would have.
  await t.step('buy-minutes', () => t.buyVoice());
  // A session started on /voice whose start the server's clock puts seconds earlier, ended.
  const sessionOf = async (seconds, said) => {
    await t.goto('/voice');
    await p.click('button[data-action="voice-start"]');
    await t.waitText('[data-timer]', /left/);
    db("UPDATE voice_therapy_sessions SET started_at = started_at - INTERVAL ? SECOND" +
      " WHERE user_id = ? AND status = 'active'", seconds, user.id);
    await p.click('button[data-action="voice-end"]');
    await t.waitText('#voice-msg', said);
  };
  await t.step('use-twelve', () => sessionOf(735, 'Session ended. 12 minutes used, 3 left.'));
  const expires = dbRow("SELECT DATE_FORMAT(expires_at, '%Y-%m-%dT%H:%i:%sZ') AS e FROM voice_therapy_credits " +
    'WHERE user_id = ?', user.id).e;

  await t.step('dashboard', async () => {
    await t.goto('/dashboard');
    const card = await t.text('#voice-card');
    assert(/^3\s*\nminutes remaining/m.test(card), 'minutes on the dashboard: ' + card);
    eq(await p.$eval('[data-voice-expiry]', (e) => e.getAttribute('datetime')), expires, 'nearest expiry');
    await t.clickAndWaitForNavigation('a[href="/voice"]');
  });

  await t.step('start-and-end', async () => {
    eq(await t.text('[data-minutes-left]'), '3', 'minutes on /voice');
    await p.click('button[data-action="voice-start"]');
    await t.waitText('[data-timer]', /^2:5\d left in this session$|^3:00 left/);
    // The server's clock decides the charge: the session has run 75 s by it,
    // and the page's few seconds may lower that by at most the 30 s grace.
    db("UPDATE voice_therapy_sessions SET started_at = started_at - INTERVAL 75 SECOND" +
      " WHERE user_id = ? AND status = 'active'", user.id);
    await p.click('button[data-action="voice-end"]');
    await t.waitText('#voice-msg', 'Session ended. 1 minute used, 2 left.');
    eq(await t.text('[data-minutes-left]'), '2', 'minutes after ending');
    eq(await t.text('[data-minutes-word]'), 'minutes', 'the word after ending');
    const s = dbRow("SELECT status, minutes_deducted FROM voice_therapy_sessions WHERE user_id = ? ORDER BY id DESC LIMIT 1", user.id);
    eq(`${s.status}/${s.minutes_deducted}`, 'ended/1', 'this session');
    eq(dbRow('SELECT minutes_remaining FROM voice_therapy_credits WHERE user_id = ?', user.id).minutes_remaining, 2,
      'credit after the first session');
  });

  await t.step('runs-out', async () => {
    await p.evaluateOnNewDocument(() => {
      const real = Date.now.bind(Date), t0 = real();
      Date.now = () => t0 + (real() - t0) * 60;
    });
    await t.goto('/voice');
    await p.click('button[data-action="voice-start"]');
    await t.waitText('#voice-msg', 'Your minutes ran out, so the session ended.', 15000);
    const s = dbRow("SELECT status, minutes_deducted FROM voice_therapy_sessions WHERE user_id = ? ORDER BY id DESC LIMIT 1",
      user.id);
    eq(s.status, 'ended', 'second session');
    const left = Number(dbRow('SELECT minutes_remaining FROM voice_therapy_credits WHERE user_id = ?', user.id).minutes_remaining);
    eq(left, 2 - Number(s.minutes_deducted), 'credit after the second session');
    const used = Number(s.minutes_deducted);
    await t.waitText('#voice-msg', `${used} ${used === 1 ? 'minute' : 'minutes'} used, ${left} left.`);
    eq(await t.text('[data-minutes-left]'), String(left), 'minutes shown');
    eq(await t.text('[data-minutes-word]'), left === 1 ? 'minute' : 'minutes', 'the word shown');
    assert(!(await p.$eval('[data-action="voice-end"]', (b) => b.offsetParent !== null)), 'End still shown');
  });

  // A last session, backdated past what is left, uses the rest.
  await t.step('none-left', async () => {
    await sessionOf(600, /, 0 left\.$/);
    eq(dbRow('SELECT minutes_remaining FROM voice_therapy_credits WHERE user_id = ?', user.id).minutes_remaining,
      0, 'minutes left');
    await t.goto('/voice');
    eq(await t.text('#voice-session > p'), 'You have 0 minutes left.', 'the count');
    eq(await t.text('[data-voice-buy]'), 'Buy minutes', 'what to do next');
    assert(!(await p.$('button[data-action="voice-start"]')), 'Start offered without minutes');
  });
}

module.exports = [{ name: 'voice-session', run: voice }];
