/*
 * creditdesk: what the pages do beyond plain links.  Every action posts
 * JSON to the family that owns it, with the session's CSRF token from
 * <meta name="csrf-token">, and either follows the URL it gets back or
 * writes the outcome next to the button.  Elements opt in with
 * data-action (buttons) and data-form (forms); nothing else is touched.
 */
(function () {
  'use strict';

  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute('content') : '';
  }

  /* The same rule as local_path_ok() in C: one leading slash, no "//" or "/\". */
  function localPath(p) {
    return typeof p === 'string' && p.charAt(0) === '/' &&
      p.charAt(1) !== '/' && p.charAt(1) !== '\\';
  }

  function webUrl(u) {
    return typeof u === 'string' && /^https?:\/\//i.test(u);
  }

  /* Resolves to {ok, status, data}; never rejects.  extraHeaders: optional. */
  function post(url, body, extraHeaders) {
    var headers = Object.assign({ 'Content-Type': 'application/json', 'Accept': 'application/json' },
      extraHeaders);
    var token = csrfToken();
    if (token) headers['X-CSRF-Token'] = token;
    return fetch(url, {
      method: 'POST', credentials: 'same-origin', headers: headers,
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: res.ok, status: res.status, data: data };
      });
    }, function () {
      return { ok: false, status: 0, data: null };
    });
  }

  /* A random Idempotency-Key: a request sent again with it is answered with what it made. */
  function newKey() {
    var a = new Uint8Array(16);
    window.crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (x) { return (x + 256).toString(16).slice(1); }).join('');
  }

  /* post with an Idempotency-Key, sent once more after a second if no
     answer came or the server was busy (503): the server answers the
     retry with what the first one made, if it did. */
  function postKeyed(url, body, key) {
    var headers = { 'Idempotency-Key': key };
    return post(url, body, headers).then(function (res) {
      if (res.status !== 0 && res.status !== 503) return res;
      return new Promise(function (ok) { setTimeout(ok, 1000); }).then(function () {
        return post(url, body, headers);
      });
    });
  }

  /* GET a JSON API: resolves to {ok, status, data} like post. */
  function getJSON(url) {
    return fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (res) {
        return res.json().then(function (data) {
          return { ok: res.ok, status: res.status, data: data };
        }, function () { return { ok: res.ok, status: res.status, data: null }; });
      }, function () { return { ok: false, status: 0, data: null }; });
  }

  /* Integer cents as dollars: 123456 -> "$1,234.56". */
  function money(cents) {
    var c = Math.abs(cents), s = String(Math.floor(c / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    return (cents < 0 ? '-$' : '$') + s + '.' + String(c % 100).padStart(2, '0');
  }

  /* "1 minute", "3 minutes": a count with its word. */
  function count(n, word) {
    return n + ' ' + word + (n === 1 ? '' : 's');
  }

  /* A sentence for a failed request: the server's own message, or what the
     status means to a person (never the number itself). */
  function errorText(res) {
    if (res.data && res.data.error && res.data.error.message)
      return res.data.error.message;
    if (res.status === 0)
      return 'Could not reach the server. Check your connection and try again.';
    if (res.status === 401)
      return 'Your session has ended. Please sign in again.';
    if (res.status === 403)
      return 'Your account cannot do this.';
    if (res.status === 429)
      return 'Too many attempts. Please wait a minute and try again.';
    if (res.status >= 500)
      return 'The service is having trouble right now. Please try again in a moment.';
    return 'That did not work. Please check and try again.';
  }

  /* Writes text into the nearest [data-msg] of the card or form around el. */
  function say(el, text, isError) {
    var box = el.closest('form, .card') || document;
    var m = box.querySelector('[data-msg]');
    if (!m) return;
    m.textContent = text;
    m.classList.toggle('error', !!isError);
  }

  /* Runs one request with el disabled; done(res) handles success. */
  /* failed (optional) says what a refusal means where the server's sentence would not. */
  function run(el, url, body, done, failed) {
    el.disabled = true;
    say(el, 'Working…', false);
    post(url, body).then(function (res) {
      el.disabled = false;
      if (!res.ok) { say(el, (failed && failed(res)) || errorText(res), true); return; }
      done(res);
    });
  }

  function goToCheckout(el) {
    return function (res) {
      if (res.data && webUrl(res.data.url)) {
        say(el, 'Redirecting to checkout…', false);
        window.location = res.data.url;
      } else {
        say(el, 'Checkout could not be started. Please try again.', true);
      }
    };
  }

  /* Signs out; a page whose CSRF token is stale (another tab signed in
     again, or changed the password) asks for the current one and tries
     once more, so a click on Sign out never leaves the browser signed in
     without saying so. */
  function signOut() {
    return post('/api/auth/logout', {}).then(function (res) {
      if (res.status !== 403) return res;
      return getJSON('/api/me').then(function (me) {
        if (!me.ok || !me.data || !me.data.csrfToken) return me;
        var m = document.querySelector('meta[name="csrf-token"]');
        if (m) m.setAttribute('content', me.data.csrfToken);
        return post('/api/auth/logout', {});
      });
    });
  }

  var actions = {
    'buy-live-help': function (el) {
      var select = document.getElementById('live-help-hours');
      var quantity = parseInt(select ? select.value : '1', 10);
      run(el, '/api/buy/live_help', { quantity: quantity }, goToCheckout(el));
    },
    'buy-voice': function (el) {
      run(el, '/api/stripe/voice-therapy', {}, goToCheckout(el));
    },
    'sign-out': function (el) {
      el.disabled = true;
      signOut().then(function (res) {
        if (res.ok || res.status === 401) { window.location = '/'; return; }
        el.disabled = false;
        window.alert('You are still signed in: ' + errorText(res));
      });
    },
    'sign-out-everywhere': function (el) {
      run(el, '/api/auth/logout-all', {}, function () { window.location = '/login'; });
    }
  };

  function fieldsOf(form) {
    var out = {};
    Array.prototype.forEach.call(form.elements, function (f) {
      if (f.name) out[f.name] = f.type === 'checkbox' ? f.checked : f.value;
    });
    return out;
  }

  function afterSignIn(form) {
    var to = form.getAttribute('data-redirect');
    window.location = localPath(to) ? to : '/dashboard';
  }

  var forms = {
    /* A consultation plan: the checkout starts on POST, never on the GET. */
    plan: function (form, button) {
      run(button, '/api/checkout', { plan: fieldsOf(form).plan }, goToCheckout(button));
    },
    login: function (form, button) {
      var v = fieldsOf(form);
      run(button, '/api/auth/login',
        { email: v.email, password: v.password, remember: v.remember === true },
        function () { afterSignIn(form); });
    },
    /* The session is replaced on success, so the page takes the new CSRF token. */
    password: function (form, button) {
      var v = fieldsOf(form);
      if (v.newPassword !== v.confirmPassword) {
        say(button, 'The two new passwords are not the same.', true);
        return;
      }
      if (v.newPassword === v.currentPassword) {
        say(button, 'The new password is the one you have now: choose another.', true);
        return;
      }
      run(button, '/api/auth/password',
        { currentPassword: v.currentPassword, newPassword: v.newPassword },
        function (res) {
          var m = document.querySelector('meta[name="csrf-token"]');
          if (m && res.data && res.data.csrfToken) m.setAttribute('content', res.data.csrfToken);
          form.reset();
          say(button, 'Password changed. Every other device is signed out.', false);
        });
    },
    /* Registering never signs in by itself (its answer is the same whether
       the address was new or not), so a sign-in follows with the same pair;
       refused, the address already had an account with another password. */
    register: function (form, button) {
      var v = fieldsOf(form);
      run(button, '/api/auth/register',
        { email: v.email, password: v.password, name: v.name },
        function () {
          run(button, '/api/auth/login', { email: v.email, password: v.password },
            function () { afterSignIn(form); },
            function (res) {
              return res.status === 401 &&
                'This email already has an account. Sign in with its password instead.';
            });
        });
    }
  };

  /* For the page scripts (loaded with defer, so after this file): they add
     their own actions and forms and reuse the request helpers. */
  window.creditdesk = {
    post: post, postKeyed: postKeyed, newKey: newKey, getJSON: getJSON, money: money, count: count,
    errorText: errorText, say: say, run: run,
    localPath: localPath, actions: actions, forms: forms
  };

  /*
   * <time datetime="…Z"> elements show the moment in the viewer's time zone;
   * data-show="time" ones only its time (a heading names the day).
   */
  function localTimes() {
    var fmt, timeOnly;
    try {
      fmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', year: 'numeric',
        month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
      timeOnly = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit',
        timeZoneName: 'short' });
    } catch (e) { return; }
    Array.prototype.forEach.call(document.querySelectorAll('time[datetime]'), function (t) {
      var d = new Date(t.getAttribute('datetime'));
      if (!isNaN(d.getTime()))
        t.textContent = (t.getAttribute('data-show') === 'time' ? timeOnly : fmt).format(d);
    });
  }
  localTimes();
  window.creditdesk.localTimes = localTimes;

  /* Each cell of a "stack" table is named by its column's heading (app.css). */
  Array.prototype.forEach.call(document.querySelectorAll('table.stack'), function (table) {
    var heads = Array.prototype.map.call(table.querySelectorAll('thead th'), function (th) {
      return th.textContent.trim();
    });
    Array.prototype.forEach.call(table.querySelectorAll('tbody tr'), function (tr) {
      if (tr.cells.length !== heads.length) return;   /* "No bookings yet." */
      Array.prototype.forEach.call(tr.cells, function (td, i) {
        if (heads[i]) td.setAttribute('data-label', heads[i]);
      });
    });
  });

  document.addEventListener('click', function (ev) {
    var el = ev.target.closest('[data-action]');
    if (!el || !actions[el.getAttribute('data-action')]) return;
    ev.preventDefault();
    actions[el.getAttribute('data-action')](el);
  });

  document.addEventListener('submit', function (ev) {
    var form = ev.target.closest('form[data-form]');
    if (!form || !forms[form.getAttribute('data-form')]) return;
    ev.preventDefault();
    var button = form.querySelector('button[type="submit"]') || form;
    forms[form.getAttribute('data-form')](form, button);
  });
})();
