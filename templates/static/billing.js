/*
 * creditdesk billing page: Buy Now (boost packs) and Subscribe (plans) open
 * Stripe's embedded Checkout in a modal (Stripe.js from the page's <script>, key from <meta name="stripe-key">).
 * Paying ends on /checkout/success, which fulfils the purchase and brings the
 * buyer back here with a notice; closing the modal abandons nothing that
 * costs money (the Checkout Session simply expires).  Cancel at period end
 * and Keep my plan ask the server, then reload to show the plan's state.
 */
(function () {
  'use strict';
  var cd = window.creditdesk;
  var dialog = document.getElementById('checkout-dialog');
  var mountPoint = document.getElementById('checkout-mount');
  var current = null;	/* the mounted embedded Checkout */

  function stripe() {
    var meta = document.querySelector('meta[name="stripe-key"]');
    var key = meta ? meta.getAttribute('content') : '';
    if (typeof window.Stripe !== 'function' || !key) return null;
    return window.Stripe(key);
  }

  function closeCheckout() {
    if (current) { current.destroy(); current = null; }
    if (dialog.open) dialog.close();
  }

  /* Opens the modal with the embedded Checkout for clientSecret. */
  function openCheckout(el, clientSecret, title) {
    var s = stripe();
    if (!s) {
      cd.say(el, 'The payment form could not be loaded. Check your connection and reload the page.', true);
      return;
    }
    closeCheckout();
    document.getElementById('checkout-title').textContent = title;
    dialog.showModal();
    s.initEmbeddedCheckout({ clientSecret: clientSecret }).then(function (checkout) {
      current = checkout;
      checkout.mount(mountPoint);
      cd.say(el, '', false);
    }, function () {
      closeCheckout();
      cd.say(el, 'The payment form could not be opened. Please try again.', true);
    });
  }

  /* Starts an embedded-mode checkout for body, then opens it. */
  function startCheckout(el, body, title) {
    cd.run(el, '/api/stripe/create-checkout', body, function (res) {
      var secret = res.data && res.data.clientSecret;
      if (!secret) {
        cd.say(el, 'Checkout could not be started. Please try again.', true);
        return;
      }
      openCheckout(el, secret, title);
    });
  }

  cd.actions['buy-pack'] = function (el) {
    startCheckout(el, { purchaseType: 'boost_pack', boostPackId: el.getAttribute('data-pack') },
      'Buy ' + (el.getAttribute('data-name') || 'boost pack'));
  };
  cd.actions['subscribe'] = function (el) {
    startCheckout(el, { purchaseType: 'subscription', planId: el.getAttribute('data-plan') },
      'Subscribe to ' + (el.getAttribute('data-name') || 'a plan'));
  };

  /* Cancel at period end, keep the plan after all, or renew as another plan: then the page again. */
  function changeSubscription(el, what, body) {
    cd.run(el, '/api/subscriptions/' + encodeURIComponent(el.getAttribute('data-subscription')) +
      '/' + what, body || {}, function () { window.location.reload(); });
  }
  cd.actions['cancel-subscription'] = function (el) { changeSubscription(el, 'cancel'); };
  cd.actions['resume-subscription'] = function (el) { changeSubscription(el, 'resume'); };
  cd.actions['change-plan'] = function (el) {
    changeSubscription(el, 'plan', { planId: el.getAttribute('data-plan') });
  };

  document.addEventListener('click', function (ev) {
    if (ev.target.closest('[data-close-checkout]')) closeCheckout();
  });
  dialog.addEventListener('close', function () {
    if (current) { current.destroy(); current = null; }
  });
})();
