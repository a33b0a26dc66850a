/*
 * creditdesk bookings lists: Cancel (the customer, with the refund that
 * cancelling now would give, as GET /api/bookings/{id}/cancellation quotes
 * it, on the button; a booking the quote says cannot be cancelled loses its
 * button) and Complete (the expert, once the session has started); the
 * page reloads to show the new state.
 */
(function () {
  'use strict';
  var cd = window.creditdesk;
  var msg = document.getElementById('bookings-msg');

  function act(el, what) {
    el.disabled = true;
    cd.post('/api/bookings/' + encodeURIComponent(el.getAttribute('data-booking')) + '/' + what, {})
      .then(function (res) {
        if (res.ok) { window.location.reload(); return; }
        el.disabled = false;
        if (msg) { msg.textContent = cd.errorText(res); msg.classList.add('error'); }
      });
  }

  cd.actions['cancel-booking'] = function (el) { act(el, 'cancel'); };

  /* Each Cancel button shows the refund the policy gives right now. */
  function quote(el) {
    cd.getJSON('/api/bookings/' + encodeURIComponent(el.getAttribute('data-booking')) + '/cancellation')
      .then(function (res) {
        if (!res.ok || !res.data) return;
        if (!res.data.cancellable) { el.remove(); return; }
        el.textContent = 'Cancel (refund ' + cd.money(res.data.refundCents) + ')';
        el.setAttribute('data-refund-cents', String(res.data.refundCents));
      });
  }
  Array.prototype.forEach.call(document.querySelectorAll('button[data-action="cancel-booking"]'), quote);
  cd.actions['complete-booking'] = function (el) { act(el, 'complete'); };
})();
