/*
 * Journey 2: a subscription on /settings/billing: the plans with their
 * monthly credits, Subscribe through embedded Checkout, the active plan with
 * its renewal date, Cancel at period end shown as ending on that date, Keep
 * my plan undoing it, cancelled again, and a new subscription once the old
 * one has ended: Pro, which includes Voice AI Therapy, so it can be bought;
 * then Pro changed to Starter at renewal (and kept, and changed again), and
 * the renewal that makes it Starter.
 */
'use strict';

const { assert, eq, dbRow, env, eventually } = require('../lib');

/* Subscribe to plan in the modal and pay with the good card. */
async function subscribe(t, plan, name) {
  const p = t.page;
  await p.click(`button[data-action="subscribe"][data-plan="${plan}"]`);
  await p.waitForSelector('#checkout-dialog[open]');
  await t.waitText('#checkout-title', `Subscribe to ${name} plan`);
  const f = await t.frame('/embedded/');
  await f.waitForSelector('input[name="card"]');
  await f.type('input[name="card"]', '4242 4242 4242 4242');
  await Promise.all([p.waitForNavigation({ waitUntil: 'load' }), f.click('button[type="submit"]')]);
}

async function emu(path) {
  const res = await fetch(env('CD_EMU_URL') + path, { method: 'POST',
    headers: { 'Content-Type': 'application/json' }, body: '{}' });
  assert(res.ok, `emulator ${path}: ${res.status}`);
  return res.json();
}

/* The subscription as Stripe (the emulator) has it now. */
async function stripeSub(id) {
  const res = await fetch(`${env('STRIPE_API_BASE')}/v1/subscriptions/${id}`, {
    headers: { Authorization: 'Bearer ' + env('STRIPE_SECRET_KEY') } });
  assert(res.ok, `GET subscription ${id}: ${res.status}`);
  return res.json();
}

/* Our row and Stripe both say whether the plan ends at the period's end. */
async function ending(sub, want) {
  const row = dbRow('SELECT status, cancel_at_period_end FROM subscriptions WHERE id = ?', Number(sub.id));
  eq(row.status, 'active', 'status until the period ends');
  eq(row.cancel_at_period_end, want ? 1 : 0, 'cancel_at_period_end');
  eq((await stripeSub(sub.stripe_subscription_id)).cancel_at_period_end, want, "Stripe's cancel_at_period_end");
}

function audits(user, action) {
  return dbRow('SELECT COUNT(*) AS n FROM audit_log WHERE action = ? AND user_id = ?', action, user.id).n;
}

