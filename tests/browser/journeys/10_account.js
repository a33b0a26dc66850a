/*
 * Journey 10: the account page.  Signing up with a taken email says so; the
 * same password again is refused; a password change keeps this browser signed
 * in and signs out the other one; the old password stops working; Sign out
 * works from a page whose CSRF token another tab made stale; "Sign out
 * everywhere" ends every session, this one included.
 */
'use strict';

const { assert, eq, dbValue, password } = require('../lib');

async function account(t) {
  const p = t.page;
  const user = await t.step('sign-up', () => t.signUp('account'));
  const other = await t.another('other-device');
  await t.step('other-device-signs-in', async () => {
    await other.signIn(user.email, user.password);
    eq(new URL(other.page.url()).pathname, '/dashboard', 'the other device after signing in');
  });

  await t.step('account-page', async () => {
    await t.clickAndWaitForNavigation('a.who[href="/settings/account"]');
    eq(new URL(p.url()).pathname, '/settings/account', 'the name in the header leads to');
    await t.waitText('h1', 'Account');
    assert((await t.text()).includes(user.email), 'the page does not say who is signed in');
  });

  await t.step('sign-up-with-a-taken-email', async () => {
    const newcomer = await t.another('newcomer');
    await newcomer.goto('/register');
    await newcomer.page.type('input[name="name"]', 'Someone else');
    await newcomer.page.type('input[name="email"]', user.email);
    await newcomer.page.type('input[name="password"]', password());
    await newcomer.page.click('form[data-form="register"] button[type="submit"]');
    await newcomer.waitText('form[data-form="register"] [data-msg]',
      'This email already has an account. Sign in with its password instead.');
    eq(new URL(newcomer.page.url()).pathname, '/register', 'the newcomer stays on');
  });

  const fresh = password();
  await t.step('the-same-password-again', async () => {
    await p.type('input[name="currentPassword"]', user.password);
    await p.type('input[name="newPassword"]', user.password);
    await p.type('input[name="confirmPassword"]', user.password);
    await p.click('form[data-form="password"] button[type="submit"]');
    await t.waitText('form[data-form="password"] [data-msg]',
      'The new password is the one you have now: choose another.');
  });

  await t.step('mismatched-new-passwords', async () => {
    await p.$eval('form[data-form="password"]', (f) => f.reset());
    await p.type('input[name="currentPassword"]', user.password);
    await p.type('input[name="newPassword"]', fresh);
    await p.type('input[name="confirmPassword"]', fresh + 'x');
    await p.click('form[data-form="password"] button[type="submit"]');
    await t.waitText('form[data-form="password"] [data-msg]', 'The two new passwords are not the same.');
  });

  await t.step('wrong-current-password', async () => {
    await p.$eval('form[data-form="password"]', (f) => f.reset());
    await p.type('input[name="currentPassword"]', 'not the password at all');
    await p.type('input[name="newPassword"]', fresh);
    await p.type('input[name="confirmPassword"]', fresh);
    await p.click('form[data-form="password"] button[type="submit"]');
    await t.waitText('form[data-form="password"] [data-msg]', 'The current password is not correct.');
  });

  await t.step('change-password', async () => {
    await p.$eval('form[data-form="password"]', (f) => f.reset());
    await p.type('input[name="currentPassword"]', user.password);
    await p.type('input[name="newPassword"]', fresh);
    await p.type('input[name="confirmPassword"]', fresh);
    await p.click('form[data-form="password"] button[type="submit"]');
    await t.waitText('form[data-form="password"] [data-msg]',
      'Password changed. Every other device is signed out.');
    eq(Number(dbValue("SELECT COUNT(*) FROM audit_log WHERE action = 'PASSWORD_CHANGED' AND user_id = ?",
      user.id)), 1, 'audit rows for the change');
  });

  await t.step('this-browser-stays-signed-in', async () => {
    const res = await t.goto('/dashboard');
    eq(res.status(), 200, '/dashboard after the change');
    eq(new URL(p.url()).pathname, '/dashboard', 'this browser after the change');
  });

  await t.step('other-device-is-signed-out', async () => {
    await other.goto('/dashboard');
    eq(new URL(other.page.url()).pathname, '/login', 'the other device after the change');
  });

  await t.step('old-password-refused-new-accepted', async () => {
    await other.goto('/login');
    await other.page.type('input[name="email"]', user.email);
    await other.page.type('input[name="password"]', user.password);
    await other.page.click('form[data-form="login"] button[type="submit"]');
    await other.waitText('form[data-form="login"] [data-msg]', /./);
    eq(new URL(other.page.url()).pathname, '/login', 'signing in with the old password');
    await other.signIn(user.email, fresh);
    eq(new URL(other.page.url()).pathname, '/dashboard', 'signing in with the new password');
  });

  await t.step('sign-out-from-a-page-whose-token-is-stale', async () => {
    // the same browser signs in again elsewhere (another tab): this page's CSRF token is old
    const status = await other.page.evaluate(async (email, pw) => (await fetch('/api/auth/login', {
      method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: email, password: pw })
    })).status, user.email, fresh);
    eq(status, 200, 'signing in again in another tab');
    await other.clickAndWaitForNavigation('button[data-action="sign-out"]');
    eq(new URL(other.page.url()).pathname, '/', 'the page after Sign out');
    await other.goto('/dashboard');
    eq(new URL(other.page.url()).pathname, '/login', '/dashboard after signing out');
    await other.signIn(user.email, fresh);
  });

  await t.step('sign-out-everywhere', async () => {
    await t.goto('/settings/account');
    await t.clickAndWaitForNavigation('button[data-action="sign-out-everywhere"]');
    eq(new URL(p.url()).pathname, '/login', 'this browser after signing out everywhere');
    await t.goto('/dashboard');
    eq(new URL(p.url()).pathname, '/login', '/dashboard in this browser afterwards');
    await other.goto('/dashboard');
    eq(new URL(other.page.url()).pathname, '/login', '/dashboard on the other device afterwards');
    eq(Number(dbValue('SELECT COUNT(*) FROM auth_sessions WHERE user_id = ?',
      user.id)), 0, 'live sessions left');
    await t.assertHumanPage();
  });
}

module.exports = [{ name: 'account-settings', run: account }];
