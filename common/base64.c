/* common: the one base64 codec (standard alphabet, padded), on top of OpenSSL's EVP block
 * functions, with the validation they lack and Go's rules for line breaks. */
#include "common/common.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

char *gitops_base64_encode(const void *data, size_t len)
{
	char *out = gitops_malloc(4 * ((len + 2) / 3) + 1);
	out[0] = '\0';
	if (len)
		EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

int gitops_base64_decode(unsigned char **out, size_t *out_len, const char *s, size_t n, unsigned flags)
{
	*out = NULL;
	*out_len = 0;
	if (n > (size_t)1 << 30)
		return -1;
	char *clean = gitops_malloc(n + 1);
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!(flags & GITOPS_BASE64_LINES) || (s[i] != '\n' && s[i] != '\r'))
			clean[m++] = s[i];
	clean[m] = '\0';
	/* EVP_DecodeBlock trims blanks at both ends and accepts '=' anywhere: Go's StdEncoding
	 * (what the apiserver, kubectl and ssh-keygen agree on) does not. */
	size_t body = strspn(clean, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
	size_t pad = strspn(clean + body, "=");
	int rc = -1;
	if (m % 4 == 0 && body + pad == m && pad <= 2 && m / 4 * 3 < (size_t)1 << 31) {
		unsigned char *raw = gitops_malloc(m / 4 * 3 + 1);
		int got = m ? EVP_DecodeBlock(raw, (const unsigned char *)clean, (int)m) : 0;
		if (got >= (int)pad) {
			got -= (int)pad; /* EVP_DecodeBlock counts the padding as data */
			raw[got] = '\0';
			*out = raw;
			*out_len = (size_t)got;
			rc = 0;
		} else {
			free(raw);
		}
	}
	OPENSSL_cleanse(clean, m);
	free(clean);
	return rc;
}

void gitops_base64_free(unsigned char *p, size_t len)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}
