/*
 * Journey 8: every purchase ends on a page that says what was bought and
 * where to find it (voice minutes and a video consultation here; boost packs
 * and Live Help in their own journeys); errors are sentences; /favicon.ico
 * exists; no page is wider than a 390 px phone screen, and a person's own
 * tables read there as a card per row.
 */
'use strict';

const { assert, eq, db, dbRow } = require('../lib');

async function purchasesEndWell(t) {
  const p = t.page;
  const user = await t.step('sign-up', () => t.signUp('ends'));
  db("UPDATE users SET tier = 'firewall' WHERE id = ?", user.id);

  await t.step('voice-minutes', async () => {
    await t.buyVoice();
    eq(new URL(p.url()).pathname, '/dashboard', 'page after paying');
    await t.waitText('[data-notice]', 'Payment received: you bought Voice AI Therapy minutes. ' +
      'Start a session from Voice AI Therapy below.');
    eq(dbRow('SELECT SUM(minutes_remaining) AS m FROM voice_therapy_credits WHERE user_id = ?', user.id).m,
      15, 'minutes granted');
  });

  await t.step('video-consultation', async () => {
    await t.buyConsultation('video15');
    await t.payHosted();
    const s = dbRow("SELECT id, type, status FROM sessions WHERE user_id = ? AND type = 'video'", user.id);
    assert(s, 'no video session row');
    eq(new URL(p.url()).pathname + new URL(p.url()).search, `/thank-you?session=${s.id}`, 'page after paying');
    await t.waitText('[data-notice]', `you bought Live Video ($29.99). It is consultation #${s.id}`);
    await t.waitText('[data-next]', 'A mechanic will take your consultation shortly');
  });

  await t.step('dashboard-open', async () => {
    await t.goto('/dashboard');
    const s = dbRow("SELECT id FROM sessions WHERE user_id = ? AND type = 'video'", user.id);
    await t.clickAndWaitForNavigation(`a[href="/thank-you?session=${s.id}"]`);
    await t.waitText('[data-next]', 'with a link to the video call');
  });

  await t.step('error-sentences', async () => {
    const res = await t.goto('/experts/987654321/schedule');
    eq(res.status(), 404, 'status of a missing expert');
    await t.waitText('[data-error-message]', 'There is no such expert.');
    await t.assertHumanPage();
    assert(!(await t.text()).includes('404'), 'the error page shows its status code');
  });

  await t.step('favicon', async () => {
    const res = await t.goto('/favicon.ico');
    eq(res.status(), 200, '/favicon.ico status');
    assert(/image\//.test(res.headers()['content-type'] || ''), 'favicon type ' + res.headers()['content-type']);
  });

  await t.step('phone-width', async () => {
    await p.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
    for (const path of ['/', '/dashboard', '/settings/billing', '/live-help', '/experts']) {
      await t.goto(path);
      const w = await p.evaluate(() => document.documentElement.scrollWidth);
      assert(w <= 390, `${path} is ${w}px wide on a 390px screen`);
      /* a person's own tables read as a card per row: nothing to scroll sideways for */
      const tables = await p.$$eval('table.stack', (ts) => ts.map((tb) => ({
        sideways: tb.scrollWidth > tb.clientWidth + 1,
        offScreen: Array.from(tb.querySelectorAll('td button, td a, td time'))
          .filter((el) => el.getBoundingClientRect().right > window.innerWidth).length,
      })));
      tables.forEach((x, i) => {
        assert(!x.sideways, `${path}: table ${i} scrolls sideways`);
        eq(x.offScreen, 0, `${path}: table ${i}, controls and times off the screen`);
      });
    }
    await t.goto('/settings/billing');
    eq(await p.$eval('#payments tbody tr', (tr) => Array.from(tr.cells, (td) => td.getAttribute('data-label'))),
      ['Date', 'What', 'Amount', 'Status'], "a payment's cells named by their columns");
  });
}

module.exports = [{ name: 'purchases-end-on-pages', run: purchasesEndWell }];
