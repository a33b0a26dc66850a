/*
 * creditdesk chat room (templates/chat.mustache).
 *
 * New messages arrive by push: an EventSource on GET /api/sessions/{id}/stream
 * (nginx holds it, so a waiting browser never holds a server process) gets
 * each message once it has been saved, as {after, message}: the messages
 * API's JSON for it and the id of the message before it.  Whenever the
 * stream (re)connects, the page catches up with GET …/messages?after=<last
 * id shown>; a browser without EventSource, or whose stream the server
 * refuses, polls that about once a second instead.  A pushed message that
 * follows one this page has not seen (its push was lost) makes it fetch the
 * latest page of messages, which holds the missed one; and every two
 * minutes a page with an open stream catches up anyway, so a lost last
 * message shows even when none follows it.  nginx pings the stream every
 * 25 s; one silent for a minute (its machine hung, or a connection that
 * died without closing) is opened again, which catches up on what it
 * missed.  The server lists
 * a session's messages in commit order (its position, seq; not always id
 * order: several database nodes hand out ids), so "everything after the
 * last message I have" never skips one.
 *
 * A message is shown once (by id) and in (seq, id) order, whichever way it
 * came.  Sending posts JSON with the session's CSRF token and an
 * Idempotency-Key kept with the text until it is sent, so sending it again
 * after no answer (or a 503) posts it once; with a stream the sent message
 * is shown from the answer, otherwise the next poll brings it.  Messages are
 * added with textContent only.
 */
