/*
 * creditdesk Live Help page: Book spends one hour on a slot, Cancel gives it
 * back; either way the page reloads to show the new hours and seats.
 */
(function () {
  'use strict';
  var cd = window.creditdesk;
  var msg = document.getElementById('live-help-msg');

  /* The message sits at the top of a long page: it is brought into view. */
  function say(text, isError) {
    msg.textContent = text;
    msg.classList.toggle('error', !!isError);
    if (msg.scrollIntoView) msg.scrollIntoView({ block: 'nearest' });
  }

  function act(el, url, done) {
    el.disabled = true;
    say('Working…', false);
    cd.post(url, {}).then(function (res) {
      /* a cancelled hour a refund was owed goes to it, not back to the balance */
      if (res.ok && res.data && res.data.hourReturned === false) done = 'refunded';
      if (res.ok) { window.location = '/live-help?done=' + done; return; }
      el.disabled = false;
      say(cd.errorText(res), true);
    });
  }

  cd.actions['book-live-help'] = function (el) {
    act(el, '/api/live-help-hour/' + encodeURIComponent(el.getAttribute('data-slot')) + '/book', 'booked');
  };
  cd.actions['cancel-live-help'] = function (el) {
    act(el, '/api/live-help-hour/' + encodeURIComponent(el.getAttribute('data-slot')) + '/cancel', 'cancelled');
  };
})();
