/* history/sign.c: approvers' Ed25519 keys (OpenSSL EVP): key generation, the public key line
 * written in gitops.yaml, signing and verifying the text that binds a decision to one promotion
 * (id, environment, SHA). OpenSSL's errors are translated here, once. */
#include "history/internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PUB_PREFIX "ed25519:"

static int ssl_fail(int code, const char *what)
{
	char buf[256] = "";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return gitops_error_set(code, "%s%s%s", what, *buf ? ": " : "", buf);
}

static char *b64_encode(const unsigned char *data, size_t len)
{
	char *out = gitops_malloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

/* Decodes strict base64 into out (at most `max` bytes); -1 when malformed. */
static long b64_decode(unsigned char *out, size_t max, const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n % 4 || n / 4 * 3 > max + 2)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
			  c == '/' || (c == '=' && i >= n - 2);
		if (!ok)
			return -1;
	}
	unsigned char *tmp = gitops_malloc(n / 4 * 3 + 1);
	int got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
	if (got < 0) {
		free(tmp);
		return -1;
	}
	int pad = (s[n - 1] == '=') + (s[n - 2] == '=');
	got -= pad;
	if ((size_t)got > max) {
		free(tmp);
		return -1;
	}
	memcpy(out, tmp, (size_t)got);
	free(tmp);
	return got;
}

static char *pub_line(EVP_PKEY *k)
{
	unsigned char raw[32];
	size_t len = sizeof(raw);
	if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1 || len != 32)
		return NULL;
	char *b = b64_encode(raw, len);
	char *line = gitops_sprintf(PUB_PREFIX "%s", b);
	free(b);
	return line;
}

int hist_keygen(char **out_pub, const char *path)
{
	if (out_pub)
		*out_pub = NULL;
	char *pubpath = gitops_sprintf("%s.pub", path);
	int rc = 0;
	EVP_PKEY *k = NULL;
	BIO *bio = NULL;
	char *pub = NULL;
	if (access(path, F_OK) == 0 || access(pubpath, F_OK) == 0) {
		rc = gitops_error_set(GITOPS_EEXISTS, "%s or %s already exists: not overwriting a key", path, pubpath);
		goto out;
	}
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!k) {
		rc = ssl_fail(GITOPS_ERROR, "Ed25519 key generation");
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (!bio || PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1) {
		rc = ssl_fail(GITOPS_ERROR, "encoding the private key");
		goto out;
	}
	char *pem;
	long pemlen = BIO_get_mem_data(bio, &pem);
	if ((rc = gitops_write_file(path, pem, (size_t)pemlen, 0600)))
		goto out;
	pub = pub_line(k);
	if (!pub) {
		rc = ssl_fail(GITOPS_ERROR, "reading the public key");
		goto out;
	}
	gitops_buf line = GITOPS_BUF_INIT;
	gitops_buf_printf(&line, "%s\n", pub);
	rc = gitops_write_file(pubpath, line.ptr, line.len, 0644);
	gitops_buf_free(&line);
	if (!rc && out_pub) {
		*out_pub = pub;
		pub = NULL;
	}
out:
	free(pub);
	BIO_free(bio);
	EVP_PKEY_free(k);
	free(pubpath);
	return rc;
}

static int load_private(EVP_PKEY **out, const char *key_file)
{
	*out = NULL;
	FILE *f = fopen(key_file, "r");
	if (!f)
		return gitops_error_set(errno == ENOENT ? GITOPS_ENOTFOUND : GITOPS_EIO, "key %s: %s", key_file, strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
		fclose(f);
		return gitops_error_set(GITOPS_EFORBIDDEN, "key %s is readable by others (mode %03o): chmod 600 it", key_file,
					(unsigned)(st.st_mode & 0777));
	}
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!k)
		return ssl_fail(GITOPS_EINVALID, key_file);
	if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		return gitops_error_set(GITOPS_EINVALID, "key %s is not an Ed25519 private key (make one with gitops keygen)",
					key_file);
	}
	*out = k;
	return 0;
}

int hist_key_public(char **out, const char *key_file)
{
	EVP_PKEY *k;
	int rc = load_private(&k, key_file);
	if (rc)
		return rc;
	*out = pub_line(k);
	EVP_PKEY_free(k);
	return *out ? 0 : ssl_fail(GITOPS_ERROR, key_file);
}

char *hist_signed_text(const char *decision, const char *id, const char *env, const char *sha)
{
	return gitops_sprintf("gitops-approval-v1\n%s\n%s\n%s\n%s\n", decision, id, env, sha);
}

int hist_sign(char **out_sig, const char *key_file, const char *decision, const char *id, const char *env,
	      const char *sha)
{
	*out_sig = NULL;
	EVP_PKEY *k;
	int rc = load_private(&k, key_file);
	if (rc)
		return rc;
	char *text = hist_signed_text(decision, id, env, sha);
	unsigned char sig[64];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)text, strlen(text)) != 1)
		rc = ssl_fail(GITOPS_ERROR, "signing");
	else
		*out_sig = b64_encode(sig, siglen);
	EVP_MD_CTX_free(ctx);
	free(text);
	EVP_PKEY_free(k);
	return rc;
}

int hist_verify_signature(const char *pub, const char *sig, const char *decision, const char *id, const char *env,
			  const char *sha)
{
	unsigned char raw[32], s[64];
	if (!pub || strncmp(pub, PUB_PREFIX, strlen(PUB_PREFIX)) ||
	    b64_decode(raw, sizeof(raw), pub + strlen(PUB_PREFIX)) != 32)
		return gitops_error_set(GITOPS_EINVALID, "\"%.60s\" is not an Ed25519 public key line (ed25519:<base64>)",
					pub ? pub : "");
	if (!sig || b64_decode(s, sizeof(s), sig) != 64)
		return gitops_error_set(GITOPS_EINVALID, "malformed signature (want 64 bytes in base64)");
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, sizeof(raw));
	if (!k)
		return ssl_fail(GITOPS_EINVALID, "public key");
	char *text = hist_signed_text(decision, id, env, sha);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = 0;
	if (!ctx || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) != 1)
		rc = ssl_fail(GITOPS_ERROR, "verify");
	else if (EVP_DigestVerify(ctx, s, sizeof(s), (const unsigned char *)text, strlen(text)) != 1)
		rc = gitops_error_set(GITOPS_EFORBIDDEN, "the signature does not verify");
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	free(text);
	EVP_PKEY_free(k);
	return rc;
}
