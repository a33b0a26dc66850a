/*
 * Journey 1: a boost pack bought on /settings/billing through embedded
 * Checkout in a modal; a declined card first, then a good one; then the
 * payment disputed, its credits shown held.
 */
'use strict';

const { assert, eq, dbRow, emu, eventually } = require('../lib');

/* The Payments section's rows as "what | amount | status", one a line. */
function payments(p) {
  return p.$$eval('#payments tbody tr[data-payment]', (rows) => rows.map((tr) =>
    [...tr.cells].slice(1).map((td) => td.innerText).join(' | ')).join('\n'));
}

async function buyPack(t) {
  const p = t.page;
  const user = await t.step('sign-up', () => t.signUp('boost'));

  await t.step('billing-page', async () => {
    await t.goto('/settings/billing');
    await t.waitText('[data-balance]', '0');
    const body = await t.text();
    assert(!/token/i.test(body), 'the billing page speaks of tokens');
    assert(body.includes('Power Boost') && body.includes('22,916'), 'the Power Boost pack is not listed');
  });

  await t.step('open-checkout', async () => {
    await p.click('button[data-action="buy-pack"][data-pack="boost-medium"]');
    await p.waitForSelector('#checkout-dialog[open]');
    await t.waitText('#checkout-title', 'Buy Power Boost');
  });

  const frame = await t.step('declined-card', async () => {
    const f = await t.frame('/embedded/');
    await f.waitForSelector('input[name="card"]');
    await f.type('input[name="card"]', '4000 0000 0000 0002');
    await Promise.all([f.waitForNavigation(), f.click('button[type="submit"]')]);
    const f2 = await t.frame('/embedded/');
    await f2.waitForSelector('.error');
    eq(await f2.$eval('.error', (e) => e.innerText), 'Your card was declined.', 'decline message');
    assert(await p.$('#checkout-dialog[open]'), 'the modal closed after a decline');
    eq(dbRow('SELECT COUNT(*) AS n FROM boost_pack_purchases WHERE user_id = ?', user.id).n, 0,
      'purchases after a decline');
    return f2;
  });

  await t.step('pay', async () => {
    await frame.type('input[name="card"]', '4242 4242 4242 4242');
    await Promise.all([
      p.waitForNavigation({ waitUntil: 'load' }),
      frame.click('button[type="submit"]'),
    ]);
  });

  await t.step('back-on-billing', async () => {
    const u = new URL(p.url());
    eq(u.pathname, '/settings/billing', 'page after paying');
    await t.waitText('[data-notice]', 'Payment received: you bought Power Boost (22,916 credits).');
    eq(await t.text('[data-balance]'), '22,916', 'balance shown');
    eq(await payments(p), 'Power Boost | $10.00 | Paid', 'the Payments section');
    await t.assertHumanPage();
    const row = dbRow('SELECT boost_pack_id, amount_cents, credits_applied FROM boost_pack_purchases WHERE user_id = ?', user.id);
    assert(row, 'no boost_pack_purchases row');
    eq(row.boost_pack_id, 'boost-medium', 'pack bought');
    eq(row.amount_cents, 1000, 'amount paid');
    eq(dbRow('SELECT balance FROM user_credits WHERE user_id = ?', user.id).balance, 22916000,
      'token balance');
  });

  await t.step('webhook-changes-nothing', async () => {
    // The webhook also arrives; the purchase is still counted once.
    await eventually(() => Number(dbRow(
      "SELECT COUNT(*) AS n FROM stripe_events WHERE type = 'checkout.session.completed' " +
      'AND object_id = (SELECT stripe_session_id FROM boost_pack_purchases WHERE user_id = ?) ' +
      'AND processed_at IS NOT NULL', user.id).n) === 1, 'the checkout.session.completed webhook');
    eq(dbRow('SELECT COUNT(*) AS n FROM boost_pack_purchases WHERE user_id = ?', user.id).n, 1, 'purchases');
    eq(dbRow('SELECT balance FROM user_credits WHERE user_id = ?', user.id).balance, 22916000, 'token balance');
  });

  await t.step('a-dispute-holds-the-credits', async () => {
    // The payment is disputed: its credits stay in the balance but cannot be spent.
    const pi = dbRow('SELECT payment_intent_id AS pi FROM boost_pack_purchases WHERE user_id = ?', user.id).pi;
    const charge = dbRow("SELECT object_id AS id FROM stripe_events WHERE type = 'charge.succeeded' " +
      "AND JSON_VALUE(payload, '$.data.object.payment_intent') = ?", pi).id;
    eq((await emu(`/_emu/charges/${charge}/dispute`)).status, 200, 'emulator opening a dispute');
    await eventually(() => Number(dbRow('SELECT frozen FROM user_credits WHERE user_id = ?',
      user.id).frozen) === 22916000, 'the dispute to freeze the credits');
    await t.goto('/settings/billing');
    eq(await t.text('[data-balance]'), '0', 'credits available while disputed');
    eq(await t.text('[data-held]'), '22,916 more held while a payment of yours is disputed', 'credits held');
    eq(await payments(p), 'Power Boost | $10.00 | Disputed', 'the Payments section while disputed');
  });
}

module.exports = [{ name: 'boost-pack-embedded-checkout', run: buyPack }];
