/*
 * Journey 3: an expert booking.  Free times in the viewer's zone, an unpaid
 * hold greyed out, a time held (its answer lost once: the page's retry finds
 * the hold) and paid on the page with Stripe's payment
 * form (left unpaid and taken up again from My bookings' Pay, then a declined card first, which
 * keeps the hold), the webhook arriving too; My bookings offers Move (to
 * another free time, more than a day ahead) and Cancel with the refund the
 * policy quotes; a payment made after the hold ran out and someone else took
 * the time is said to be refunded, not booked; the expert completes a session
 * that has started.
 * The other bookings it needs are made through the API and paid at the emulator, as
 * a person and Stripe would; only the time passing is set in the database.
 */
'use strict';

const { assert, eq, db, dbRow, dbValue, eventually, losingFirstAnswer, paidAtStripe } = require('../lib');

/* A fresh expert at $2.00 a minute, so nobody else's bookings are in the way. */
function newExpert(tag) {
  db("INSERT INTO experts (name, headline, bio, rate_cents_per_minute) VALUES (CONCAT('Expert ', ?), 'Networks', 'Bio', 200)",
    tag);
  return Number(dbValue('SELECT MAX(id) FROM experts'));
}

async function slotStarts(p) {
  return p.$$eval('button[data-action="pick-time"]', (bs) => bs.map((b) => ({
    start: b.getAttribute('data-start'), disabled: b.disabled })));
}

