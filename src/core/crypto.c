/*
 * Passwords, tokens and hashes on OpenSSL; see crypto.h.
 *
 * A stored password hash is read back from the database, so password_verify()
 * treats it as untrusted input: every field is parsed strictly and the scrypt
 * cost is bounded, so that a tampered row can neither make the responder
 * allocate gigabytes nor spin for minutes.  Base64 fields must be canonical
 * (decoding and re-encoding gives the same text), which leaves exactly one
 * accepted spelling of every hash.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "log.h"

/* Parameters for new hashes: 16 MiB and roughly 50 ms per hash. */
#define SCRYPT_N	16384
#define SCRYPT_R	8
#define SCRYPT_P	1
#define SALT_LEN	16
#define KEY_LEN		32

/* Bounds on what a stored hash may ask for. */
#define SCRYPT_MAXMEM	((uint64_t)64 * 1024 * 1024)
#define SCRYPT_MAX_N	(1UL << 20)
#define SCRYPT_MAX_R	32UL
#define SCRYPT_MAX_P	16UL
#define SCRYPT_MAX_WORK	((uint64_t)1 << 21)	/* N * r * p: 16 times the default */
#define MIN_SALT	4	/* RFC 7914's test vector uses "NaCl" */
#define MAX_SALT	64
#define MIN_KEY		16
#define MAX_KEY		64

static const char hexdigits[] = "0123456789abcdef";

static void
hex_encode(const unsigned char *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hexdigits[p[i] >> 4];
		out[2 * i + 1] = hexdigits[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/*
 * Decodes standard padded base64 of at most max bytes into out and returns the
 * length, or -1 unless the text is canonical base64 of 1..max bytes.
 * EVP_DecodeBlock() counts padding as zero bytes, so the length is corrected
 * for '=' and the result re-encoded to reject non-canonical trailing bits.
 */
static int
b64_decode_strict(const char *s, size_t len, unsigned char *out, size_t max)
{
	unsigned char tmp[(MAX_SALT > MAX_KEY ? MAX_SALT : MAX_KEY) + 3];
	char check[sizeof(tmp) / 3 * 4 + 8];
	int n, pad = 0;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(tmp))
		return -1;
	if (s[len - 1] == '=')
		pad++;
	if (s[len - 2] == '=')
		pad++;
	if ((n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len)) < 0)
		return -1;
	n -= pad;
	if (n <= 0 || (size_t)n > max)
		goto fail;
	if (EVP_EncodeBlock((unsigned char *)check, tmp, n) != (int)len ||
	    memcmp(check, s, len) != 0)
		goto fail;
	memcpy(out, tmp, (size_t)n);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return n;
fail:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return -1;
}

/*
 * Parses a decimal field of a stored hash ending at '$': digits only, no
 * leading zero, at most max.  Advances *sp past the '$'.
 */
