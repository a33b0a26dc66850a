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
      if (res.status === 409 || res.status === 404) {
        var cell = el.parentNode;
        cell.textContent = 'Taken';
        cell.classList.add('muted');
      } else {
        el.disabled = false;
      }
    });
  };
})();
