/*
 * creditdesk Live Help page: Book spends one hour on a slot, Cancel gives it
 * back; either way the page reloads to show the new hours and seats.
 */
(function () {
  'use strict';
  var cd = window.creditdesk;
  var msg = document.getElementById('live-help-msg');

  function act(el, url, done) {
    el.disabled = true;
    msg.classList.remove('error');
    msg.textContent = 'Working…';
    cd.post(url, {}).then(function (res) {
      /* a cancelled hour a refund was owed goes to it, not back to the balance */
      if (res.ok && res.data && res.data.hourReturned === false) done = 'refunded';
      if (res.ok) { window.location = '/live-help?done=' + done; return; }
      el.disabled = false;
      msg.textContent = cd.errorText(res);
      msg.classList.add('error');
    });
  }

  cd.actions['book-live-help'] = function (el) {
    act(el, '/api/live-help-hour/' + encodeURIComponent(el.getAttribute('data-slot')) + '/book', 'booked');
  };
  cd.actions['cancel-live-help'] = function (el) {
    act(el, '/api/live-help-hour/' + encodeURIComponent(el.getAttribute('data-slot')) + '/cancel', 'cancelled');
  };
})();
