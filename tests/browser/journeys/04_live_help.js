/*
 * Journey 4: Live Help hours bought on the explore page (hosted Checkout),
 * then spent on the slots page: Book, the list of booked slots, Cancel more
 * than 24 hours ahead gives the hour back, a slot inside 24 hours cannot be
 * cancelled, and booking without hours left says so in a sentence.
 */
'use strict';

const { assert, eq, db, dbRow, dbValue } = require('../lib');

/*
 * A slot starting hoursAhead from now (plus a unique offset), no seat taken;
 * returns its id.  Slots are the operator's catalogue: made in the database.
 */
function slot(hoursAhead, capacity) {
  const off = Math.floor(Math.random() * 3000);
  db('INSERT INTO live_help_slots (starts_at, ends_at, capacity, booked) VALUES ' +
    '(UTC_TIMESTAMP() + INTERVAL ? HOUR + INTERVAL ? SECOND, ' +
    'UTC_TIMESTAMP() + INTERVAL ? HOUR + INTERVAL ? SECOND, ?, 0)',
  hoursAhead, off, hoursAhead + 1, off, capacity);
  return Number(dbValue('SELECT MAX(id) FROM live_help_slots'));
}

/* Somebody else buys an hour and books the slot's one seat. */
async function filled(t, id) {
  const other = await t.another('filler');
  await other.signUp('filler');
  await other.goto('/');
  await other.page.select('#live-help-hours', '1');
  await other.clickAndWaitForNavigation('button[data-action="buy-live-help"]');
  await other.payHosted();
  await other.waitText('[data-notice]', 'Payment received: you bought 1 Live Help hour');
  await other.goto('/live-help');
  await other.clickAndWaitForNavigation(`button[data-action="book-live-help"][data-slot="${id}"]`);
  await other.waitText('[data-notice]', 'Booked: one Live Help hour was used.');
  return id;
}

async function liveHelp(t) {
  const p = t.page;
  await p.emulateTimezone('America/New_York');
  const user = await t.step('sign-up', () => t.signUp('livehelp'));

  await t.step('buy-2-hours', async () => {
    await t.goto('/');
    await p.select('#live-help-hours', '2');
    await t.clickAndWaitForNavigation('button[data-action="buy-live-help"]');
    assert(p.url().includes('/checkout/pay/'), 'not on the checkout page: ' + p.url());
    await p.type('input[name="card"]', '4242 4242 4242 4242');
    await t.clickAndWaitForNavigation('button[type="submit"]');
    eq(new URL(p.url()).pathname, '/dashboard', 'page after paying');
    await t.waitText('[data-notice]', 'Payment received: you bought 2 Live Help hours.');
    await t.assertHumanPage();
  });

  const far = slot(72, 2), near = slot(10, 1), spare = slot(120, 3);
  const full = await t.step('slot-filled', () => filled(t, slot(96, 1)));

  await t.step('slots-page', async () => {
    await t.clickAndWaitForNavigation('a[href="/live-help"]');
    eq(await t.text('[data-hours-left]'), '2', 'hours left');
    eq(await t.text(`#slots tr[data-slot="${far}"] [data-seats]`), '2', 'seats left');
    assert((await t.text(`#slots tr[data-slot="${full}"]`)).includes('Full'), 'the full slot is bookable');
    const shown = await t.text(`#slots tr[data-slot="${far}"] time`);
    assert(/E[SD]T/.test(shown), `slot time not in the viewer's zone: ${shown}`);
  });

  await t.step('book-far', async () => {
    await t.clickAndWaitForNavigation(`button[data-action="book-live-help"][data-slot="${far}"]`);
    await t.waitText('[data-notice]', 'Booked: one Live Help hour was used.');
    eq(await t.text('[data-hours-left]'), '1', 'hours left after booking');
    eq(await t.text(`#slots tr[data-slot="${far}"] [data-seats]`), '1', 'seats left after booking');
    assert(await p.$(`#my-live-help button[data-action="cancel-live-help"][data-slot="${far}"]`),
      'no Cancel for a slot 3 days away');
    eq(dbRow('SELECT booked FROM live_help_slots WHERE id = ?', far).booked, 1, 'slot booked');
    eq(dbRow('SELECT hours_used FROM user_live_help_totals WHERE user_id = ?', user.id).hours_used, 1, 'hours used');
  });

  await t.step('book-near', async () => {
    // a slot inside the cancel window says so before it is booked; one far off does not
    await t.waitText(`#slots tr[data-slot="${near}"] [data-final]`,
      'starts within 24 hours: cannot be cancelled once booked');
    assert(await p.$(`#slots tr[data-slot="${spare}"] button[data-action="book-live-help"]`) &&
      !(await p.$(`#slots tr[data-slot="${spare}"] [data-final]`)),
      'a slot 5 days away said it could not be cancelled');
    await t.clickAndWaitForNavigation(`button[data-action="book-live-help"][data-slot="${near}"]`);
    eq(await t.text('[data-hours-left]'), '0', 'hours left');
    const row = await t.text(`#my-live-help tr[data-slot="${near}"]`);
    assert(row.includes('can no longer be cancelled'), 'a slot 10 hours away offers Cancel: ' + row);
  });

  await t.step('no-hours-left', async () => {
    // with no hour left a slot offers buying hours, not a Book that must fail
    const row = `#slots tr[data-slot="${spare}"]`;
    assert(!(await p.$(`${row} button[data-action="book-live-help"]`)), 'Book offered with no hours left');
    eq(await t.text(`${row} a[href="/#live-help"]`), 'Buy hours to book', 'the slot offers');
    await t.assertHumanPage();
    eq(dbRow('SELECT booked FROM live_help_slots WHERE id = ?', spare).booked, 0, 'spare slot');
  });

  await t.step('cancel-far', async () => {
    await t.clickAndWaitForNavigation(`button[data-action="cancel-live-help"][data-slot="${far}"]`);
    await t.waitText('[data-notice]', 'Cancelled: the hour is back in your balance.');
    eq(await t.text('[data-hours-left]'), '1', 'hours left after cancelling');
    eq(await t.text(`#slots tr[data-slot="${far}"] [data-seats]`), '2', 'seats after cancelling');
    assert(!(await p.$(`#my-live-help tr[data-slot="${far}"]`)), 'the cancelled slot is still listed');
    eq(dbRow('SELECT booked FROM live_help_slots WHERE id = ?', far).booked, 0, 'slot seats restored');
    eq(dbRow('SELECT hours_used FROM user_live_help_totals WHERE user_id = ?', user.id).hours_used, 1, 'hours used');
    eq(dbRow('SELECT COUNT(*) AS n FROM live_help_redemptions WHERE user_id = ?', user.id).n, 1, 'redemptions');
    eq(dbRow("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'LIVE_HELP_CANCELLED' AND user_id = ?",
      user.id).n, 1, 'audit rows');
  });
}

module.exports = [{ name: 'live-help-slots', run: liveHelp }];