async function subscription(t) {
  const p = t.page;
  const user = await t.step('sign-up', () => t.signUp('sub'));

  await t.step('plans-listed', async () => {
    await t.goto('/settings/billing');
    const plans = await t.text('#plans');
    assert(plans.includes('Starter') && plans.includes('20,833 credits every month'), 'Starter plan: ' + plans);
    assert(plans.includes('Pro') && plans.includes('62,500 credits every month'), 'Pro plan: ' + plans);
    const premium = await p.$$eval('#plans article', (cards) => cards.map((c) =>
      [c.querySelector('h3').textContent, !!c.querySelector('[data-premium]')]));
    eq(JSON.stringify(premium), JSON.stringify([['Starter', false], ['Pro', true]]), 'plans with Voice AI Therapy');
    await t.goto('/voice');
    await t.waitText('main', 'Voice AI Therapy comes with the Pro plan.');
    await t.goto('/settings/billing');
  });

  let sub;
  await t.step('subscribe', async () => {
    await subscribe(t, 'starter', 'Starter');
    eq(new URL(p.url()).pathname, '/settings/billing', 'page after paying');
    await t.waitText('[data-notice]', 'Payment received: you bought the Starter plan (20,833 credits every month).');
    sub = dbRow("SELECT id, stripe_subscription_id, status, cancel_at_period_end, " +
      "DATE_FORMAT(current_period_end, '%Y-%m-%dT%H:%i:%sZ') AS ends FROM subscriptions WHERE user_id = ?", user.id);
    assert(sub, 'no subscriptions row');
    eq(sub.status, 'active', 'subscription status');
    assert(sub.ends, 'no renewal date stored');
    const card = await t.text('#subscription');
    assert(card.includes('Starter plan') && card.includes('20,833'), 'plan card: ' + card);
    await t.waitText('[data-sub-status]', 'Active: renews on');
    const shown = await p.$eval('#subscription time', (e) => e.getAttribute('datetime'));
    eq(shown, sub.ends, 'renewal date on the page');
    eq(await t.text('[data-balance]'), '20,833', 'credits after the first invoice');
  });

  await t.step('cancel-at-period-end', async () => {
    await p.click('button[data-action="cancel-subscription"]');
    await t.waitText('[data-sub-status]', 'Cancelled: your plan ends on');
    assert(!(await p.$('button[data-action="cancel-subscription"]')), 'Cancel still offered');
    await ending(sub, true);
    eq(audits(user, 'SUBSCRIPTION_CANCEL_REQUESTED'), 1, 'cancel audit rows');
  });

  await t.step('keep-my-plan', async () => {
    await p.click('button[data-action="resume-subscription"]');
    await t.waitText('[data-sub-status]', 'Active: renews on');
    assert(!(await p.$('button[data-action="resume-subscription"]')), 'Keep my plan still offered');
    await ending(sub, false);
    eq(audits(user, 'SUBSCRIPTION_RESUMED'), 1, 'resume audit rows');
  });

  await t.step('cancel-again', async () => {
    await p.click('button[data-action="cancel-subscription"]');
    await t.waitText('[data-sub-status]', 'Cancelled: your plan ends on');
    await ending(sub, true);
    eq(audits(user, 'SUBSCRIPTION_CANCEL_REQUESTED'), 2, 'cancel audit rows');
  });

  await t.step('period-ends', async () => {
    await emu(`/_emu/subscriptions/${sub.stripe_subscription_id}/end_period`);
    await eventually(() => dbRow('SELECT status FROM subscriptions WHERE id = ?', Number(sub.id)).status === 'canceled',
      'customer.subscription.deleted to end the subscription');
    await t.goto('/settings/billing');
    await p.waitForSelector('#plans');
  });

  await t.step('resubscribe', async () => {
    await subscribe(t, 'pro', 'Pro');
    await t.waitText('[data-notice]', 'you bought the Pro plan (62,500 credits every month).');
    await t.waitText('[data-sub-status]', 'Active: renews on');
    eq(dbRow("SELECT COUNT(*) AS n FROM subscriptions WHERE user_id = ? AND status = 'active'", user.id).n, 1,
      'active subscriptions');
    eq(await t.text('[data-balance]'), '83,333', 'credits after both plans');
    await t.waitText('#subscription [data-premium]', 'Includes Voice AI Therapy.');
  });

  await t.step('pro-gives-voice', async () => {
    await t.goto('/');
    await p.waitForSelector('#voice-therapy button[data-action="buy-voice"]');
    await t.goto('/voice');
    assert(!(await t.text('main')).includes('comes with the'), 'the premium note on /voice');
  });

  // Pro renews as Starter from its next renewal; Keep undoes that until then.
  let pro;
  await t.step('change-plan', async () => {
    pro = dbRow("SELECT id, stripe_subscription_id FROM subscriptions WHERE user_id = ? AND status = 'active'",
      user.id);
    await t.goto('/settings/billing');
    await p.click('button[data-action="change-plan"][data-plan="starter"]');
    await t.waitText('[data-plan-change]',
      'From then it renews as the Starter plan: 20,833 credits every month for $10.00 a month.');
    eq((await stripeSub(pro.stripe_subscription_id)).items.data[0].price.unit_amount, 1000, "Stripe's price");
    await p.click('button[data-action="change-plan"][data-plan="pro"]');
    await t.waitText('#subscription', 'Change to Starter at renewal');
    assert(!(await p.$('[data-plan-change]')), 'the change still shown');
    eq((await stripeSub(pro.stripe_subscription_id)).items.data[0].price.unit_amount, 2500, "Stripe's price kept");
    await p.click('button[data-action="change-plan"][data-plan="starter"]');
    await t.waitText('[data-plan-change]', 'renews as the Starter plan');
    eq(audits(user, 'SUBSCRIPTION_PLAN_CHANGED'), 3, 'plan change audit rows');
    eq(await t.text('[data-balance]'), '83,333', 'no credits at the change');
  });

  await t.step('renews-as-starter', async () => {
    await emu(`/_emu/subscriptions/${pro.stripe_subscription_id}/renew`);
    await eventually(() => dbRow('SELECT plan_id FROM subscriptions WHERE id = ?', Number(pro.id)).plan_id === 'starter',
      'the renewal to make the plan Starter');
    await t.goto('/settings/billing');
    await t.waitText('#subscription h3', 'Starter plan');
    await t.waitText('#subscription [data-premium-note]', 'Voice AI Therapy comes with the Pro plan.');
    eq(await t.text('[data-balance]'), '104,166', "credits after Starter's first renewal");
  });
}

module.exports = [{ name: 'subscription-plans', run: subscription }];