(function () {
  'use strict';

  var cd = window.creditdesk;	/* app.js */
  var POLL_MS = 1000;
  var WAITING_MS = 3000;
  var MAX_BACKOFF_MS = 10000;
  var STREAM_OPEN_MS = 5000;
  /* Longer than two of nginx's pings; a test sets it shorter. */
  var SILENCE_MS = window.creditdeskStreamSilenceMs || 60000;
  /* One request per open room every two minutes; a test sets it shorter. */
  var CATCH_UP_MS = window.creditdeskCatchUpMs || 120000;

  var room = document.getElementById('chat');
  if (!room) return;
  var sessionId = room.getAttribute('data-session');
  var lastId = parseInt(room.getAttribute('data-last-id'), 10) || 0;
  var list = room.querySelector('[data-messages]');
  var seen = {};   /* ids shown, so an overlapping poll adds nothing twice */
  Array.prototype.forEach.call(list.querySelectorAll('[data-id]'), function (li) {
    seen[li.getAttribute('data-id')] = true;
  });
  var form = room.querySelector('form[data-chat-form]');
  var meId = room.getAttribute('data-me');
  var base = '/api/sessions/' + encodeURIComponent(sessionId);

  var polling = false;   /* a poll is in flight */
  var again = false;     /* poll once more as soon as it returns */
  var timer = null;
  var backoff = POLL_MS;
  var stopped = false;
  var stream = null;     /* the room's EventSource while it is in use */
  var heard = 0;         /* when the stream last said anything, pings too */

  function say(text, isError) {
    var m = form && form.querySelector('[data-msg]');
    if (!m) return;
    m.textContent = text;
    m.classList.toggle('error', !!isError);
  }


  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  }

  function element(m) {
    var li = document.createElement('li');
    var meta = document.createElement('p');
    var who = document.createElement('strong');
    var when = document.createElement('time');
    var body = document.createElement('p');

    li.className = 'message' + (String(m.userId) === meId ? ' mine' : '');
    li.setAttribute('data-id', String(m.id));
    li.setAttribute('data-seq', String(m.seq));
    meta.className = 'meta';
    who.textContent = m.name;
    when.setAttribute('datetime', m.createdAt);
    when.textContent = m.createdAt;	/* shown in the viewer's zone by localTimes */
    meta.appendChild(who);
    meta.appendChild(document.createTextNode(' '));
    meta.appendChild(when);
    body.className = 'body';
    body.textContent = m.body;
    li.appendChild(meta);
    li.appendChild(body);
    return li;
  }

  /* True if list item li comes before message m in the server's order. */
  function before(li, m) {
    var seq = parseInt(li.getAttribute('data-seq'), 10);
    var id = parseInt(li.getAttribute('data-id'), 10);
    return seq < m.seq || (seq === m.seq && id < m.id);
  }

  /* Inserts m where (seq, id) puts it: nearly always last. */
  function place(m) {
    var li = element(m);
    var items = list.children;
    var i = items.length - 1;
    while (i >= 0 && typeof m.seq === 'number' && !before(items[i], m)) i--;
    list.insertBefore(li, i >= 0 ? items[i].nextSibling : list.firstChild);
  }

  function show(messages) {
    var stick = nearBottom();
    var empty = room.querySelector('[data-empty]');
    var last;
    messages.forEach(function (m) {
      if (typeof m.id !== 'number' || seen[m.id]) return;
      seen[m.id] = true;
      place(m);
    });
    last = list.lastElementChild;
    if (last) lastId = parseInt(last.getAttribute('data-id'), 10) || lastId;
    if (cd.localTimes) cd.localTimes();	/* the viewer's zone, as every page */
    if (list.children.length && empty) empty.parentNode.removeChild(empty);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function schedule(ms) {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  function stop(text) {
    stopped = true;
    clearTimeout(timer);
    if (stream) { stream.close(); stream = null; }
    say(text, true);
    if (form) form.querySelector('button[type="submit"]').disabled = true;
  }

  function poll() {
    if (stopped) return;
    if (polling) { again = true; return; }
    polling = true;
    cd.getJSON(base + '/messages?after=' + lastId).then(function (res) {
      polling = false;
      if (res.status === 401) return stop('You have been signed out. Sign in again to keep chatting.');
      if (res.status === 404) return stop('This consultation is no longer available.');
      if (!res.ok || !res.data || !Array.isArray(res.data.messages)) {
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        return schedule(backoff);
      }
      backoff = POLL_MS;
      show(res.data.messages);
      if (stream && room.getAttribute('data-stream') === 'catching-up')
        room.setAttribute('data-stream', 'open');   /* connected and up to date */
      /* A full page (100) means there may be more: fetch them straight away. */
      if (again || res.data.messages.length >= 100) { again = false; return schedule(0); }
      if (!stream) schedule(POLL_MS);   /* with a stream, this was a catch-up */
    });
  }

  /*
   * A push named a message before it that never came.  The page may have
   * shown later ones already (its own, from the send's answer), so "after
   * the last one shown" could skip it: the latest page of messages holds it.
   */
  function fillGap() {
    cd.getJSON(base + '/messages?latest=1').then(function (res) {
      if (res.ok && res.data && Array.isArray(res.data.messages)) show(res.data.messages);
    });
  }

  /*
   * The room's stream.  Each time it opens (again), catch up on what was
   * sent before or while it was away; the browser reconnects by itself
   * after a network error.  A stream the server refused (signed out, no
   * longer a participant) or that cannot work here is closed, and polling
   * takes over, which also says why when the answer is 401 or 404.
   */
  function listen() {
    if (typeof window.EventSource !== 'function') return false;
    stream = new EventSource(base + '/stream');
    stream.onopen = function () {
      heard = Date.now();
      room.setAttribute('data-stream', 'catching-up');
      poll();
    };
    stream.addEventListener('ping', function () { heard = Date.now(); });
    stream.onmessage = function (ev) {
      var e;
      heard = Date.now();
      try { e = JSON.parse(ev.data); } catch (x) { return; }
      if (!e || typeof e.message !== 'object' || e.message === null) return;
      if (e.after && !seen[e.after]) fillGap();
      show([e.message]);
    };
    stream.onerror = function () {
      room.setAttribute('data-stream', 'reconnecting');
      if (!stream || stream.readyState !== EventSource.CLOSED) return;
      giveUpStream();
    };
    /* A stream that never opens (a proxy that buffers it, say): poll. */
    setTimeout(function () {
      if (stream && !room.hasAttribute('data-stream')) giveUpStream();
    }, STREAM_OPEN_MS);
    return true;
  }

  /* An open stream silent for too long is opened again (see the top). */
  function watchStream() {
    if (stopped) return;
    if (stream && stream.readyState === EventSource.OPEN && Date.now() - heard > SILENCE_MS) {
      stream.close();
      room.setAttribute('data-stream', 'reconnecting');
      listen();
    }
    setTimeout(watchStream, Math.min(SILENCE_MS / 3, 10000));
  }

  /* With an open stream, ask now and then for what a lost push held. */
  function catchUp() {
    if (stopped) return;
    if (stream && stream.readyState === EventSource.OPEN) poll();
    setTimeout(catchUp, CATCH_UP_MS);
  }

  function giveUpStream() {
    if (stream) stream.close();
    stream = null;
    room.setAttribute('data-stream', 'polling');
    schedule(0);
  }

  /* While nobody has joined, look every few seconds for a mechanic. */
  function watchForMechanic() {
    var notice = room.querySelector('[data-waiting]');
    if (!notice || stopped) return;
    cd.getJSON(base).then(function (res) {
      var mech = res.ok && res.data && Array.isArray(res.data.participants) &&
        res.data.participants.filter(function (p) { return p.role === 'mechanic'; })[0];
      if (!mech) { setTimeout(watchForMechanic, WAITING_MS); return; }
      notice.removeAttribute('data-waiting');
      notice.textContent = mech.name + ' (mechanic) has joined the conversation.';
    });
  }

  /* The text being sent and its Idempotency-Key: sending the same text again
     after a failure reuses the key, so a message that did get through shows once. */
  var unsent = { text: null, key: null };

  function send(ev) {
    var box = form.querySelector('textarea[name="body"]');
    var button = form.querySelector('button[type="submit"]');
    var text = box.value;

    ev.preventDefault();
    if (!text.trim()) { say('Write a message first.', true); return; }
    if (unsent.text !== text) unsent = { text: text, key: cd.newKey() };
    button.disabled = true;
    say('Sending…', false);
    cd.postKeyed(base + '/messages', { body: text }, unsent.key).then(function (res) {
      button.disabled = stopped;
      if (res.status !== 201 && res.status !== 200) { say(cd.errorText(res), true); return; }
      unsent = { text: null, key: null };
      say('', false);
      box.value = '';
      box.focus();
      if (stream && res.data && res.data.message) show([res.data.message]);
      else schedule(0);
    });
  }

  list.scrollTop = list.scrollHeight;
  if (form) {
    form.addEventListener('submit', send);
    form.querySelector('textarea').addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        form.requestSubmit ? form.requestSubmit() : send(ev);
      }
    });
  }
  if (listen()) {
    watchStream();
    setTimeout(catchUp, CATCH_UP_MS);
  } else {
    giveUpStream();
  }
  watchForMechanic();
})();
