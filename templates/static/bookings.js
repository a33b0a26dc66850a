/*
 * creditdesk bookings lists: Cancel (the customer, with the refund that
 * cancelling now would give, as GET /api/bookings/{id}/cancellation quotes
 * it, on the button; a booking the quote says cannot be cancelled loses its
 * button; a paid one asks to be pressed again to confirm, and the page says
 * what was refunded) and Complete (the expert, once the session has
 * started); the page reloads to show the new state.  On an expert's dashboard, Set up
 * payouts / Continue onboarding opens Stripe's hosted onboarding (the URL
 * POST /api/experts/me/connect answers), and the state is asked for again
 * when the expert comes back.
 */
(function () {
  'use strict';
  var cd = window.creditdesk;
  var msg = document.getElementById('bookings-msg');
  var DONE = 'creditdesk-bookings-done';	/* what was done, said after the reload */

  if (msg && window.sessionStorage && sessionStorage.getItem(DONE)) {
    msg.textContent = sessionStorage.getItem(DONE);
    sessionStorage.removeItem(DONE);
  }

  function act(el, what, done) {
    el.disabled = true;
    cd.post('/api/bookings/' + encodeURIComponent(el.getAttribute('data-booking')) + '/' + what, {})
      .then(function (res) {
        if (res.ok) {
          if (done && window.sessionStorage) sessionStorage.setItem(DONE, done);
          window.location.reload();
          return;
        }
        el.disabled = false;
        if (msg) { msg.textContent = cd.errorText(res); msg.classList.add('error'); }
      });
  }

  /* A paid booking's money moves: the first press asks, the second cancels. */
  cd.actions['cancel-booking'] = function (el) {
    var id = el.getAttribute('data-booking');
    var refund = el.getAttribute('data-refund-cents');
    if (refund === null) { act(el, 'cancel', 'Booking #' + id + ' is cancelled.'); return; }
    if (el.getAttribute('data-confirm') !== '1') {
      el.setAttribute('data-confirm', '1');
      el.textContent = Number(refund) > 0 ? 'Confirm: cancel and refund ' + cd.money(Number(refund)) :
        'Confirm: cancel with no refund';
      return;
    }
    act(el, 'cancel', 'Booking #' + id + ' is cancelled' + (Number(refund) > 0 ?
      '; ' + cd.money(Number(refund)) + ' goes back to the card that paid.' : '.'));
  };

  /* Each Cancel button shows the refund the policy gives right now. */
  function quote(el) {
    cd.getJSON('/api/bookings/' + encodeURIComponent(el.getAttribute('data-booking')) + '/cancellation')
      .then(function (res) {
        if (!res.ok || !res.data) return;
        if (!res.data.cancellable) { el.remove(); return; }
        if (res.data.tier === 'unpaid') return;	/* a hold: nothing to refund */
        el.textContent = 'Cancel (refund ' + cd.money(res.data.refundCents) + ')';
        el.setAttribute('data-refund-cents', String(res.data.refundCents));
      });
  }
  Array.prototype.forEach.call(document.querySelectorAll('button[data-action="cancel-booking"]'), quote);

  /* Payouts (an expert's dashboard): Stripe's hosted onboarding, then its state. */
  cd.actions['connect-payouts'] = function (el) {
    cd.run(el, '/api/experts/me/connect', {}, function (res) {
      if (/^https?:\/\//i.test(res.data && res.data.url)) window.location.assign(res.data.url);
    });
  };
  function showConnect(box, state) {
    if (!state || !state.onboarded) return;
    box.querySelector('[data-connect-status]').textContent = 'Payouts through Stripe: active';
    var b = box.querySelector('button[data-action="connect-payouts"]');
    if (b) b.parentNode.remove();
  }
  var payouts = document.getElementById('payouts');
  // Back from onboarding (or part way through): ask for the account's state now.
  if (payouts && payouts.getAttribute('data-has-account') === '1' &&
      payouts.querySelector('button[data-action="connect-payouts"]')) {
    cd.getJSON('/api/experts/me/connect').then(function (res) {
      if (res.ok) showConnect(payouts, res.data);
    });
  }
  cd.actions['complete-booking'] = function (el) { act(el, 'complete'); };

  /* An expert's cancellation policy: the late refund is shown as a percentage, sent in basis points. */
  var policy = document.querySelector('form[data-form="expert-policy"]');
  if (policy) policy.elements.latePercent.value = String(Number(policy.getAttribute('data-late-bps')) / 100);
  cd.forms['expert-policy'] = function (form, button) {
    var hours = Number(form.elements.fullRefundHours.value);
    var bps = Math.round(Number(form.elements.latePercent.value) * 100);
    cd.run(button, '/api/experts/me/policy', { fullRefundHours: hours, lateRefundBps: bps },
      function (res) {
        var p = res.data.policy;
        cd.say(button, 'Saved: bookings made from now on refund in full up to ' + p.fullRefundHours +
          ' hours before, then ' + (p.lateRefundBps / 100) + '% of the price.', false);
      });
  };
})();