static int
parse_field(const char **sp, unsigned long max, unsigned long *out)
{
	const char *s = *sp;
	unsigned long v = 0;

	if (*s < '1' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (max - (unsigned long)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (*s != '$')
		return -1;
	*sp = s + 1;
	*out = v;
	return 0;
}

static int
scrypt(const char *password, const unsigned char *salt, size_t saltlen,
    uint64_t n, uint64_t r, uint64_t p, unsigned char *key, size_t keylen)
{
	return EVP_PBE_scrypt(password, strlen(password), salt, saltlen, n, r, p,
	    SCRYPT_MAXMEM, key, keylen) == 1 ? 0 : -1;
}

int
password_hash(const char *password, cd_buf *out)
{
	unsigned char salt[SALT_LEN], key[KEY_LEN];
	char salt64[(SALT_LEN + 2) / 3 * 4 + 1], key64[(KEY_LEN + 2) / 3 * 4 + 1];
	int rc = -1;

	if (password == NULL)
		return -1;
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		log_error("password_hash: RAND_bytes failed");
		return -1;
	}
	if (scrypt(password, salt, sizeof(salt), SCRYPT_N, SCRYPT_R, SCRYPT_P,
	    key, sizeof(key)) != 0) {
		log_error("password_hash: scrypt failed");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof(salt));
	EVP_EncodeBlock((unsigned char *)key64, key, sizeof(key));
	buf_printf(out, "scrypt$%d$%d$%d$%s$%s", SCRYPT_N, SCRYPT_R, SCRYPT_P,
	    salt64, key64);
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(key64, sizeof(key64));
	return rc;
}

bool
password_verify(const char *password, const char *stored)
{
	unsigned char salt[MAX_SALT], want[MAX_KEY], got[MAX_KEY];
	unsigned long n, r, p;
	const char *s, *d;
	int saltlen, keylen;
	bool ok = false;

	if (password == NULL || stored == NULL ||
	    strncmp(stored, "scrypt$", 7) != 0)
		return false;
	s = stored + 7;
	if (parse_field(&s, SCRYPT_MAX_N, &n) != 0 ||
	    parse_field(&s, SCRYPT_MAX_R, &r) != 0 ||
	    parse_field(&s, SCRYPT_MAX_P, &p) != 0)
		return false;
	/*
	 * N a power of two above 1; the memory OpenSSL will need,
	 * 128 * r * (N + 2 + p) bytes, and the work N * r * p bounded.
	 */
	if (n < 2 || (n & (n - 1)) != 0 ||
	    (uint64_t)128 * r * (n + 2 + p) > SCRYPT_MAXMEM ||
	    (uint64_t)n * r * p > SCRYPT_MAX_WORK)
		return false;
	if ((d = strchr(s, '$')) == NULL)
		return false;
	if ((saltlen = b64_decode_strict(s, (size_t)(d - s), salt,
	    MAX_SALT)) < MIN_SALT)
		return false;
	s = d + 1;
	if ((keylen = b64_decode_strict(s, strlen(s), want, MAX_KEY)) < MIN_KEY)
		return false;
	if (scrypt(password, salt, (size_t)saltlen, n, r, p, got,
	    (size_t)keylen) == 0)
		ok = CRYPTO_memcmp(got, want, (size_t)keylen) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

int
random_token(char out[CD_TOKEN_LEN + 1])
{
	static const char b64url[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[32];
	size_t i, o = 0;
	uint32_t v;

	out[0] = '\0';
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		log_error("random_token: RAND_bytes failed");
		return -1;
	}
	/* 30 bytes make 40 characters; the last 2 bytes make 3 more. */
	for (i = 0; i + 3 <= sizeof(raw); i += 3) {
		v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
		out[o++] = b64url[v & 63];
	}
	v = (uint32_t)raw[30] << 16 | (uint32_t)raw[31] << 8;
	out[o++] = b64url[v >> 18 & 63];
	out[o++] = b64url[v >> 12 & 63];
	out[o++] = b64url[v >> 6 & 63];
	out[o] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

/*
 * On an OpenSSL failure (only allocation can fail here) the output is the
 * empty string, which never equals a stored hash.
 */
/*
 * OpenSSL 3 looks an algorithm up by name on every implicit use
 * (EVP_sha256(), HMAC()): each process fetches SHA-256 and HMAC once and
 * keeps one context of each (a responder hashes a session token on every
 * signed-in request, the webhook signs every event).
 */
static struct {
	EVP_MD		*sha256;
	EVP_MD_CTX	*digest;
	EVP_MAC_CTX	*hmac;		/* set last: ready once it is */
} algo;

/*
 * Fetches both on first use.  A failure (out of memory: both are built in)
 * is undone, so a later call tries again instead of leaving the process
 * unable to hash for good.
 */
static bool
algo_ready(void)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_END
	};
	EVP_MAC_CTX *hmac = NULL;
	EVP_MAC *mac;

	if (algo.hmac != NULL)
		return true;
	if ((algo.sha256 != NULL ||
	    (algo.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) != NULL) &&
	    (algo.digest != NULL || (algo.digest = EVP_MD_CTX_new()) != NULL) &&
	    (mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) != NULL) {
		hmac = EVP_MAC_CTX_new(mac);
		EVP_MAC_free(mac);	/* the context keeps its own reference */
	}
	if (hmac == NULL || EVP_MAC_CTX_set_params(hmac, params) != 1) {
		EVP_MAC_CTX_free(hmac);
		return false;
	}
	algo.hmac = hmac;
	return true;
}

void
sha256_hex(const void *p, size_t n, char out[CD_SHA256_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!algo_ready() ||
	    EVP_DigestInit_ex2(algo.digest, algo.sha256, NULL) != 1 ||
	    EVP_DigestUpdate(algo.digest, p, n) != 1 ||
	    EVP_DigestFinal_ex(algo.digest, md, &mdlen) != 1 || mdlen != 32) {
		log_error("sha256_hex: digest failed");
		out[0] = '\0';
		return;
	}
	hex_encode(md, 32, out);
}

bool
hmac_sha256_pair(const char *key, const void *a, size_t alen, const void *b,
    size_t blen, unsigned char out[32])
{
	size_t len = 0;

	/* A key is always given: NULL would keep the previous call's. */
	return algo_ready() && EVP_MAC_init(algo.hmac,
	    (const unsigned char *)(key ? key : ""), key ? strlen(key) : 0,
	    NULL) == 1 && EVP_MAC_update(algo.hmac, a, alen) == 1 &&
	    (blen == 0 || EVP_MAC_update(algo.hmac, b, blen) == 1) &&
	    EVP_MAC_final(algo.hmac, out, &len, 32) == 1 && len == 32;
}

void
hmac_sha256_hex(const char *key, const void *p, size_t n,
    char out[CD_SHA256_HEX])
{
	unsigned char md[32];

	if (!hmac_sha256_pair(key, p, n, NULL, 0, md)) {
		log_error("hmac_sha256_hex: HMAC failed");
		out[0] = '\0';
		return;
	}
	hex_encode(md, 32, out);
}

bool
ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}
