/*
 * Journey 7: the admin console.  Metrics, a pending payout marked paid, a
 * waiting consultation assigned to a mechanic, a user's role and tier
 * changed (and audited), and the audit log filtered and paged on one screen.
 * What the console acts on is made as people make it: the booking to pay out
 * booked through the API, paid at the emulator and completed by its expert;
 * only the expert's profile and the time passing are set in the database.
 */
'use strict';

const { assert, eq, db, dbRow, dbValue, paidAtStripe } = require('../lib');

/*
 * An expert with one completed, paid booking of the signed-in customer:
 * $30.00, $3.00 fee, $27.00 owed.  Booked for tomorrow, paid, moved two days
 * back (the time passing), and completed by the expert.
 */
async function owedExpert(t, tag) {
  db("INSERT INTO experts (name, headline, bio, rate_cents_per_minute) VALUES (?, 'Payouts', 'x', 100)",
    `Expert-${tag}`);
  const expert = Number(dbValue('SELECT MAX(id) FROM experts'));
  await t.goto('/dashboard');
  const tomorrow = new Date(Date.now() + 24 * 3600 * 1000).toISOString().slice(0, 16);
  const booking = await paidAtStripe(await t.book(expert, tomorrow));
  db('UPDATE bookings SET start_time = UTC_TIMESTAMP() - INTERVAL 2 DAY, ' +
    'end_time = UTC_TIMESTAMP() - INTERVAL 2 DAY + INTERVAL 30 MINUTE WHERE id = ?', booking);
  const ex = await t.another('expert');
  const u = await ex.signUp('adm-expert');
  db("UPDATE users SET role = 'expert' WHERE id = ?", u.id);
  db('UPDATE experts SET user_id = ? WHERE id = ?', u.id, expert);
  await ex.goto('/dashboard');
  const done = await ex.post(`/api/bookings/${booking}/complete`);
  eq(`${done.status}/${done.body && done.body.booking.status}`, '200/completed', 'the expert completes it');
  return { expert, booking };
}

/* A chat consultation the signed-in customer buys and pays; nobody has taken it yet. */
async function waitingConsultation(t, customerId) {
  await t.buyConsultation('chat10');
  await t.payHosted();
  const id = Number(dbValue("SELECT id FROM sessions WHERE user_id = ? AND type = 'chat'", customerId));
  assert(id, 'no chat consultation row');
  return id;
}

