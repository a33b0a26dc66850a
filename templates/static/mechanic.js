/*
 * creditdesk mechanic queue: Take joins the consultation and opens its room;
 * if another mechanic took it first, the row says so and its button goes.
 */
(function () {
  'use strict';
  var cd = window.creditdesk;
  var msg = document.getElementById('queue-msg');

  cd.actions['take-session'] = function (el) {
    var id = el.getAttribute('data-session');
    el.disabled = true;
    msg.classList.remove('error');
    msg.textContent = 'Taking consultation #' + id + '…';
    cd.post('/api/sessions/' + encodeURIComponent(id) + '/take', {}).then(function (res) {
      if (res.ok && res.data && cd.localPath(res.data.route)) {
        window.location = res.data.route;
        return;
      }
      msg.textContent = cd.errorText(res);
      msg.classList.add('error');
      /* the row says what the refusal was: taken by another, closed by a refund, or gone */
      var code = res.data && res.data.error ? res.data.error.code : '';
      var state = { already_taken: 'Taken', session_closed: 'Closed', session_not_found: 'Gone',
        own_consultation: 'Your own' }[code];
      if (state) {
        var cell = el.parentNode;
        cell.textContent = state;
        cell.classList.add('muted');
      } else {
        el.disabled = false;
      }
    });
  };
})();
