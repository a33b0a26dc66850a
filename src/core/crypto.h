/*
 * Passwords, tokens and hashes, all on OpenSSL.
 *
 * Passwords are hashed with scrypt and a per-user random salt, stored as
 * "scrypt$N$r$p$<salt b64>$<hash b64>" so parameters can be raised later
 * without invalidating old hashes.  Tokens come from the CSPRNG and are
 * base64url; only their SHA-256 is stored.
 */
#ifndef CD_CRYPTO_H
#define CD_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define CD_TOKEN_LEN 43		/* 32 random bytes, base64url, no padding */
#define CD_SHA256_HEX 65	/* 64 hex digits + NUL */

int	 password_hash(const char *password, cd_buf *out);	/* 0 = ok */
bool	 password_verify(const char *password, const char *stored);
int	 random_token(char out[CD_TOKEN_LEN + 1]);		/* 0 = ok */
void	 sha256_hex(const void *, size_t, char out[CD_SHA256_HEX]);
void	 hmac_sha256_hex(const char *key, const void *, size_t,
	    char out[CD_SHA256_HEX]);
/*
 * HMAC-SHA256 over a then b (b may be empty), raw, without copying either;
 * false on failure.
 */
bool	 hmac_sha256_pair(const char *key, const void *a, size_t alen,
	    const void *b, size_t blen, unsigned char out[32]);
bool	 ct_equal(const void *, const void *, size_t);

#endif
