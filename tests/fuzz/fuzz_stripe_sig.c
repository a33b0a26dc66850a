/*
 * libFuzzer harness for the Stripe-Signature header parser
 * (stripe_sig_verify in src/core/stripe_sig.c).
 *
 * The input is split at its first NUL: the part before is the header, the
 * rest is the payload (which may hold more NULs).  Besides looking for
 * memory errors the harness checks three properties on every input:
 *   - the result is one of the four cd_sig values;
 *   - a header that verifies must contain "t=" and "v1=";
 *   - a header that verifies has no empty item and no item without '=';
 *   - signing the fuzzed payload with stripe_sig_sign() and verifying it
 *     again (with the fuzzed header appended as an extra item, which is
 *     ignored, when it is one key=value of an unknown key) gives SIG_OK,
 *     SIG_STALE just outside the tolerance and SIG_MISMATCH with only the
 *     other secret.
 *
 * Build and run from the top of the tree:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc/core \
 *     tests/fuzz/fuzz_stripe_sig.c src/core/stripe_sig.c src/core/buf.c \
 *     src/core/log.c $(pkg-config --cflags --libs jansson libcrypto) \
 *     -o fuzz_stripe_sig
 *   ./fuzz_stripe_sig -max_total_time=60 -max_len=4096
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "stripe.h"

static const char *const secrets[] = { "whsec_fuzz_one", "whsec_fuzz_two" };

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* One key=value item whose key is neither t nor v1: the parser skips it. */
static int
unknown_item(const char *h)
{
	const char *eq = strchr(h, '=');

	return eq != NULL && strchr(eq + 1, '=') == NULL &&
	    strchr(h, ',') == NULL && strncmp(h, "t=", 2) != 0 &&
	    strncmp(h, "v1=", 3) != 0;
}

/* Every item of a header that verified is key=value: none empty or bare. */
static int
items_well_formed(const char *h)
{
	const char *item = h, *end;

	for (;;) {
		end = strchr(item, ',');
		if (end == NULL)
			end = item + strlen(item);
		if (memchr(item, '=', (size_t)(end - item)) == NULL)
			return 0;
		if (*end == '\0')
			return 1;
		item = end + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t hlen = nul ? (size_t)(nul - data) : size;
	const uint8_t *payload = nul ? nul + 1 : data + size;
	size_t plen = nul ? size - hlen - 1 : 0;
	char *header;
	cd_buf b = CD_BUF_INIT;
	unsigned long long u = 0;
	long long t;
	cd_sig r;
	size_t i;

	if ((header = malloc(hlen + 1)) == NULL)
		return 0;
	memcpy(header, data, hlen);
	header[hlen] = '\0';

	r = stripe_sig_verify(header, payload, plen, secrets, 2,
	    1700000000LL, 300);
	if (r != SIG_OK && r != SIG_MALFORMED && r != SIG_MISMATCH &&
	    r != SIG_STALE)
		abort();
	if (r == SIG_OK && (strstr(header, "t=") == NULL ||
	    strstr(header, "v1=") == NULL || !items_well_formed(header)))
		abort();

	/* Round trip with a timestamp taken from the input. */
	for (i = 0; i < hlen && i < 8; i++)
		u = u << 8 | data[i];
	t = (long long)(u & 0x7fffffffffffULL);
	stripe_sig_sign(secrets[hlen % 2], t, payload, plen, &b);
	if (unknown_item(header)) {
		buf_putc(&b, ',');
		buf_puts(&b, header);
	}
	if (stripe_sig_verify(buf_cstr(&b), payload, plen, secrets, 2, t, 300)
	    != SIG_OK)
		abort();
	if (stripe_sig_verify(buf_cstr(&b), payload, plen, secrets, 2, t + 301,
	    300) != SIG_STALE)
		abort();
	/* The other secret alone does not verify it. */
	if (stripe_sig_verify(buf_cstr(&b), payload, plen,
	    secrets + (hlen % 2 ? 0 : 1), 1, t, 300) != SIG_MISMATCH)
		abort();

	buf_free(&b);
	free(header);
	return 0;
}
