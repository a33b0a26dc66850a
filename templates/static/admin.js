/*
 * creditdesk admin console: fills the metrics and pending payouts from the
 * admin API, and posts Mark paid, Assign and the user role/tier changes.
 * Every value is put into the page as text, never as HTML.
 */
(function () {
  'use strict';
  var cd = window.creditdesk;

  var money = window.creditdesk.money;
  function percent(bps) { return (bps / 100).toFixed(1) + '%'; }

  function getJson(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (res) {
        return res.json().then(function (data) { return { ok: res.ok, status: res.status, data: data }; },
          function () { return { ok: false, status: res.status, data: null }; });
      }, function () { return { ok: false, status: 0, data: null }; });
  }

  function setMetric(name, text) {
    var el = document.querySelector('[data-metric="' + name + '"]');
    if (el) el.textContent = text;
  }

  function loadMetrics() {
    getJson('/api/admin/metrics').then(function (res) {
      if (!res.ok) { setMetric('revenue', '–'); return; }
      var m = res.data;
      setMetric('revenue', money(m.platformRevenueCents));
      setMetric('bookingRate', percent(m.bookings.rateBps));
      setMetric('paymentRate', percent(m.payments.successRateBps));
      setMetric('pending', money(m.pendingPayoutsCents));
    });
  }

  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  /*
   * The experts owed the most come first; past PAYOUTS_SHOWN of them, one
   * button shows the rest (and the list stays whole once shown).
   */
  var PAYOUTS_SHOWN = 20, allPayouts = false;

  function payoutRow(body, e) {
    var tr = body.insertRow();
    tr.setAttribute('data-expert', e.expertId);
    cell(tr, e.name);
    cell(tr, String(e.bookingIds.length), 'num');
    cell(tr, money(e.amountCents), 'num');
    if (e.amountCents <= 0) {
      /* bookings refunded after being paid out: the next payout takes it back */
      cell(tr, e.amountCents < 0 ? 'Owes back ' + money(-e.amountCents) : 'Nothing to pay',
        'num muted');
      return;
    }
    var b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Mark paid';
    b.setAttribute('data-action', 'mark-paid');
    b.setAttribute('data-expert', e.expertId);
    b.setAttribute('data-amount', money(e.amountCents));
    b.setAttribute('data-cents', e.amountCents);
    b.setAttribute('data-name', e.name);
    cell(tr, '', 'num').appendChild(b);
  }

  function loadPayouts() {
    var body = document.querySelector('#payouts-table tbody');
    getJson('/api/admin/payouts/pending').then(function (res) {
      body.textContent = '';
      var experts = res.ok && res.data ? res.data.experts : null;
      if (!experts) {
        var tr0 = body.insertRow();
        cell(tr0, 'The pending payouts could not be loaded. Reload the page to try again.', 'muted').colSpan = 4;
        return;
      }
      if (experts.length === 0) {
        var tr1 = body.insertRow();
        cell(tr1, 'No expert is owed anything.', 'muted').colSpan = 4;
        return;
      }
      experts.sort(function (a, b) {
        return b.amountCents - a.amountCents || a.name.localeCompare(b.name) || a.expertId - b.expertId;
      });
      var shown = allPayouts ? experts.length : Math.min(experts.length, PAYOUTS_SHOWN);
      experts.slice(0, shown).forEach(function (e) { payoutRow(body, e); });
      if (shown < experts.length) {
        var more = document.createElement('button');
        more.type = 'button';
        more.className = 'secondary-button';
        more.textContent = 'Show all ' + experts.length + ' experts';
        more.setAttribute('data-action', 'show-all-payouts');
        var tr2 = body.insertRow();
        tr2.setAttribute('data-more', '');
        var td = cell(tr2, '');
        td.colSpan = 4;
        td.appendChild(more);
      }
    });
  }

  cd.actions['show-all-payouts'] = function () {
    allPayouts = true;
    loadPayouts();
  };

  function report(id, text, isError) {
    var m = document.getElementById(id);
    m.textContent = text;
    m.classList.toggle('error', !!isError);
  }

  cd.actions['mark-paid'] = function (el) {
    el.disabled = true;
    /* the amount shown is the amount recorded, or the server refuses */
    cd.post('/api/admin/payouts', { expertId: parseInt(el.getAttribute('data-expert'), 10),
      amountCents: parseInt(el.getAttribute('data-cents'), 10) })
      .then(function (res) {
        if (!res.ok) { el.disabled = false; report('payouts-msg', cd.errorText(res), true); return; }
        report('payouts-msg', 'Marked paid: ' + money(res.data.payout.amountCents) + ' to ' +
          el.getAttribute('data-name') + '.', false);
        loadPayouts();
        loadMetrics();
      });
  };

  cd.actions['assign-mechanic'] = function (el) {
    var id = el.getAttribute('data-session');
    var select = document.querySelector('select[data-mechanic-for="' + id + '"]');
    if (!select || !select.value) { report('assign-msg', 'There is no mechanic to assign yet.', true); return; }
    var name = select.options[select.selectedIndex].getAttribute('data-name');
    el.disabled = true;
    cd.post('/api/admin/sessions/' + encodeURIComponent(id) + '/participants',
      { userId: parseInt(select.value, 10), role: 'mechanic' }).then(function (res) {
      if (!res.ok) { el.disabled = false; report('assign-msg', cd.errorText(res), true); return; }
      report('assign-msg', 'Consultation #' + id + ' assigned to ' + name + '.', false);
      var row = el.closest('tr');
      row.parentNode.removeChild(row);
    });
  };

  /* The value a select was shown with (or last saved as). */
  function shown(select) {
    for (var i = 0; i < select.options.length; i++)
      if (select.options[i].defaultSelected) return select.options[i].value;
    return null;
  }
  function setShown(select, value) {
    select.value = value;
    for (var i = 0; i < select.options.length; i++)
      select.options[i].defaultSelected = select.options[i].value === value;
  }

  /*
   * Only what this admin changed is sent, so that a change another admin
   * made meanwhile to the other field is kept; the row then shows the user
   * as the server has them.
   */
  cd.actions['save-user'] = function (el) {
    var row = el.closest('tr');
    var role = row.querySelector('select[name="role"]'), tier = row.querySelector('select[name="tier"]');
    var body = {};
    if (role.value !== shown(role)) body.role = role.value;
    if (tier.value !== shown(tier)) body.tier = tier.value;
    if (!body.role && !body.tier) { report('users-msg', 'Nothing to save: choose another role or tier first.', false); return; }
    el.disabled = true;
    cd.post('/api/admin/users/' + encodeURIComponent(el.getAttribute('data-user')), body)
      .then(function (res) {
        el.disabled = false;
        if (!res.ok) {
          /* refused: the row shows the user as they still are */
          role.value = shown(role);
          tier.value = shown(tier);
          report('users-msg', cd.errorText(res), true);
          return;
        }
        var u = res.data.user;
        setShown(role, u.role);
        setShown(tier, u.tier);
        report('users-msg', 'Saved: ' + u.email + ' is now ' + u.role + ' on the ' + u.tier + ' tier.', false);
      });
  };

  /* From and To are the viewer's days, as the rows' times are: their zone goes along. */
  /* the zone's offset on the From day (daylight saving moves it), else today's */
  var tz = document.querySelector('[data-tz]');
  function zoneOf(day) {
    var d = day ? new Date(day + 'T00:00') : new Date();
    return String(-(isNaN(d.getTime()) ? new Date() : d).getTimezoneOffset());
  }
  if (tz) {
    tz.value = zoneOf('');
    tz.form.addEventListener('submit', function () {
      tz.value = zoneOf(tz.form.elements.from.value || tz.form.elements.to.value);
    });
  }

  /* The action filter shows what the page was filtered by. */
  var sel = document.querySelector('[data-selected-action]');
  var actionSelect = document.querySelector('select[name="action"]');
  if (sel && actionSelect) actionSelect.value = sel.getAttribute('data-selected-action');

  loadMetrics();
  loadPayouts();
})();
