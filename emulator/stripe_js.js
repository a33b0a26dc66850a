/*
 * A stand-in for Stripe.js v3, served by the Stripe emulator at /v3/.
 * It covers the subset creditdesk's pages use, with Stripe's names and
 * result shapes:
 *   Stripe(pk)
 *   stripe.initEmbeddedCheckout({clientSecret | fetchClientSecret, onComplete})
 *     -> Promise<{mount(el), unmount(), destroy()}>
 *   stripe.elements({clientSecret}).create('payment') -> {mount(el), unmount(), destroy()}
 *   stripe.confirmPayment({elements, redirect: 'if_required', confirmParams})
 *     -> Promise<{paymentIntent} | {error}>
 * The card fields live in iframes served by the emulator (as Stripe's live on
 * js.stripe.com), so the page never sees a card number and needs no
 * connect-src for the emulator.
 */
(function () {
  'use strict';
  var ORIGIN = '__ORIGIN__';
  var PREFIX = 'stripe-emu:';

  function element(target) {
    var el = typeof target === 'string' ? document.querySelector(target) : target;
    if (!el || !el.appendChild)
      throw new Error('The selector or element passed to mount() was not found.');
    return el;
  }

  function frame(src, title, height) {
    var f = document.createElement('iframe');
    f.src = src;
    f.title = title;
    f.setAttribute('allow', 'payment');
    f.style.cssText = 'border:0;width:100%;height:' + height + 'px;display:block;background:transparent';
    return f;
  }

  /* Messages from our own iframes only. */
  function listen(win, fn) {
    function on(ev) {
      if (ev.origin !== ORIGIN || !ev.data || typeof ev.data.type !== 'string') return;
      if (win() && ev.source !== win()) return;
      if (ev.data.type.indexOf(PREFIX) !== 0) return;
      fn(ev.data.type.slice(PREFIX.length), ev.data);
    }
    window.addEventListener('message', on);
    return function () { window.removeEventListener('message', on); };
  }

  function secretId(secret, prefix) {
    var m = typeof secret === 'string' && secret.match(/^([a-z]+_[A-Za-z0-9_]+?)_secret_[A-Za-z0-9]+$/);
    if (!m || m[1].indexOf(prefix) !== 0)
      throw new Error('Invalid value for clientSecret: ' + String(secret));
    return m[1];
  }

  function EmbeddedCheckout(secret, opts) {
    var id = secretId(secret, 'cs_');
    var iframe = null, stop = null;
    this.mount = function (target) {
      if (iframe) throw new Error('This Embedded Checkout is already mounted.');
      iframe = frame(ORIGIN + '/embedded/' + encodeURIComponent(id) +
        '?secret=' + encodeURIComponent(secret), 'Secure checkout', 560);
      element(target).appendChild(iframe);
      stop = listen(function () { return iframe && iframe.contentWindow; }, function (type, d) {
        if (type === 'resize' && d.height > 0) iframe.style.height = Math.min(d.height, 2000) + 'px';
        if (type !== 'complete' || d.session !== id) return;
        if (typeof opts.onComplete === 'function') { opts.onComplete(); return; }
        if (typeof d.returnUrl === 'string' && /^https?:\/\//.test(d.returnUrl))
          window.location.href = d.returnUrl;
      });
    };
    this.unmount = function () {
      if (stop) stop();
      if (iframe && iframe.parentNode) iframe.parentNode.removeChild(iframe);
      iframe = null; stop = null;
    };
    this.destroy = this.unmount;
  }

  function PaymentElement(secret) {
    var id = secretId(secret, 'pi_');
    var iframe = null, stop = null, pending = {}, seq = 0, self = this;
    this.mount = function (target) {
      if (iframe) throw new Error('This Element is already mounted.');
      iframe = frame(ORIGIN + '/elements/' + encodeURIComponent(id) +
        '?secret=' + encodeURIComponent(secret), 'Secure payment input frame', 120);
      element(target).appendChild(iframe);
      stop = listen(function () { return iframe && iframe.contentWindow; }, function (type, d) {
        if (type === 'resize' && d.height > 0) iframe.style.height = Math.min(d.height, 800) + 'px';
        if (type === 'result' && pending[d.nonce]) {
          pending[d.nonce](d.result);
          delete pending[d.nonce];
        }
      });
    };
    this.unmount = function () {
      if (stop) stop();
      if (iframe && iframe.parentNode) iframe.parentNode.removeChild(iframe);
      iframe = null; stop = null;
    };
    this.destroy = this.unmount;
    /* Asks the iframe to confirm; resolves to {paymentIntent} or {error}. */
    this._confirm = function () {
      if (!iframe) return Promise.resolve({ error: {
        type: 'invalid_request_error', code: 'element_not_mounted',
        message: 'The payment form is not on the page.' } });
      var nonce = String(++seq);
      return new Promise(function (resolve) {
        pending[nonce] = resolve;
        iframe.contentWindow.postMessage({ type: PREFIX + 'confirm', nonce: nonce }, ORIGIN);
      });
    };
    self._secret = secret;
  }

  function Elements(opts) {
    var secret = opts && opts.clientSecret;
    secretId(secret, 'pi_');
    var made = null;
    this.create = function (type) {
      if (type !== 'payment') throw new Error('The emulator offers only the payment Element.');
      if (made) throw new Error('Can only create one Element of type payment.');
      made = new PaymentElement(secret);
      return made;
    };
    this.getElement = function (type) { return type === 'payment' ? made : null; };
    this._payment = function () { return made; };
  }

  function Stripe(key) {
    if (!(this instanceof Stripe)) return new Stripe(key);
    if (typeof key !== 'string' || !/^pk_(test|live)_[A-Za-z0-9_]+$/.test(key))
      throw new Error('Invalid API Key provided: ' + String(key));
  }

  Stripe.prototype.initEmbeddedCheckout = function (opts) {
    opts = opts || {};
    var get = typeof opts.fetchClientSecret === 'function'
      ? opts.fetchClientSecret() : Promise.resolve(opts.clientSecret);
    return Promise.resolve(get).then(function (secret) {
      return new EmbeddedCheckout(secret, opts);
    });
  };

  Stripe.prototype.elements = function (opts) { return new Elements(opts); };

  Stripe.prototype.confirmPayment = function (opts) {
    var els = opts && opts.elements;
    var pe = els && els._payment && els._payment();
    if (!pe) return Promise.resolve({ error: { type: 'invalid_request_error',
      code: 'integration_error', message: 'elements with a mounted payment Element is required.' } });
    return pe._confirm().then(function (result) {
      var back = opts.confirmParams && opts.confirmParams.return_url;
      if (result.paymentIntent && (opts.redirect !== 'if_required') && back)
        window.location.href = back + (back.indexOf('?') < 0 ? '?' : '&') +
          'payment_intent=' + encodeURIComponent(result.paymentIntent.id) +
          '&payment_intent_client_secret=' + encodeURIComponent(pe._secret) +
          '&redirect_status=succeeded';
      return result;
    });
  };

  window.Stripe = Stripe;
})();
