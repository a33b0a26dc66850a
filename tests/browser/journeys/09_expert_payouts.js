/*
 * Journey 9: an expert sets up payouts.  The dashboard offers "Set up
 * payouts"; Stripe's hosted onboarding (the emulator's page) is left half
 * way, so the dashboard then offers "Continue onboarding"; finishing it
 * brings the expert back to a dashboard that reads "Payouts through Stripe:
 * active", and the expert's row has charges and payouts enabled.  The
 * expert then sets their cancellation policy, which their schedule page
 * states to customers.
 */
'use strict';

const { assert, eq, db, dbRow, dbValue, eventually } = require('../lib');

const BUTTON = '#payouts button[data-action="connect-payouts"]';

async function expertPayouts(t) {
  const p = t.page;
  const ex = await t.step('sign-up', () => t.signUp('payouts'));
  db("UPDATE users SET role = 'expert' WHERE id = ?", ex.id);
  db("INSERT INTO experts (user_id, name, headline, bio, rate_cents_per_minute) VALUES (?, 'Payout Expert', 'Payouts', 'Bio', 100)",
    ex.id);
  const expert = Number(dbValue('SELECT id FROM experts WHERE user_id = ?', ex.id));

  await t.step('set-up', async () => {
    await t.goto('/dashboard');
    eq(await t.text(BUTTON), 'Set up payouts', 'button before any account');
    await t.clickAndWaitForNavigation(BUTTON);
    assert(/\/connect\/onboarding\/acct_/.test(p.url()), `not on Stripe's onboarding: ${p.url()}`);
    await p.waitForSelector('#finish-onboarding');
  });

  await t.step('continue', async () => {
    await t.goto('/dashboard');       // left the onboarding half way
    eq(await t.text(BUTTON), 'Continue onboarding', 'button with an account not yet onboarded');
    assert(!(await t.text('#payouts')).includes('active'), 'active before onboarding');
    await t.clickAndWaitForNavigation(BUTTON);
    await p.waitForSelector('#finish-onboarding');
  });

  await t.step('finish', async () => {
    await t.clickAndWaitForNavigation('#finish-onboarding');
    assert(p.url().startsWith(t.url('/dashboard?connect=return')), `not back on the dashboard: ${p.url()}`);
    await t.waitText('#payouts [data-connect-status]', 'Payouts through Stripe: active');
    assert(!(await p.$(BUTTON)), 'onboarding still offered once active');
    const row = dbRow('SELECT stripe_account_id, charges_enabled, payouts_enabled FROM experts WHERE id = ?', expert);
    assert(/^acct_/.test(row.stripe_account_id), 'no account id stored');
    eq(`${row.charges_enabled}/${row.payouts_enabled}`, '1/1', 'charges and payouts enabled');
    await eventually(() => Number(dbValue("SELECT COUNT(*) FROM stripe_events WHERE type = 'account.updated' " +
      'AND object_id = ? AND processed_at IS NOT NULL', row.stripe_account_id)) === 1, 'the account.updated webhook');
    await t.goto('/dashboard');       // server-rendered from the row
    eq(await t.text('#payouts [data-connect-status]'), 'Payouts through Stripe: active', 'after a reload');
  });

  await t.step('cancellation-policy', async () => {
    const form = '#policy form[data-form="expert-policy"]';
    eq(await p.$eval(`${form} [name="fullRefundHours"]`, (e) => e.value), '24', 'the platform\'s hours shown');
    eq(await p.$eval(`${form} [name="latePercent"]`, (e) => e.value), '50', 'the platform\'s late refund shown');
    await p.$eval(`${form} [name="fullRefundHours"]`, (e) => { e.value = ''; });
    await p.type(`${form} [name="fullRefundHours"]`, '12');
    await p.$eval(`${form} [name="latePercent"]`, (e) => { e.value = ''; });
    await p.type(`${form} [name="latePercent"]`, '33.33');
    await p.click(`${form} button[type="submit"]`);
    await t.waitText(`${form} [data-msg]`,
      'Saved: bookings made from now on refund in full up to 12 hours before, then 33.33% of the price.');
    const row = dbRow('SELECT cancel_full_refund_hours AS h, cancel_late_refund_bps AS b FROM experts WHERE id = ?', expert);
    eq(`${row.h}/${row.b}`, '12/3333', 'the policy stored in basis points');
    await t.goto(`/experts/${expert}/schedule`);
    eq(await t.text('[data-policy]'), 'Cancelling up to 12 hours before the session refunds it in full; ' +
      'later, 33.33% of its price; once it has started, nothing. The booking keeps this policy.',
    'the policy a customer reads before picking a time');
  });
}

module.exports = [{ name: 'expert-payouts', run: expertPayouts }];
