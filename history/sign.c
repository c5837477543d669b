/* history/sign.c: approvers' Ed25519 keys (OpenSSL EVP): key generation, the public key line
 * written in gitops.yaml, signing and verifying the text that binds a decision to one promotion
 * (id, environment, SHA). OpenSSL's errors are translated here, once. */
#include "history/internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
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

/* Decodes strict base64 (a key or a signature) into out, at most `max` bytes; -1 when malformed. */
static long b64_decode(unsigned char *out, size_t max, const char *s)
{
	unsigned char *raw;
	size_t n;
	if (!*s || gitops_base64_decode(&raw, &n, s, strlen(s), 0))
		return -1;
	long got = n <= max ? (long)n : -1;
	if (got >= 0)
		memcpy(out, raw, n);
	gitops_base64_free(raw, n);
	return got;
}

static char *pub_line(EVP_PKEY *k)
{
	unsigned char raw[32];
	size_t len = sizeof(raw);
	if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1 || len != 32)
		return NULL;
	char *b = gitops_base64_encode(raw, len);
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
		return gitops_error_set(errno == ENOENT ? GITOPS_ENOTFOUND : GITOPS_EIO, "key %s: %s", key_file, gitops_strerror(errno));
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
		*out_sig = gitops_base64_encode(sig, siglen);
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

/* ---- signed deploy records (reporters) -------------------------------------------------- */

int hist_load_key(EVP_PKEY **out, char **out_pub, const char *key_file)
{
	int rc = load_private(out, key_file);
	if (rc)
		return rc;
	*out_pub = pub_line(*out);
	if (!*out_pub) {
		EVP_PKEY_free(*out);
		*out = NULL;
		return ssl_fail(GITOPS_ERROR, key_file);
	}
	return 0;
}

/* The text a reporter signs: a prefix and the event without its signature, keys sorted. */
static char *record_text(const json_t *ev)
{
	json_t *c = json_copy((json_t *)ev);
	json_object_del(c, "signature");
	char *body = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(c);
	char *t = gitops_sprintf("gitops-record-v1\n%s", body ? body : "");
	free(body);
	return t;
}

int hist_event_sign(json_t *ev, EVP_PKEY *k, const char *pub)
{
	json_object_del(ev, "signature");
	char *text = record_text(ev);
	unsigned char sig[64];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = 0;
	if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)text, strlen(text)) != 1) {
		rc = ssl_fail(GITOPS_ERROR, "signing the record");
	} else {
		char *b = gitops_base64_encode(sig, siglen);
		json_object_set_new(ev, "signature", json_pack("{s:s, s:s}", "key", pub, "value", b));
		free(b);
	}
	EVP_MD_CTX_free(ctx);
	free(text);
	return rc;
}

int hist_event_verify_signature(const json_t *ev)
{
	json_t *s = json_object_get(ev, "signature");
	const char *pub = json_string_value(json_object_get(s, "key"));
	const char *val = json_string_value(json_object_get(s, "value"));
	unsigned char raw[32], sig[64];
	if (!pub || strncmp(pub, PUB_PREFIX, strlen(PUB_PREFIX)) || b64_decode(raw, sizeof(raw), pub + strlen(PUB_PREFIX)) != 32)
		return gitops_error_set(GITOPS_EINVALID, "the record's signature key is not an Ed25519 key line");
	if (!val || b64_decode(sig, sizeof(sig), val) != 64)
		return gitops_error_set(GITOPS_EINVALID, "the record's signature is malformed");
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, sizeof(raw));
	if (!k)
		return ssl_fail(GITOPS_EINVALID, "public key");
	char *text = record_text(ev);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = 0;
	if (!ctx || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) != 1)
		rc = ssl_fail(GITOPS_ERROR, "verify");
	else if (EVP_DigestVerify(ctx, sig, sizeof(sig), (const unsigned char *)text, strlen(text)) != 1)
		rc = gitops_error_set(GITOPS_EFORBIDDEN, "the record's signature does not verify");
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	free(text);
	EVP_PKEY_free(k);
	return rc;
}

