/*
 * Stripe webhook signatures; see stripe.h.
 *
 * The header is attacker-controlled, so it is parsed strictly and without
 * allocation, accepting only what both of Stripe's reference libraries
 * (stripe-go and stripe-python) accept:
 *   - items are separated by ',' and each is exactly key=value, with one
 *     '=' and no whitespace trimmed (stripe-go refuses anything else, an
 *     empty item included);
 *   - exactly one t, made only of digits (the libraries disagree on which
 *     of two t's wins, so two are refused);
 *   - v1 values count only as 64 lower-case hex digits (stripe-python
 *     compares the text with a lower-case hexdigest); any other v1 value
 *     and any other key (v0, future schemes) is ignored;
 *   - at least one v1 must be left.
 * The HMAC is computed once per secret over the canonical "<t>.<payload>"
 * and compared in constant time with every v1.
 *
 * As in Stripe's own libraries the signature is checked before the time:
 * a forged header learns nothing about our clock, and a genuine but old
 * delivery is reported as stale rather than as a mismatch.  Unlike them the
 * window is applied both ways: a t further ahead of our clock than the
 * tolerance is stale too, so a captured header never stays valid for long.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "escape.h"
#include "log.h"
#include "stripe.h"

#define MAC_LEN 32
/* cfg allows 4 secrets; more than this is a caller's bug, not rotation. */
#define MAX_SECRETS 8

/* One lower-case hex digit's value; -1 for anything else. */
static int
lower_hex(char c)
{
	if (c >= 'a' && c <= 'f')
		return hex_value(c);
	return c >= '0' && c <= '9' ? c - '0' : -1;
}

/* Decodes exactly 64 lower-case hex digits into 32 bytes; -1 otherwise. */
static int
parse_v1(const char *s, size_t n, unsigned char out[MAC_LEN])
{
	size_t i;
	int hi, lo;

	if (n != 2 * MAC_LEN)
		return -1;
	for (i = 0; i < MAC_LEN; i++) {
		if ((hi = lower_hex(s[2 * i])) < 0 || (lo = lower_hex(s[2 * i + 1])) < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* A non-empty run of digits that fits in a long long. */
static int
parse_t(const char *s, size_t n, long long *out)
{
	long long v = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (LLONG_MAX - (s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/*
 * Walks the items of the header: finds t, counts the well-formed v1 items
 * and compares each of them with every MAC in macs, setting *match when one
 * is equal.  Returns -1 when an item is not key=value, unless there is
 * exactly one valid t and at least one valid v1.
 */
static int
scan(const char *header, long long *t, size_t *nv1,
    const unsigned char (*macs)[MAC_LEN], size_t nmacs, bool *match)
{
	const char *item = header, *end, *eq;
	unsigned char sig[MAC_LEN];
	bool have_t = false;
	size_t klen, vlen, i;

	*nv1 = 0;
	for (;;) {
		end = strchr(item, ',');
		if (end == NULL)
			end = item + strlen(item);
		/* Exactly one '=' per item, as stripe-go requires. */
		eq = memchr(item, '=', (size_t)(end - item));
		if (eq == NULL || memchr(eq + 1, '=', (size_t)(end - eq - 1)))
			return -1;
		klen = (size_t)(eq - item);
		vlen = (size_t)(end - eq - 1);
		if (klen == 1 && item[0] == 't') {
			if (have_t || parse_t(eq + 1, vlen, t) != 0)
				return -1;
			have_t = true;
		} else if (klen == 2 && item[0] == 'v' && item[1] == '1' &&
		    parse_v1(eq + 1, vlen, sig) == 0) {
			(*nv1)++;
			for (i = 0; i < nmacs; i++)
				*match |= CRYPTO_memcmp(sig, macs[i],
				    MAC_LEN) == 0;
		}
		if (*end == '\0')
			break;
		item = end + 1;
	}
	return have_t && *nv1 > 0 ? 0 : -1;
}

/* HMAC-SHA256(secret, "<t>.<payload>") without copying the payload. */
static int
sig_mac(const char *secret, long long t, const void *payload, size_t len,
    unsigned char out[MAC_LEN])
{
	char prefix[32];
	int n;

	n = snprintf(prefix, sizeof(prefix), "%lld.", t);
	return hmac_sha256_pair(secret, prefix, (size_t)n, payload, len, out) ?
	    0 : -1;
}

cd_sig
stripe_sig_verify(const char *header, const void *payload, size_t len,
    const char *const *secrets, size_t nsecrets, long long now,
    long tolerance)
{
	unsigned char macs[MAX_SECRETS][MAC_LEN];
	unsigned long long age;
	long long t = 0;
	size_t nv1, nmacs = 0, i;
	bool match = false;

	if (header == NULL || scan(header, &t, &nv1, NULL, 0, &match) != 0)
		return SIG_MALFORMED;
	if (nsecrets > MAX_SECRETS)
		log_warn("stripe_sig_verify: only the first %d secrets are used",
		    MAX_SECRETS);
	for (i = 0; i < nsecrets && nmacs < MAX_SECRETS; i++) {
		/* An empty secret would let anyone sign: never use one. */
		if (secrets[i] == NULL || secrets[i][0] == '\0')
			continue;
		if (sig_mac(secrets[i], t, payload, len, macs[nmacs]) != 0) {
			log_error("stripe_sig_verify: HMAC failed");
			continue;
		}
		nmacs++;
	}
	scan(header, &t, &nv1, (const unsigned char (*)[MAC_LEN])macs, nmacs,
	    &match);
	OPENSSL_cleanse(macs, sizeof(macs));
	if (!match)
		return SIG_MISMATCH;
	/* |now - t| in unsigned arithmetic, which cannot overflow here. */
	age = now >= t ? (unsigned long long)now - (unsigned long long)t :
	    (unsigned long long)t - (unsigned long long)now;
	if (age > (unsigned long long)(tolerance > 0 ? tolerance : 0))
		return SIG_STALE;
	return SIG_OK;
}

void
stripe_sig_sign(const char *secret, long long t, const void *payload,
    size_t len, cd_buf *out)
{
	static const char hexdigits[] = "0123456789abcdef";
	unsigned char mac[MAC_LEN];
	char hex[2 * MAC_LEN + 1];
	size_t i;

	if (secret == NULL || t < 0 || sig_mac(secret, t, payload, len, mac) != 0) {
		log_error("stripe_sig_sign: cannot sign");
		return;
	}
	for (i = 0; i < MAC_LEN; i++) {
		hex[2 * i] = hexdigits[mac[i] >> 4];
		hex[2 * i + 1] = hexdigits[mac[i] & 0xf];
	}
	hex[2 * MAC_LEN] = '\0';
	buf_printf(out, "t=%lld,v1=%s", t, hex);
}
