/*
 * creditdesk bookings lists: Cancel (the customer, with the refund shown on
 * the button) and Complete (the expert, once the session has started); the
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
  cd.actions['complete-booking'] = function (el) { act(el, 'complete'); };
})();