bool hist_key_listed(const char *pub, const struct mf_signer *v, size_t n, const char **name)
{
	unsigned char raw[32];
	if (!pub || mf_key_parse_ed25519(raw, pub)) {
		gitops_error_clear();
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (!memcmp(v[i].raw, raw, 32)) {
			if (name)
				*name = v[i].name;
			return true;
		}
	return false;
}

/* ---- SSH signatures (sshsig, as git's gpg.format=ssh writes them), verified with OpenSSL ---- */

struct rd {
	const unsigned char *p;
	size_t n;
};

static bool rd_u32(struct rd *r, uint32_t *v)
{
	if (r->n < 4)
		return false;
	*v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	r->n -= 4;
	return true;
}

static bool rd_str(struct rd *r, struct rd *out)
{
	uint32_t l;
	if (!rd_u32(r, &l) || l > r->n)
		return false;
	out->p = r->p;
	out->n = l;
	r->p += l;
	r->n -= l;
	return true;
}

static bool rd_is(const struct rd *s, const char *want) { return s->n == strlen(want) && !memcmp(s->p, want, s->n); }

static void put_str(gitops_buf *b, const void *p, size_t n)
{
	unsigned char l[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n};
	gitops_buf_put(b, l, 4);
	gitops_buf_put(b, p, n);
}

int hist_sshsig_verify(unsigned char out_blob[51], const char *armored, size_t alen, const void *msg, size_t mlen,
		       const char *ns)
{
	static const char begin[] = "-----BEGIN SSH SIGNATURE-----", end[] = "-----END SSH SIGNATURE-----";
	const char *a = armored ? memmem(armored, alen, begin, sizeof(begin) - 1) : NULL;
	const char *e = a ? memmem(a, alen - (size_t)(a - armored), end, sizeof(end) - 1) : NULL;
	if (!a || !e)
		return gitops_error_set(GITOPS_EINVALID, "not an SSH signature (gpg.format=ssh; GPG and X.509 signatures are not supported)");
	a += sizeof(begin) - 1;
	size_t b64len = (size_t)(e - a);
	unsigned char *blob = NULL;
	size_t bloblen = 0;
	bool ok = !gitops_base64_decode(&blob, &bloblen, a, b64len, GITOPS_BASE64_LINES);
	int rc = 0;
	EVP_PKEY *k = NULL;
	EVP_MD_CTX *mctx = NULL;
	gitops_buf tbs = GITOPS_BUF_INIT;
	struct rd r = {blob, ok ? bloblen : 0}, pk, nsp, res, hash, sig, kt, kraw, st, sraw;
	uint32_t ver = 0;
	if (!ok || r.n < 6 || memcmp(r.p, "SSHSIG", 6)) {
		rc = gitops_error_set(GITOPS_EINVALID, "malformed SSH signature (no SSHSIG preamble)");
		goto out;
	}
	r.p += 6;
	r.n -= 6;
	if (!rd_u32(&r, &ver) || ver != 1 || !rd_str(&r, &pk) || !rd_str(&r, &nsp) || !rd_str(&r, &res) ||
	    !rd_str(&r, &hash) || !rd_str(&r, &sig) || r.n) {
		rc = gitops_error_set(GITOPS_EINVALID, "malformed SSH signature (version %u or layout)", (unsigned)ver);
		goto out;
	}
	if (!rd_is(&nsp, ns)) {
		rc = gitops_error_set(GITOPS_EFORBIDDEN, "the SSH signature is for namespace \"%.*s\", not \"%s\"", (int)nsp.n,
				      (const char *)nsp.p, ns);
		goto out;
	}
	const EVP_MD *md = rd_is(&hash, "sha512") ? EVP_sha512() : rd_is(&hash, "sha256") ? EVP_sha256() : NULL;
	struct rd pkr = pk;
	if (!md || !rd_str(&pkr, &kt) || !rd_is(&kt, "ssh-ed25519") || !rd_str(&pkr, &kraw) || kraw.n != 32 || pkr.n ||
	    pk.n != 51) {
		rc = gitops_error_set(GITOPS_EINVALID, "unsupported SSH signature: only ssh-ed25519 keys with sha256/sha512");
		goto out;
	}
	if (!rd_str(&sig, &st) || !rd_is(&st, "ssh-ed25519") || !rd_str(&sig, &sraw) || sraw.n != 64 || sig.n) {
		rc = gitops_error_set(GITOPS_EINVALID, "malformed ssh-ed25519 signature");
		goto out;
	}
	unsigned char h[64];
	unsigned int hl = 0;
	if (EVP_Digest(msg, mlen, h, &hl, md, NULL) != 1) {
		rc = ssl_fail(GITOPS_ERROR, "digest");
		goto out;
	}
	gitops_buf_put(&tbs, "SSHSIG", 6);
	put_str(&tbs, nsp.p, nsp.n);
	put_str(&tbs, "", 0); /* reserved: always empty in the signed data (as OpenSSH) */
	put_str(&tbs, hash.p, hash.n);
	put_str(&tbs, h, hl);
	k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, kraw.p, 32);
	mctx = EVP_MD_CTX_new();
	if (!k || !mctx || EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, k) != 1) {
		rc = ssl_fail(GITOPS_ERROR, "ssh signature verify");
		goto out;
	}
	if (EVP_DigestVerify(mctx, sraw.p, 64, (const unsigned char *)tbs.ptr, tbs.len) != 1) {
		rc = gitops_error_set(GITOPS_EFORBIDDEN, "the SSH signature does not verify");
		goto out;
	}
	if (out_blob)
		memcpy(out_blob, pk.p, 51);
out:
	ERR_clear_error();
	EVP_MD_CTX_free(mctx);
	EVP_PKEY_free(k);
	gitops_buf_free(&tbs);
	free(blob);
	return rc;
}

void hist_ssh_fingerprint(char out[64], const unsigned char blob[51])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(blob, 51, md, &n, EVP_sha256(), NULL);
	char *b = gitops_base64_encode(md, 32);
	size_t l = strlen(b);
	while (l && b[l - 1] == '=')
		b[--l] = '\0';
	snprintf(out, 64, "SHA256:%s", b);
	free(b);
}
