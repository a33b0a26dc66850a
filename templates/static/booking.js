/*
 * creditdesk expert booking: picking a free time holds it (POST
 * /api/bookings), then Stripe's payment form appears on the page; Pay
 * confirms the PaymentIntent with Stripe.js and then asks the server to
 * check it (POST /api/bookings/{id}/confirm-payment), which schedules the
 * booking.  A declined card shows Stripe's message and the hold stays until
 * it expires, so the customer can try another card.  A hold is asked for
 * with an Idempotency-Key, so that its retry (no answer, or 503) finds the
 * booking it made.  A customer back to a time they hold (Pay now here, or Pay
 * on My bookings) gets its payment form again (POST /api/bookings/{id}/pay).
 * Move on My bookings opens this page with ?move=<id>: the time picked then
 * becomes that booking's (POST /api/bookings/{id}/reschedule).
 */
(function () {
  'use strict';
  var cd = window.creditdesk;
  var box = document.getElementById('booking');
  if (!box || !document.getElementById('slots')) return;
  var msg = document.getElementById('booking-msg');
  var pay = document.getElementById('pay');
  var payBtn = document.getElementById('pay-button');
  var payMsg = document.getElementById('pay-msg');
  var held = null;	/* {booking, stripe, elements} */

  var money = window.creditdesk.money;
  /* The message under a long list of times: brought into view, or it seems nothing happened. */
  function say(el, text, isError) {
    el.textContent = text;
    el.classList.toggle('error', !!isError);
    if (text && el.scrollIntoView) el.scrollIntoView({ block: 'nearest' });
  }
  function localTime(iso) {
    var t = document.createElement('time');
    t.setAttribute('datetime', iso);
    t.textContent = iso;
    return t;
  }
  function stripe() {
    var meta = document.querySelector('meta[name="stripe-key"]');
    return typeof window.Stripe === 'function' && meta ? window.Stripe(meta.getAttribute('content')) : null;
  }

  /* A heading for each day of the times, in the viewer's time zone. */
  function dayHeadings() {
    var slots = document.getElementById('slots'), last = null, day;
    try {
      day = new Intl.DateTimeFormat(undefined, { weekday: 'long', year: 'numeric', month: 'long',
        day: 'numeric' });
    } catch (e) { return; }
    Array.prototype.forEach.call(slots.querySelectorAll('button.slot'), function (b) {
      var name = day.format(new Date(b.getAttribute('data-start')));
      if (name === last) return;
      var h = document.createElement('h3');
      h.className = 'slot-day';
      h.textContent = name;
      slots.insertBefore(h, b);
      last = name;
    });
  }
  dayHeadings();

  function lockSlots(chosen) {
    Array.prototype.forEach.call(document.querySelectorAll('[data-action="pick-time"]'), function (b) {
      b.disabled = true;
      b.classList.toggle('chosen', b === chosen);
    });
  }

  function showPayment(booking, secret, startIso) {
    var s = stripe();
    if (!s) { say(msg, 'The payment form could not be loaded. Reload the page to try again.', true); return; }
    var heldText = pay.querySelector('[data-held]');
    heldText.textContent = 'We are holding ' + booking.durationMinutes + ' minutes with ' +
      box.getAttribute('data-expert-name') + ' from ';
    heldText.appendChild(localTime(startIso));
    heldText.appendChild(document.createTextNode(' for you while you pay.'));
    cd.localTimes();
    var elements = s.elements({ clientSecret: secret });
    var element = elements.create('payment');
    element.mount('#payment-element');
    held = { booking: booking, stripe: s, elements: elements, element: element };
    payBtn.textContent = 'Pay ' + money(booking.priceCents);
    say(payMsg, '', false);
    pay.hidden = false;
    if (pay.scrollIntoView) pay.scrollIntoView({ block: 'start' });
  }

  /* The payment form goes away; its hold's notice (with Pay now) shows again. */
  function closePayment() {
    if (held && held.element && held.element.destroy) held.element.destroy();
    var notice = held && document.querySelector('[data-hold="' + held.booking.id + '"]');
    if (notice) notice.hidden = false;
    held = null;
    pay.hidden = true;
  }

  function booked(startIso) {
    pay.hidden = true;
    say(msg, '', false);
    msg.appendChild(document.createTextNode('Booked: your session with ' +
      box.getAttribute('data-expert-name') + ' on '));
    msg.appendChild(localTime(startIso));
    msg.appendChild(document.createTextNode(' is scheduled. '));
    var a = document.createElement('a');
    a.href = '/dashboard#my-bookings';
    a.textContent = 'See My bookings';
    msg.appendChild(a);
    msg.setAttribute('data-booked', '');
    cd.localTimes();
  }

  /*
   * What the payment came to, as the server has it: scheduled; refunded,
   * because the time was taken once the hold had lapsed; or still going
   * through (a payment method that settles later).
   */
  function paid(booking, startIso) {
    var pays = booking && booking.paymentStatus;
    if (booking && booking.status === 'scheduled') { booked(startIso); return; }
    pay.hidden = true;
    if (pays === 'refunded') {
      say(msg, 'This time was taken by someone else after your hold ran out, so your payment ' +
        'has been refunded in full. Please pick another time.', true);
      unlockSlots();
      return;
    }
    say(msg, 'Your payment is still going through. The booking shows under My bookings ' +
      'as soon as it has.', false);
  }

  function unlockSlots() {
    Array.prototype.forEach.call(document.querySelectorAll('[data-action="pick-time"]'), function (b) {
      if (!b.title) b.disabled = false;
    });
  }

  /* A held booking's answer ({booking, clientSecret}): its payment form, or booked. */
  function answered(res, start) {
    if (!res.ok) {
      say(msg, cd.errorText(res), true);
      unlockSlots();
      return;
    }
    var b = res.data.booking;
    var notice = document.querySelector('[data-hold="' + b.id + '"]');
    if (notice) notice.hidden = true;
    if (!res.data.clientSecret) { booked(start); return; }
    say(msg, '', false);
    showPayment(b, res.data.clientSecret, start);
    held.start = start;
  }

  /* Moving a scheduled booking (?move=<id>): the time picked is its new time. */
  var moving = document.querySelector('[data-moving]');
  function move(el, start) {
    lockSlots(el);
    say(msg, 'Moving your booking…', false);
    cd.post('/api/bookings/' + moving.getAttribute('data-moving') + '/reschedule',
      { startTime: start }).then(function (res) {
      if (!res.ok) { say(msg, cd.errorText(res), true); unlockSlots(); return; }
      window.location.assign('/dashboard?moved=' + moving.getAttribute('data-moving') + '#my-bookings');
    });
  }

  cd.actions['pick-time'] = function (el) {
    var start = el.getAttribute('data-start');
    if (moving) { move(el, start); return; }
    lockSlots(el);
    say(msg, 'Holding this time…', false);
    cd.postKeyed('/api/bookings', {
      expertId: parseInt(box.getAttribute('data-expert'), 10), startTime: start,
      durationMinutes: parseInt(document.getElementById('duration').value, 10)
    }, cd.newKey()).then(function (res) { answered(res, start); });
  };
  /* Back to a time held earlier (Pay now here, or Pay on My bookings): its payment form. */
  cd.actions['resume-booking'] = function (el) {
    if (held && String(held.booking.id) === el.getAttribute('data-booking')) {
      if (pay.scrollIntoView) pay.scrollIntoView({ block: 'start' });
      return;
    }
    /* a time just picked has no notice here yet: the page again lists every hold */
    if (held && !document.querySelector('[data-hold="' + held.booking.id + '"]')) {
      window.location.hash = 'hold-' + el.getAttribute('data-booking');
      window.location.reload();
      return;
    }
    closePayment();
    lockSlots(null);
    say(msg, 'Opening the payment…', false);
    cd.post('/api/bookings/' + el.getAttribute('data-booking') + '/pay', {}).then(function (res) {
      answered(res, el.getAttribute('data-start'));
    });
  };

  /*
   * Letting an unpaid hold go (the one being paid for, or one listed): its
   * cancel stops its PaymentIntent, and the times can be picked again.
   */
  cd.actions['release-hold'] = function (el) {
    var id = el.getAttribute('data-booking') || (held && String(held.booking.id));
    if (!id) return;
    el.disabled = true;
    say(msg, 'Letting that time go…', false);
    cd.post('/api/bookings/' + encodeURIComponent(id) + '/cancel', {}).then(function (res) {
      el.disabled = false;
      if (!res.ok) { say(msg, cd.errorText(res), true); return; }
      if (held && String(held.booking.id) === id) closePayment();
      var notice = document.querySelector('[data-hold="' + id + '"]');
      if (notice) notice.remove();
      unlockSlots();
      var b = res.data && res.data.booking;
      say(msg, b && b.paymentStatus === 'refunded' ? 'Your payment had gone through; it is ' +
        'refunded in full, and that time is free again: pick another.' :
        'That time is free again: pick another.', false);
    });
  };

  cd.actions['pay-booking'] = function () {
    if (!held) return;
    payBtn.disabled = true;
    say(payMsg, 'Paying…', false);
    held.stripe.confirmPayment({ elements: held.elements, redirect: 'if_required' }).then(function (result) {
      if (result.error) {
        payBtn.disabled = false;
        /* a card's own problem is Stripe's sentence; anything else, the hold as the server has it */
        if (result.error.type === 'card_error' || result.error.type === 'validation_error') {
          say(payMsg, result.error.message || 'The payment did not go through. Please try again.', true);
          return;
        }
        cd.post('/api/bookings/' + held.booking.id + '/pay', {}).then(function (res) {
          /* paid meanwhile (another tab): it is booked */
          if (res.ok && !res.data.clientSecret) { paid(res.data.booking, held.start); return; }
          if (res.ok) {
            say(payMsg, 'The payment did not go through. Please try again.', true);
            return;
          }
          closePayment();
          say(msg, cd.errorText(res), true);
          unlockSlots();
        });
        return;
      }
      cd.post('/api/bookings/' + held.booking.id + '/confirm-payment', {}).then(function (res) {
        if (!res.ok) {
          payBtn.disabled = false;
          say(payMsg, cd.errorText(res), true);
          return;
        }
        paid(res.data.booking, held.start);
      });
    });
  };

  /* Pay on My bookings links to #hold-<id>: its payment form opens at once. */
  var linked = /^#hold-(\d+)$/.exec(window.location.hash);
  var again = linked && document.querySelector('[data-hold="' + linked[1] + '"] [data-action="resume-booking"]');
  if (again) cd.actions['resume-booking'](again);
  else if (linked) say(msg, 'This hold can no longer be paid here: it has lapsed, or was paid or ' +
    'cancelled meanwhile. See My bookings.', true);
})();