async function adminConsole(t) {
  const p = t.page;
  const tag = String(Date.now());
  const customer = await t.step('customer', async () => {
    const c = await t.signUp('adm-cust');
    const res = await t.goto('/admin');
    eq(res.status(), 403, '/admin for a customer');
    await t.assertHumanPage();
    c.session = await waitingConsultation(t, c.id);
    c.owed = await owedExpert(t, tag);
    await t.signOut();
    return c;
  });
  const mech = await t.step('mechanic', async () => {
    const m = await t.signUp('adm-mech');
    db("UPDATE users SET role = 'mechanic' WHERE id = ?", m.id);
    await t.signOut();
    return m;
  });
  const admin = await t.step('admin', async () => {
    const a = await t.signUp('adm-admin');
    db("UPDATE users SET role = 'admin' WHERE id = ?", a.id);
    return a;
  });
  const owed = customer.owed;
  const session = customer.session;

  await t.step('metrics', async () => {
    await t.goto('/admin');
    await t.page.waitForFunction(() => !/…/.test(document.querySelector('[data-metric="pending"]').textContent));
    assert(/^\$[\d,]+\.\d\d$/.test(await t.text('[data-metric="revenue"]')), 'revenue metric');
    assert(/%$/.test(await t.text('[data-metric="paymentRate"]')), 'payment success metric');
  });

  await t.step('mark-paid', async () => {
    const sel = `#payouts-table tr[data-expert="${owed.expert}"]`;
    await p.waitForSelector('#payouts-table tr[data-expert]');
    /* the experts owed the most first, 20 of them, then a button for the rest */
    const pending = await p.evaluate(() => fetch('/api/admin/payouts/pending',
      { headers: { Accept: 'application/json' } }).then((r) => r.json()));
    const rows = () => p.$$eval('#payouts-table tr[data-expert]', (trs) =>
      trs.map((tr) => Number(tr.cells[2].textContent.replace(/[^\d-]/g, ''))));
    const shown = await rows();
    eq(shown.length, Math.min(20, pending.experts.length), 'payout rows shown');
    assert(shown.every((c, i) => i === 0 || shown[i - 1] >= c), 'owed most first: ' + shown);
    if (pending.experts.length > 20) {
      await t.waitText('#payouts-table tr[data-more]', `Show all ${pending.experts.length} experts`);
      await p.click('button[data-action="show-all-payouts"]');
      await p.waitForFunction((n) => document.querySelectorAll('#payouts-table tr[data-expert]').length === n,
        {}, pending.experts.length);
    }
    eq(await p.$('#payouts-table tr[data-more]'), null, 'no button once all are shown');
    await p.waitForSelector(sel);
    assert((await t.text(sel)).includes('$27.00'), 'owed amount: ' + (await t.text(sel)));
    await p.click(`${sel} button[data-action="mark-paid"]`);
    await t.waitText('#payouts-msg', `Marked paid: $27.00 to Expert-${tag}.`);
    await p.waitForFunction((s) => !document.querySelector(s), {}, sel);
    const row = dbRow('SELECT amount_cents, status, created_by FROM payouts WHERE expert_id = ?', owed.expert);
    eq(row.amount_cents, 2700, 'payout amount');
    eq(row.created_by, admin.id, 'payout made by');
    eq(dbRow('SELECT COUNT(*) AS n FROM payout_items WHERE booking_id = ?', owed.booking).n, 1, 'payout items');
  });

  await t.step('assign', async () => {
    const sel = `#waiting tr[data-session="${session}"]`;
    await p.select(`select[data-mechanic-for="${session}"]`, String(mech.id));
    await p.click(`${sel} button[data-action="assign-mechanic"]`);
    await t.waitText('#assign-msg', `Consultation #${session} assigned to Browser adm-mech.`);
    eq(dbRow("SELECT user_id FROM session_participants WHERE session_id = ? AND role = 'mechanic'", session).user_id,
      mech.id, 'assigned mechanic');
    eq(dbRow('SELECT status FROM sessions WHERE id = ?', session).status, 'active', 'session status');
  });

  await t.step('change-user', async () => {
    await t.goto('/admin?q=' + encodeURIComponent(customer.email) + '#users');
    const sel = `#users-table tr[data-user="${customer.id}"]`;
    await p.waitForSelector(sel);
    await p.select(`${sel} select[name="role"]`, 'expert');
    await p.select(`${sel} select[name="tier"]`, 'firewall');
    await p.click(`${sel} button[data-action="save-user"]`);
    await t.waitText('#users-msg', `Saved: ${customer.email} is now expert on the firewall tier.`);
    const u = dbRow('SELECT role, tier FROM users WHERE id = ?', customer.id);
    eq(`${u.role}/${u.tier}`, 'expert/firewall', 'user after the change');
    const a = dbRow("SELECT user_id, details FROM audit_log WHERE action = 'ADMIN_USER_UPDATED' AND entity_id = ?",
      String(customer.id));
    eq(a.user_id, admin.id, 'audited as');
    assert(a.details.includes('"before"') && a.details.includes('"firewall"'), 'audit details ' + a.details);
    // another admin makes the user a mechanic meanwhile; this page, not
    // reloaded, changes only the tier: the other admin's role is kept
    db("UPDATE users SET role = 'mechanic' WHERE id = ?", customer.id);
    await p.select(`${sel} select[name="tier"]`, 'free');
    await p.click(`${sel} button[data-action="save-user"]`);
    await t.waitText('#users-msg', `Saved: ${customer.email} is now mechanic on the free tier.`);
    const v = dbRow('SELECT role, tier FROM users WHERE id = ?', customer.id);
    eq(`${v.role}/${v.tier}`, 'mechanic/free', 'the other admin\'s role kept');
    eq(await p.$eval(`${sel} select[name="role"]`, (e) => e.value), 'mechanic', 'the row shows the role saved');
  });

  await t.step('audit-filter-and-pages', async () => {
    await t.goto('/admin');
    await p.select('select[name="action"]', 'ADMIN_USER_UPDATED');
    await p.type('input[name="user"]', admin.email);
    await t.clickAndWaitForNavigation('#audit ~ form button[type="submit"], form[action="/admin#audit"] button[type="submit"]');
    const rows = await p.$$eval('#audit-table tbody tr[data-audit]', (trs) => trs.map((tr) => tr.innerText));
    eq(rows.length, 2, 'filtered audit rows (the two saves of change-user)');
    assert(rows.every((r) => r.includes('ADMIN_USER_UPDATED')), 'filtered rows: ' + rows);
    // details start collapsed and open on a click
    assert(!(await p.$eval('#audit-table details', (d) => d.open)), 'details open by default');
    await p.click('#audit-table details summary');
    assert(await p.$eval('#audit-table details', (d) => d.open), 'details do not expand');
    // the unfiltered log: one page fits one screen, Older goes further back
    await t.goto('/admin#audit');
    const first = await p.$$eval('#audit-table tbody tr[data-audit]', (trs) => trs.map((tr) => Number(tr.getAttribute('data-audit'))));
    eq(first.length, 15, 'rows on a page');
    const h = await p.$eval('#audit-table', (el) => el.getBoundingClientRect().height);
    assert(h < 900, `the audit page is ${h}px tall`);
    await t.clickAndWaitForNavigation('a[data-older]');
    const next = await p.$$eval('#audit-table tbody tr[data-audit]', (trs) => trs.map((tr) => Number(tr.getAttribute('data-audit'))));
    assert(next.length > 0 && next[0] < first[first.length - 1], 'Older shows older rows');
    // today's date range keeps today's rows
    const today = new Date().toISOString().slice(0, 10);
    await t.goto(`/admin?from=${today}&to=${today}&action=ADMIN_PAYOUT#audit`);
    assert((await t.text('#audit-table')).includes('ADMIN_PAYOUT'), 'date filter lost today\'s payout');
    await t.goto('/admin?from=2000-01-01&to=2000-01-02#audit');
    assert((await t.text('#audit-table')).includes('Nothing matches these filters.'), 'date filter in 2000');
  });
}

module.exports = [{ name: 'admin-console', run: adminConsole }];
