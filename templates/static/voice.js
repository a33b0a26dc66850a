/*
 * creditdesk Voice AI Therapy: Start opens a session for the minutes left,
 * a timer counts them down, End (or the timer reaching zero) closes it and
 * the server deducts the whole minutes used.  An open session found on
 * loading the page resumes its timer from when it started.
 */
(function () {
  'use strict';
  var cd = window.creditdesk;
  var box = document.getElementById('voice-session');
  if (!box) return;
  var timer = box.querySelector('[data-timer]');
  var startBtn = box.querySelector('[data-action="voice-start"]');
  var endBtn = box.querySelector('[data-action="voice-end"]');
  var msg = document.getElementById('voice-msg');
  var running = null;	/* {id, startedAt, limitSeconds, tick} */

  function say(text, isError) {
    msg.textContent = text;
    msg.classList.toggle('error', !!isError);
  }

  function clock(seconds) {
    var s = Math.max(0, Math.ceil(seconds));
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  function elapsed() { return (Date.now() - running.startedAt) / 1000; }

  function show() {
    var left = running.limitSeconds - elapsed();
    timer.textContent = clock(left) + ' left in this session';
    if (left <= 0) end(true);
  }

  function begin(id, startedAt, minutes) {
    running = { id: id, startedAt: startedAt, limitSeconds: minutes * 60 };
    timer.hidden = false;
    if (startBtn) startBtn.hidden = true;
    endBtn.hidden = false;
    endBtn.disabled = false;
    show();
    running.tick = setInterval(show, 250);
  }

  function end(outOfMinutes) {
    if (!running || running.ending) return;
    running.ending = true;
    clearInterval(running.tick);
    var used = Math.min(running.limitSeconds, Math.ceil(elapsed()));
    endBtn.disabled = true;
    cd.post('/api/voice-therapy/end', { sessionId: running.id, secondsUsed: used }).then(function (res) {
      if (!res.ok) {
        running.ending = false;
        endBtn.disabled = false;
        say(cd.errorText(res), true);
        return;
      }
      var d = res.data;
      running = null;
      timer.hidden = true;
      endBtn.hidden = true;
      var left = box.querySelector('[data-minutes-left]');
      if (left) left.textContent = String(d.remainingMinutes);
      var word = box.querySelector('[data-minutes-word]');
      if (word) word.textContent = d.remainingMinutes === 1 ? 'minute' : 'minutes';
      say((outOfMinutes ? 'Your minutes ran out, so the session ended. ' : 'Session ended. ') +
        cd.count(d.minutesDeducted, 'minute') + ' used, ' + d.remainingMinutes + ' left.', false);
      if (startBtn && d.remainingMinutes > 0) startBtn.hidden = false;
    });
  }

  cd.actions['voice-start'] = function (el) {
    el.disabled = true;
    say('Starting…', false);
    cd.post('/api/voice-therapy/start', {}).then(function (res) {
      el.disabled = false;
      /* opened in another tab: the page again shows it, with its timer and End */
      if (res.status === 409 && res.data && res.data.error &&
          res.data.error.code === 'session_already_open') { window.location.reload(); return; }
      if (!res.ok) { say(cd.errorText(res), true); return; }
      say('Session started. Speak whenever you are ready.', false);
      begin(res.data.sessionId, Date.now(), res.data.availableMinutes);
    });
  };
  cd.actions['voice-end'] = function () { end(false); };

  var open = box.getAttribute('data-session');
  if (open) {
    var started = Date.parse(box.getAttribute('data-started'));
    begin(parseInt(open, 10), isNaN(started) ? Date.now() : started,
      parseInt(box.getAttribute('data-available'), 10) || 0);
  }
})();
