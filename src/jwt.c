/* jwt.c: builds and signs the client assertion of Entra ID's certificate credentials.
 *
 * Key and certificate are parsed once, when the token client is made, and checked against each
 * other there: a key that does not belong to the certificate is an admin's clear error at start,
 * not an opaque refusal from Entra at every token request. Every token request then gets a fresh
 * assertion, because Entra refuses a jti it has already seen and a short lifetime limits what a
 * leaked assertion is worth. Nothing here prints or logs, and no text holding key material
 * leaves this file. */
#include "jwt.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>

#include "guid.h"
#include "json_cleanup.h"
#include "util.h"

#define JWT_FIELD_MAX 4096                  /* a client id or a token URL is far shorter */
#define BASE64_INPUT_MAX (1024 * 1024)      /* JWT parts are a few hundred bytes */

struct JwtSigner {
        EVP_PKEY *key;
        char *x5t_s256;                     /* base64url SHA-256 of the certificate's DER */
        JwtAlg alg;
};

int jwt_base64url(const void *data, size_t len, char **ret) {
        char *out;
        size_t n;

        if (len > BASE64_INPUT_MAX)
                return -E2BIG;
        out = malloc(4 * ((len + 2) / 3) + 1);
        if (!out)
                return -ENOMEM;
        n = (size_t) EVP_EncodeBlock((unsigned char *) out, data, (int) len);
        /* RFC 7515 §2: the URL-safe alphabet, and no padding. */
        while (n > 0 && out[n - 1] == '=')
                n--;
        out[n] = '\0';
        for (size_t i = 0; i < n; i++)
                if (out[i] == '+')
                        out[i] = '-';
                else if (out[i] == '/')
                        out[i] = '_';
        *ret = out;
        return 0;
}

/* ---- loading ----------------------------------------------------------------------------- */

/* Without this, OpenSSL would prompt on the terminal for an encrypted key's passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata) {
        return -1;
}

static int load_certificate(const char *pem, const char *name, X509 **ret, Diag *diag) {
        BIO *bio = BIO_new_mem_buf(pem, -1);
        X509 *cert;

        if (!bio)
                return -ENOMEM;
        cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
        BIO_free(bio);
        if (!cert)
                return diag_add(diag, DIAG_ERROR, name, 0, 0, "not a PEM certificate"), -EBADMSG;
        *ret = cert;
        return 0;
}

static int load_key(const char *pem, const char *name, EVP_PKEY **ret, Diag *diag) {
        BIO *bio = BIO_new_mem_buf(pem, -1);
        EVP_PKEY *key;

        if (!bio)
                return -ENOMEM;
        key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
        BIO_free(bio);
        if (!key)
                return diag_add(diag, DIAG_ERROR, name, 0, 0, "not an unencrypted PEM private key "
                                "(the file's mode protects it, not a passphrase)"), -EBADMSG;
        *ret = key;
        return 0;
}

static int check_key(X509 *cert, const char *cert_name, EVP_PKEY *key, const char *key_name, Diag *diag) {
        int bits;

        /* Both algorithms need an RSA key; "RSA-PSS" keys cannot make PKCS #1 v1.5 signatures,
         * and Entra's certificate credentials are plain RSA. */
        if (!EVP_PKEY_is_a(key, "RSA"))
                return diag_add(diag, DIAG_ERROR, key_name, 0, 0, "private key is not an RSA key "
                                "(the client assertion is signed PS256 or RS256)"), -EKEYREJECTED;
        bits = EVP_PKEY_get_bits(key);
        if (bits < JWT_RSA_MIN_BITS)
                return diag_add(diag, DIAG_ERROR, key_name, 0, 0, "RSA key has %d bits; Entra ID needs "
                                "at least %d", bits, JWT_RSA_MIN_BITS), -EKEYREJECTED;
        if (X509_check_private_key(cert, key) != 1)
                return diag_add(diag, DIAG_ERROR, key_name, 0, 0, "private key does not belong to the "
                                "certificate %s", cert_name), -EKEYREJECTED;
        return 0;
}

static int thumbprint(X509 *cert, char **ret) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        /* X509_digest() hashes the DER encoding, which is what x5t#S256 names. */
        if (X509_digest(cert, EVP_sha256(), md, &n) != 1)
                return -EIO;
        return jwt_base64url(md, n, ret);
}

static void warn_expired(X509 *cert, const char *name, Diag *diag) {
        if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
                diag_add(diag, DIAG_WARNING, name, 0, 0, "certificate has expired; Entra ID refuses "
                         "assertions signed with an expired certificate");
}

const char *jwt_alg_name(JwtAlg alg) {
        return alg == JWT_ALG_RS256 ? "RS256" : "PS256";
}