async function expertBooking(t) {
  const p = t.page;
  await p.emulateTimezone('Asia/Tokyo');
  const tag = String(Date.now()).slice(-6);
  const expert = newExpert(tag);
  const customer = await t.step('sign-up', () => t.signUp('booking'));
  let start, booking, begun;

  await t.step('hold-greyed', async () => {
    await t.goto(`/experts/${expert}/schedule`);
    const slots = await slotStarts(p);
    // a slot more than a day ahead (the full refund window), and the one before it held by someone else
    const i = slots.findIndex((s) => Date.parse(s.start) > Date.now() + 26 * 3600 * 1000);
    assert(i > 0, 'no slot more than a day ahead');
    start = slots[i].start;
    const holder = await t.another('holder');
    await holder.signUp('holder');
    const held = await holder.book(expert, slots[i - 1].start.replace(/\.\d+Z$/, 'Z'));
    eq(held.status, 'awaiting_payment', 'the other hold');
    await t.goto(`/experts/${expert}/schedule`);
    const after = await slotStarts(p);
    assert(after.find((s) => s.start === slots[i - 1].start).disabled, 'an unpaid hold is not greyed');
    assert(!after.find((s) => s.start === start).disabled, 'the chosen time is greyed');
    const label = await p.$eval(`button[data-start="${start}"] time`, (e) => e.textContent);
    assert(/^\d\d:\d\d [AP]M GMT\+9$/.test(label), `times not in the viewer's zone: ${label}`);
    /* each time under a heading of its own day in the viewer's zone, one heading a day */
    const days = await p.evaluate(() => {
      const day = (iso) => new Date(iso).toLocaleDateString('en-US', { timeZone: 'Asia/Tokyo',
        weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
      const out = { misplaced: [], headings: [], days: new Set() };
      let heading = null;
      for (const el of document.querySelectorAll('#slots > *')) {
        if (el.matches('h3.slot-day')) {
          heading = el.textContent;
          out.headings.push(heading);
        } else {
          out.days.add(day(el.getAttribute('data-start')));
          if (day(el.getAttribute('data-start')) !== heading) out.misplaced.push(el.getAttribute('data-start'));
        }
      }
      return { misplaced: out.misplaced, headings: out.headings, days: [...out.days] };
    });
    eq(days.misplaced, [], 'times under another day');
    eq(days.headings, days.days, 'one heading a day, in order');
  });

  await t.step('hold', async () => {
    // the hold's answer is lost: the page asks once more with the same key
    // and gets the hold it made, not a conflict with it
    const seen = await losingFirstAnswer(p, 'POST', '/api/bookings', async () => {
      await p.click(`button[data-action="pick-time"][data-start="${start}"]`);
      await p.waitForSelector('#pay:not([hidden])');
    });
    eq(await t.text('#pay-button'), 'Pay $30.00', 'pay button');
    // the form is brought into view, and the other times only wait (not struck through as taken)
    const top = await p.$eval('#pay', (e) => e.getBoundingClientRect().top);
    assert(top >= 0 && top < await p.evaluate(() => window.innerHeight), `the payment form is at ${top}px`);
    const waiting = await p.$eval('button[data-action="pick-time"]:disabled:not([title]):not(.chosen)',
      (b) => getComputedStyle(b).textDecorationLine);
    eq(waiting, 'none', 'a time waiting while one is held');
    booking = dbRow('SELECT COUNT(*) AS n, MAX(id) AS id, MAX(status) AS status, MAX(price_cents) AS price_cents, ' +
      'MAX(payment_intent_id) AS payment_intent_id, MAX(idempotency_key) AS idempotency_key FROM bookings ' +
      'WHERE user_id = ? AND expert_id = ?', customer.id, expert);
    eq(`${booking.n}/${booking.status}/${booking.price_cents}`, '1/awaiting_payment/3000', 'held booking');
    eq(JSON.stringify([seen.lost, seen.keys.length, seen.keys[1]]),
      JSON.stringify([201, 2, booking.idempotency_key]), 'the lost hold, then the same key again');
    assert(/^[0-9a-f]{32}$/.test(booking.idempotency_key), `held without an Idempotency-Key: ${booking.idempotency_key}`);
  });

  await t.step('back-to-pay', async () => {
    // The customer leaves before paying: My bookings offers Pay for the hold,
    // which opens the same booking's payment form on the expert's page; the
    // page itself shows the hold and when it ends. Nothing new is held.
    await t.goto('/dashboard');
    const row = `tr[data-booking="${booking.id}"]`;
    eq(await t.text(`${row} [data-status]`), 'Awaiting payment', 'status of the hold');
    await t.waitText(`${row} button[data-action="cancel-booking"]`, 'Cancel');
    await t.clickAndWaitForNavigation(`${row} a[data-pay-booking="${booking.id}"]`);
    await p.waitForSelector('#pay:not([hidden])');
    eq(await t.text('#pay-button'), 'Pay $30.00', 'pay button of the hold');
    assert(await p.$eval(`[data-hold="${booking.id}"]`, (e) => e.hidden), 'the hold notice stays beside its form');
    await t.goto(`/experts/${expert}/schedule`);
    await t.waitText(`[data-hold="${booking.id}"]`, 'You are holding 15 minutes from');
    assert(await p.$eval('#pay', (e) => e.hidden), 'the form opened without Pay now');
    await p.click(`[data-hold="${booking.id}"] button[data-action="resume-booking"]`);
    await p.waitForSelector('#pay:not([hidden])');
    const r = dbRow('SELECT COUNT(*) AS n, MAX(id) AS id, MAX(payment_intent_id) AS pi ' +
      'FROM bookings WHERE user_id = ? AND expert_id = ?', customer.id, expert);
    eq(`${r.n}/${r.id}/${r.pi}`, `1/${booking.id}/${booking.payment_intent_id}`, 'bookings after coming back');
  });

  const frame = await t.step('declined', async () => {
    const f = await t.frame('/elements/');
    await f.waitForSelector('#card');
    await f.type('#card', '4000 0000 0000 0002');
    await p.click('#pay-button');
    await t.waitText('#pay-msg', 'Your card was declined.');
    await t.assertHumanPage();
    // Nothing was paid, and the hold stays: the booking still awaits payment,
    // the decline is recorded, the time stays greyed for others, and the same
    // payment form takes another card.
    await eventually(() => Number(dbValue('SELECT failed_attempts FROM payments WHERE booking_id = ?',
      Number(booking.id))) === 1, 'the decline recorded on the payment');
    const d = dbRow('SELECT b.status, p.status AS pay, p.last_payment_error FROM bookings b ' +
      'JOIN payments p ON p.booking_id = b.id WHERE b.id = ?', Number(booking.id));
    eq(`${d.status}/${d.pay}/${d.last_payment_error}`, 'awaiting_payment/failed/Your card was declined.',
      'booking and payment after a decline');
    const other = await t.another('other');
    await other.signUp('other');
    await other.goto(`/experts/${expert}/schedule`);
    const seen = await slotStarts(other.page);
    assert(seen.find((x) => x.start === start).disabled, 'the declined booking lost its hold');
    assert(!(await p.$eval('#pay-button', (b) => b.disabled)), 'Pay is not offered again after a decline');
    return f;
  });

  await t.step('paid', async () => {
    await frame.click('#card', { clickCount: 3 });
    await frame.type('#card', '4242 4242 4242 4242');
    await p.click('#pay-button');
    await t.waitText('#booking-msg', `Booked: your session with Expert ${tag} on`);
    const b = dbRow('SELECT b.status, p.status AS pay FROM bookings b JOIN payments p ON p.booking_id = b.id WHERE b.id = ?',
      Number(booking.id));
    eq(`${b.status}/${b.pay}`, 'scheduled/succeeded', 'booking and payment');
    await eventually(() => Number(dbValue("SELECT COUNT(*) FROM stripe_events WHERE type = 'payment_intent.succeeded' " +
      'AND object_id = ? AND processed_at IS NOT NULL', booking.payment_intent_id)) === 1, 'the payment_intent.succeeded webhook');
    eq(dbRow('SELECT status FROM bookings WHERE id = ?', Number(booking.id)).status, 'scheduled', 'after the webhook');
  });

  await t.step('move', async () => {
    // My bookings (from the page's own link) offers Move while a cancel would
    // refund in full; the expert's page then moves the booking to the time
    // picked, for the same price
    await t.clickAndWaitForNavigation('#booking-msg a');
    const row = `tr[data-booking="${booking.id}"]`;
    await t.clickAndWaitForNavigation(`${row} a[data-move-booking="${booking.id}"]`);
    await t.waitText(`[data-moving="${booking.id}"]`, 'Moving your 15-minute booking of');
    assert(!(await p.$('#duration')), 'the length can be changed while moving');
    const slots = await slotStarts(p);
    const to = slots.find((x) => !x.disabled && x.start !== start &&
      Date.parse(x.start) > Date.parse(start) + 3600 * 1000);
    assert(to, 'no free time to move to');
    assert(slots.find((x) => x.start === start).disabled, 'its own time is offered');
    await Promise.all([p.waitForNavigation({ waitUntil: 'load' }),
      p.click(`button[data-action="pick-time"][data-start="${to.start}"]`)]);
    eq(new URL(p.url()).pathname, '/dashboard', 'page after moving');
    await t.waitText('[data-notice]', `Moved: your session with Expert ${tag} is at its new time below.`);
    const iso = await p.$eval(`${row} time`, (e) => e.getAttribute('datetime'));
    eq(Date.parse(iso), Date.parse(to.start), 'the new time on My bookings');
    const b = dbRow("SELECT DATE_FORMAT(start_time, '%Y-%m-%dT%H:%i:%sZ') AS s, status, price_cents " +
      'FROM bookings WHERE id = ?', Number(booking.id));
    eq(`${Date.parse(b.s) === Date.parse(to.start)}/${b.status}/${b.price_cents}`, 'true/scheduled/3000',
      'the booking after moving');
    eq(Number(dbValue("SELECT COUNT(*) FROM audit_log WHERE action = 'BOOKING_RESCHEDULED' AND entity_id = ?",
      String(booking.id))), 1, 'audit rows');
    // its old time is free again for others
    await t.goto(`/experts/${expert}/schedule`);
    assert(!(await slotStarts(p)).find((x) => x.start === start).disabled, 'the old time is still taken');
  });

  await t.step('cancel', async () => {
    // two more paid bookings of this customer: one starting in 5 hours (inside
    // the 24-hour window: half back), one that has started (no Cancel): booked
    // 3 hours ahead and paid, then moved to have begun 10 minutes ago
    const hence = (hours) => new Date(Date.now() + hours * 3600 * 1000).toISOString().slice(0, 16);
    const late = await paidAtStripe(await t.book(expert, hence(5)));
    begun = await paidAtStripe(await t.book(expert, hence(3)));
    db('UPDATE bookings SET start_time = UTC_TIMESTAMP() - INTERVAL 10 MINUTE, ' +
      'end_time = UTC_TIMESTAMP() + INTERVAL 20 MINUTE WHERE id = ?', begun);
    await t.goto('/dashboard');
    const sel = `tr[data-booking="${booking.id}"]`;
    // the buttons show the quote: the whole price a day ahead, half inside it
    await t.waitText(`${sel} button[data-action="cancel-booking"]`, 'Cancel (refund $30.00)');
    await t.waitText(`tr[data-booking="${late}"] button[data-action="cancel-booking"]`, 'Cancel (refund $30.00)');
    const quote = await p.evaluate(async (id) => (await fetch(`/api/bookings/${id}/cancellation`)).json(), late);
    eq(`${quote.cancellable}/${quote.tier}/${quote.priceCents}/${quote.refundCents}`, 'true/partial/6000/3000',
      'quote inside 24 hours');
    const full = await p.evaluate(async (id) => (await fetch(`/api/bookings/${id}/cancellation`)).json(),
      Number(booking.id));
    eq(`${full.tier}/${full.refundCents}`, 'full/3000', 'quote a day ahead');
    assert(!(await p.$(`tr[data-booking="${late}"] a[data-move-booking]`)), 'Move offered inside 24 hours');
    assert(await p.$(`tr[data-booking="${begun}"]`), 'the started booking is not listed');
    assert(!(await p.$(`tr[data-booking="${begun}"] button[data-action="cancel-booking"]`)),
      'Cancel offered for a booking that has started');
    eq(await t.text(`tr[data-booking="${begun}"] [data-status]`), 'In progress', 'a booking under way');
    // a paid booking asks first: the first press only says what would happen
    await p.click(`${sel} button[data-action="cancel-booking"]`);
    await t.waitText(`${sel} button[data-action="cancel-booking"]`, 'Confirm: cancel and refund $30.00');
    eq(await t.text(`${sel} [data-status]`), 'Scheduled', 'status before confirming');
    await t.clickAndWaitForNavigation(`${sel} button[data-action="cancel-booking"]`);
    eq(await t.text(`${sel} [data-status]`), 'Cancelled', 'status after cancelling');
    await t.waitText('#bookings-msg', `Booking #${booking.id} is cancelled; $30.00 goes back to the card that paid.`);
    const r = dbRow('SELECT r.amount_cents FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE p.booking_id = ?',
      Number(booking.id));
    eq(r && r.amount_cents, 3000, 'refund');
  });

  await t.step('taken-while-paying', async () => {
    // A hold that ran out while its payment form stayed open: someone else
    // takes the time, the payment still goes through, and the page says it
    // was refunded instead of "Booked".
    await t.goto(`/experts/${expert}/schedule`);
    const free = (await slotStarts(p)).filter((x) => !x.disabled).pop();
    await p.click(`button[data-action="pick-time"][data-start="${free.start}"]`);
    await p.waitForSelector('#pay:not([hidden])');
    const mine = Number(dbValue('SELECT MAX(id) FROM bookings WHERE user_id = ?', customer.id));
    db('UPDATE bookings SET created_at = created_at - INTERVAL 31 MINUTE WHERE id = ?', mine);
    const taker = await t.another('taker');
    await taker.signUp('taker');
    eq((await taker.book(expert, free.start.replace(/\.\d+Z$/, 'Z'))).status, 'awaiting_payment',
      'the time taken after the hold ran out');
    const f = await t.frame('/elements/');   // the new page's payment form
    await f.waitForSelector('#card');
    await f.type('#card', '4242 4242 4242 4242');
    await p.click('#pay-button');
    await t.waitText('#booking-msg', 'This time was taken by someone else after your hold ran out, ' +
      'so your payment has been refunded in full.');
    assert(!(await p.$('#booking-msg[data-booked]')), 'shown as booked');
    eq(dbRow('SELECT status FROM payments WHERE booking_id = ?', mine).status, 'refunded', 'payment');
  });

  await t.step('switch-between-holds', async () => {
    // two unpaid holds: Pay now on one, then on the other; the first keeps its notice
    const other = await t.another('switcher');
    await other.signUp('switcher');
    const ex2 = newExpert(tag + 's');
    await other.goto(`/experts/${ex2}/schedule`);
    const free = (await slotStarts(other.page)).filter((s) => !s.disabled);
    const a = await other.book(ex2, free[free.length - 3].start.replace(/\.\d+Z$/, 'Z'));
    const b = await other.book(ex2, free[free.length - 1].start.replace(/\.\d+Z$/, 'Z'));
    await other.goto(`/experts/${ex2}/schedule`);
    await other.page.click(`[data-hold="${a.id}"] button[data-action="resume-booking"]`);
    await other.page.waitForSelector('#pay:not([hidden])');
    await other.page.click(`[data-hold="${b.id}"] button[data-action="resume-booking"]`);
    await other.page.waitForFunction((id) => document.querySelector(`[data-hold="${id}"]`).hidden, {}, b.id);
    await other.page.waitForSelector('#pay:not([hidden])');
    assert(!(await other.page.$eval(`[data-hold="${a.id}"]`, (e) => e.hidden)),
      'the first hold lost its notice when the second one\'s form opened');
    eq(await other.page.$eval('#pay [data-held] time', (e) => e.getAttribute('datetime')),
      await other.page.$eval(`[data-hold="${b.id}"] button`, (e) => e.getAttribute('data-start')),
      'the form is the second hold\'s');
  });

  await t.step('let-a-hold-go', async () => {
    // a time picked, then the mind changed: the hold is let go and every time is free to pick
    const chooser = await t.another('chooser');
    const u = await chooser.signUp('chooser');
    const ex3 = newExpert(tag + 'c');
    await chooser.goto(`/experts/${ex3}/schedule`);
    const free = (await slotStarts(chooser.page)).filter((s) => !s.disabled);
    await chooser.page.click(`button[data-action="pick-time"][data-start="${free[0].start}"]`);
    await chooser.page.waitForSelector('#pay:not([hidden])');
    const hold = Number(dbValue('SELECT MAX(id) FROM bookings WHERE user_id = ?', u.id));
    await chooser.page.click('#pay button[data-action="release-hold"]');
    await chooser.waitText('#booking-msg', 'That time is free again: pick another.');
    assert(await chooser.page.$eval('#pay', (e) => e.hidden), 'the payment form stayed open');
    eq((await slotStarts(chooser.page)).filter((s) => !s.disabled).length, free.length,
      'times that can be picked again');
    eq(dbRow('SELECT status FROM bookings WHERE id = ?', hold).status, 'cancelled_by_user', 'the hold');
    // a hold the page lists lets go the same way
    const again = await chooser.book(ex3, free[1].start.replace(/\.\d+Z$/, 'Z'));
    await chooser.goto(`/experts/${ex3}/schedule`);
    await chooser.page.click(`[data-hold="${again.id}"] button[data-action="release-hold"]`);
    await chooser.waitText('#booking-msg', 'That time is free again: pick another.');
    assert(!(await chooser.page.$(`[data-hold="${again.id}"]`)), 'the hold notice stayed');
    eq(dbRow('SELECT status FROM bookings WHERE id = ?', again.id).status, 'cancelled_by_user',
      'the listed hold');
  });

  await t.step('expert-completes', async () => {
    // the booking that has begun, paid: its expert completes it
    await t.signOut();
    const ex = await t.signUp('expert');
    db("UPDATE users SET role = 'expert' WHERE id = ?", ex.id);
    db('UPDATE experts SET user_id = ? WHERE id = ?', ex.id, expert);
    const started = begun;
    await t.goto('/dashboard');
    await t.clickAndWaitForNavigation('a[href="/expert/bookings"]');
    assert(!(await p.$(`tr[data-booking="${booking.id}"] button[data-action="complete-booking"]`)),
      'Complete offered for a cancelled booking');
    eq(await t.text(`tr[data-booking="${started}"] [data-status]`), 'In progress', 'status before its end');
    db('UPDATE bookings SET start_time = start_time - INTERVAL 30 MINUTE, end_time = end_time - INTERVAL 30 MINUTE' +
      ' WHERE id = ?', started);
    await t.goto('/expert/bookings');
    eq(await t.text(`tr[data-booking="${started}"] [data-status]`), 'Ended', 'status once over');
    await t.clickAndWaitForNavigation(`tr[data-booking="${started}"] button[data-action="complete-booking"]`);
    eq(await t.text(`tr[data-booking="${started}"] [data-status]`), 'Completed', 'status after Complete');
    eq(dbRow('SELECT status FROM bookings WHERE id = ?', started).status, 'completed', 'booking row');
  });
}

module.exports = [{ name: 'expert-booking', run: expertBooking }];