int jwt_signer_new(const char *cert_pem, const char *cert_name, const char *key_pem,
                   const char *key_name, JwtAlg alg, JwtSigner **ret, Diag *diag) {
        X509 *cert = NULL;
        JwtSigner *s;
        int r;

        if (alg != JWT_ALG_PS256 && alg != JWT_ALG_RS256)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->alg = alg;
        r = load_certificate(cert_pem, cert_name, &cert, diag);
        if (r >= 0)
                r = load_key(key_pem, key_name, &s->key, diag);
        if (r >= 0)
                r = check_key(cert, cert_name, s->key, key_name, diag);
        if (r >= 0)
                r = thumbprint(cert, &s->x5t_s256);
        if (r >= 0)
                warn_expired(cert, cert_name, diag);
        X509_free(cert);
        /* The reasons are in diag; OpenSSL's queue would only confuse the next TLS error. */
        ERR_clear_error();
        if (r < 0) {
                jwt_signer_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

JwtSigner *jwt_signer_free(JwtSigner *s) {
        if (!s)
                return NULL;
        EVP_PKEY_free(s->key);
        free(s->x5t_s256);
        free(s);
        return NULL;
}

/* ---- the assertion ----------------------------------------------------------------------- */

static int add_string(struct json_object *o, const char *key, const char *value) {
        struct json_object *v = json_object_new_string(value);

        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_int(struct json_object *o, const char *key, int64_t value) {
        struct json_object *v = json_object_new_int64(value);

        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* One dot-separated part: the JSON text, base64url encoded. */
static int encode_part(struct json_object *o, char **ret) {
        size_t len = 0;
        const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE, &len);

        if (!s)
                return -ENOMEM;
        return jwt_base64url(s, len, ret);
}

static int header_part(const JwtSigner *s, char **ret) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o || add_string(o, "alg", jwt_alg_name(s->alg)) < 0 || add_string(o, "typ", "JWT") < 0 ||
            add_string(o, "x5t#S256", s->x5t_s256) < 0)
                return -ENOMEM;
        return encode_part(o, ret);
}

/* A random version 4 UUID: Entra remembers each jti and refuses a second use. */
static int random_jti(char buf[GUID_STRING_MAX]) {
        Guid g;

        if (RAND_bytes(g.b, sizeof g.b) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        g.b[6] = (uint8_t) ((g.b[6] & 0x0f) | 0x40);
        g.b[8] = (uint8_t) ((g.b[8] & 0x3f) | 0x80);
        guid_format(&g, buf);
        return 0;
}

static int claims_part(const char *client_id, const char *audience, uint64_t now_usec, char **ret) {
        _cleanup_json_ struct json_object *o = json_object_new_object();
        int64_t now = (int64_t) (now_usec / USEC_PER_SEC);
        char jti[GUID_STRING_MAX];
        int r;

        r = random_jti(jti);
        if (r < 0)
                return r;
        if (!o || add_string(o, "aud", audience) < 0 || add_string(o, "iss", client_id) < 0 ||
            add_string(o, "sub", client_id) < 0 || add_string(o, "jti", jti) < 0 ||
            add_int(o, "nbf", now) < 0 || add_int(o, "exp", now + JWT_ASSERTION_LIFETIME_SEC) < 0 ||
            add_int(o, "iat", now) < 0)
                return -ENOMEM;
        return encode_part(o, ret);
}

/* RS256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3): EVP_DigestSign's default padding for
 * an RSA key. PS256 is RSASSA-PSS with SHA-256 and MGF1 with SHA-256, the salt as long as the
 * digest (RFC 7518 §3.5); OpenSSL's own default salt would be the longest that fits, which JWS
 * verifiers may refuse. */
static bool sign_init(EVP_MD_CTX *ctx, EVP_PKEY *key, JwtAlg alg) {
        EVP_PKEY_CTX *pctx = NULL;

        if (EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, key) != 1)
                return false;
        return alg == JWT_ALG_RS256 ||
               (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1);
}

static int sign(EVP_PKEY *key, JwtAlg alg, const char *data, char **ret) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char *sig = NULL;
        size_t n = 0, len = strlen(data);
        int r = -EIO;

        if (!ctx)
                return -ENOMEM;
        if (sign_init(ctx, key, alg) &&
            EVP_DigestSign(ctx, NULL, &n, (const unsigned char *) data, len) == 1) {
                sig = malloc(n);
                r = !sig ? -ENOMEM :
                    EVP_DigestSign(ctx, sig, &n, (const unsigned char *) data, len) == 1 ? 0 : -EIO;
        }
        if (r == 0)
                r = jwt_base64url(sig, n, ret);
        free(sig);
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
        return r;
}

static int join(const char *a, const char *b, char **ret) {
        char *s;

        if (asprintf(&s, "%s.%s", a, b) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int jwt_client_assertion(const JwtSigner *s, const char *client_id, const char *audience,
                         uint64_t now_usec, char **ret) {
        _cleanup_free_ char *header = NULL, *claims = NULL, *input = NULL, *sig = NULL;
        int r;

        if (!s || !client_id || !audience || !*client_id || !*audience ||
            strlen(client_id) > JWT_FIELD_MAX || strlen(audience) > JWT_FIELD_MAX)
                return -EINVAL;
        r = header_part(s, &header);
        if (r >= 0)
                r = claims_part(client_id, audience, now_usec, &claims);
        if (r >= 0)
                r = join(header, claims, &input);
        if (r >= 0)
                r = sign(s->key, s->alg, input, &sig);
        if (r >= 0)
                r = join(input, sig, ret);
        return r;
}
