/* test_jwt: the client assertion of the certificate credential. Keys and certificates are made
 * here with OpenSSL at run time; each assertion is taken apart again and checked the way Entra
 * checks it: three base64url parts, the header and claims it must carry, and a PS256 or RS256
 * signature that verifies with the certificate's public key (PSS with exactly a 32-byte salt).
 * Also the refusals at load time (wrong key, not RSA, too short, not PEM, encrypted). The token
 * request body that carries the assertion is tested in test_oauth. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guid.h"
#include "jwt.h"
#include "util.h"

#define CLIENT "0b5b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
#define AUDIENCE "https://login.microsoftonline.com/9fce70af-a632-49ca-bc0d-53db5a21c5b3/oauth2/v2.0/token"
#define NOW_SEC INT64_C(1760000000)
#define B64URL_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

typedef struct Keys {
        EVP_PKEY *key, *other_key;
        X509 *cert;
        char *cert_pem, *key_pem, *other_key_pem;
} Keys;

/* ---- helpers: keys, certificates and PEM text -------------------------------------------- */

static char *bio_text(BIO *bio) {
        char *data = NULL;
        long n = BIO_get_mem_data(bio, &data);
        char *s = strndup(data, (size_t) n);

        assert_non_null(s);
        BIO_free(bio);
        return s;
}

static char *key_pem(EVP_PKEY *key) {
        BIO *bio = BIO_new(BIO_s_mem());

        assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
        return bio_text(bio);
}

static char *cert_pem(X509 *cert) {
        BIO *bio = BIO_new(BIO_s_mem());

        assert_int_equal(PEM_write_bio_X509(bio, cert), 1);
        return bio_text(bio);
}

/* A self-signed certificate for key, valid from now + from_sec to now + to_sec. */
static X509 *make_cert(EVP_PKEY *key, long from_sec, long to_sec) {
        X509 *cert = X509_new();
        X509_NAME *name;

        assert_non_null(cert);
        assert_int_equal(X509_set_version(cert, 2), 1);
        assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(cert), 1), 1);
        assert_non_null(X509_gmtime_adj(X509_getm_notBefore(cert), from_sec));
        assert_non_null(X509_gmtime_adj(X509_getm_notAfter(cert), to_sec));
        name = X509_get_subject_name(cert);
        assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                    (const unsigned char *) "nimbus-sync test", -1, -1, 0), 1);
        assert_int_equal(X509_set_issuer_name(cert, name), 1);
        assert_int_equal(X509_set_pubkey(cert, key), 1);
        assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
        return cert;
}

static int group_setup(void **state) {
        Keys *k = calloc(1, sizeof(Keys));

        assert_non_null(k);
        k->key = EVP_RSA_gen(2048);
        k->other_key = EVP_RSA_gen(2048);
        assert_non_null(k->key);
        assert_non_null(k->other_key);
        k->cert = make_cert(k->key, 0, 3600);
        k->cert_pem = cert_pem(k->cert);
        k->key_pem = key_pem(k->key);
        k->other_key_pem = key_pem(k->other_key);
        *state = k;
        return 0;
}

static int group_teardown(void **state) {
        Keys *k = *state;

        EVP_PKEY_free(k->key);
        EVP_PKEY_free(k->other_key);
        X509_free(k->cert);
        free(k->cert_pem);
        free(k->key_pem);
        free(k->other_key_pem);
        free(k);
        return 0;
}

static bool diag_has(const Diag *d, const char *expected) {
        for (size_t i = 0; i < d->n; i++) {
                char *s = NULL;
                bool same;

                assert_int_equal(diag_entry_format(&d->entries[i], &s), 0);
                same = streq(s, expected);
                free(s);
                if (same)
                        return true;
        }
        return false;
}

/* No diagnostic may quote the key: its second PEM line is base64 that only the key contains. */
static void assert_no_key_text(const Diag *d, const char *pem) {
        char line[65];
        const char *second = strchr(pem, '\n');

        assert_non_null(second);
        snprintf(line, sizeof line, "%.40s", second + 1);
        for (size_t i = 0; i < d->n; i++)
                assert_null(strstr(d->entries[i].msg, line));
}

/* base64url back to bytes, with OpenSSL (the test's own way there, not the code under test). */
static unsigned char *b64url_decode(const char *s, size_t len, size_t *ret_len) {
        size_t padded = (len + 3) / 4 * 4, pad = padded - len;
        char *buf = malloc(padded + 1);
        unsigned char *out = malloc(padded / 4 * 3 + 1);
        int n;

        assert_non_null(buf);
        assert_non_null(out);
        assert_int_not_equal(len % 4, 1);
        for (size_t i = 0; i < len; i++) {
                assert_non_null(strchr(B64URL_ALPHABET, s[i]));
                buf[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
        }
        memset(buf + len, '=', pad);
        buf[padded] = '\0';
        n = EVP_DecodeBlock(out, (const unsigned char *) buf, (int) padded);
        assert_true(n >= 0);
        free(buf);
        *ret_len = (size_t) n - pad;   /* EVP_DecodeBlock counts the padding as zero bytes */
        out[*ret_len] = '\0';
        return out;
}

static struct json_object *decode_json(const char *s, size_t len) {
        size_t n;
        unsigned char *text = b64url_decode(s, len, &n);
        struct json_object *o = json_tokener_parse((const char *) text);

        assert_non_null(o);
        assert_true(json_object_is_type(o, json_type_object));
        free(text);
        return o;
}

static const char *get_string(struct json_object *o, const char *key) {
        struct json_object *v = NULL;

        assert_true(json_object_object_get_ex(o, key, &v));
        assert_true(json_object_is_type(v, json_type_string));
        return json_object_get_string(v);
}

static int64_t get_int(struct json_object *o, const char *key) {
        struct json_object *v = NULL;

        assert_true(json_object_object_get_ex(o, key, &v));
        assert_true(json_object_is_type(v, json_type_int));
        return json_object_get_int64(v);
}

static JwtSigner *signer_ok(const char *cert, const char *key, JwtAlg alg) {
        JwtSigner *s = NULL;
        Diag d = DIAG_INIT;

        assert_int_equal(jwt_signer_new(cert, "app.pem", key, "app.key", alg, &s, &d), 0);
        assert_non_null(s);
        assert_int_equal(d.n_errors, 0);
        diag_clear(&d);
        return s;
}

/* The thumbprint computed independently: SHA-256 over i2d's DER, then base64url. */
static char *expected_x5t(X509 *cert) {
        unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        int len = i2d_X509(cert, &der);
        char b64[EVP_MAX_MD_SIZE * 2], *out;
        int b;

        assert_true(len > 0);
        assert_int_equal(EVP_Digest(der, (size_t) len, md, &n, EVP_sha256(), NULL), 1);
        OPENSSL_free(der);
        b = EVP_EncodeBlock((unsigned char *) b64, md, (int) n);
        while (b > 0 && b64[b - 1] == '=')
                b--;
        b64[b] = '\0';
        for (char *p = b64; *p; p++)
                *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
        out = strdup(b64);
        assert_non_null(out);
        return out;
}

/* Verified as alg says, with OpenSSL: for PS256 the salt must be exactly as long as the digest
 * and MGF1 must use SHA-256 (RFC 7518 §3.5), so OpenSSL's default maximal salt would fail. */
static bool signature_verifies(X509 *cert, const char *jwt, JwtAlg alg) {
        const char *last = strrchr(jwt, '.');
        size_t sig_len;
        unsigned char *sig = b64url_decode(last + 1, strlen(last + 1), &sig_len);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        int ok;

        assert_non_null(ctx);
        assert_int_equal(EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, X509_get0_pubkey(cert)), 1);
        if (alg == JWT_ALG_PS256) {
                assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
                assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
                assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
        }
        ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *) jwt, (size_t) (last - jwt));
        EVP_MD_CTX_free(ctx);
        free(sig);
        return ok == 1;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_base64url(void **state) {
        static const struct {
                const char *in;
                size_t len;
                const char *out;
        } vectors[] = {
                { "", 0, "" },           { "f", 1, "Zg" },        { "fo", 2, "Zm8" },
                { "foo", 3, "Zm9v" },    { "foob", 4, "Zm9vYg" }, { "fooba", 5, "Zm9vYmE" },
                { "foobar", 6, "Zm9vYmFy" },
                { "\xfb\xff", 2, "-_8" },  /* "+/8=" in standard base64 */
                { "\xfb\xef\xbe", 3, "----" },
                { "\xff\xff\xff", 3, "____" },
        };

        for (size_t i = 0; i < ELEMENTSOF(vectors); i++) {
                char *s = NULL;

                assert_int_equal(jwt_base64url(vectors[i].in, vectors[i].len, &s), 0);
                assert_string_equal(s, vectors[i].out);
                free(s);
        }
}

static void check_assertion_parts(const Keys *k, JwtAlg alg, const char *alg_name) {
        JwtSigner *s = signer_ok(k->cert_pem, k->key_pem, alg);
        char *jwt = NULL, *x5t = expected_x5t(k->cert);
        const char *dot1, *dot2;
        struct json_object *header, *claims;

        assert_int_equal(jwt_client_assertion(s, CLIENT, AUDIENCE, (uint64_t) NOW_SEC * USEC_PER_SEC + 999999,
                                              &jwt), 0);
        dot1 = strchr(jwt, '.');
        assert_non_null(dot1);
        dot2 = strchr(dot1 + 1, '.');
        assert_non_null(dot2);
        assert_null(strchr(dot2 + 1, '.'));   /* exactly three parts */
        assert_true(dot1 > jwt && dot2 > dot1 + 1 && dot2[1] != '\0');

        header = decode_json(jwt, (size_t) (dot1 - jwt));
        assert_string_equal(get_string(header, "alg"), alg_name);
        assert_string_equal(get_string(header, "typ"), "JWT");
        assert_string_equal(get_string(header, "x5t#S256"), x5t);
        assert_int_equal(json_object_object_length(header), 3);

        claims = decode_json(dot1 + 1, (size_t) (dot2 - dot1 - 1));
        assert_string_equal(get_string(claims, "aud"), AUDIENCE);
        assert_string_equal(get_string(claims, "iss"), CLIENT);
        assert_string_equal(get_string(claims, "sub"), CLIENT);
        assert_int_equal(get_int(claims, "nbf"), NOW_SEC);
        assert_int_equal(get_int(claims, "iat"), NOW_SEC);
        assert_int_equal(get_int(claims, "exp"), NOW_SEC + JWT_ASSERTION_LIFETIME_SEC);
        Guid g;
        const char *jti = get_string(claims, "jti");
        assert_int_equal(guid_parse(jti, strlen(jti), &g), 0);
        assert_int_equal(g.b[6] >> 4, 4);            /* a version 4 UUID */
        assert_int_equal(json_object_object_length(claims), 7);

        json_object_put(header);
        json_object_put(claims);
        free(x5t);
        free(jwt);
        jwt_signer_free(s);
}

static void test_assertion_parts(void **state) {
        check_assertion_parts(*state, JWT_ALG_PS256, "PS256");
        check_assertion_parts(*state, JWT_ALG_RS256, "RS256");
        assert_string_equal(jwt_alg_name(JWT_ALG_PS256), "PS256");
        assert_string_equal(jwt_alg_name(JWT_ALG_RS256), "RS256");
}

static void check_signature(const Keys *k, JwtAlg alg, JwtAlg other_alg) {
        JwtSigner *s = signer_ok(k->cert_pem, k->key_pem, alg);
        char *jwt = NULL;
        char *dot;

        assert_int_equal(jwt_client_assertion(s, CLIENT, AUDIENCE, now_usec(), &jwt), 0);
        assert_true(signature_verifies(k->cert, jwt, alg));
        /* PSS and PKCS #1 v1.5 are told apart: the signature does not pass as the other one. */
        assert_false(signature_verifies(k->cert, jwt, other_alg));

        /* The check is real: a changed claim, or another certificate's key, fails it. */
        dot = strchr(jwt, '.');
        dot[1] = dot[1] == 'A' ? 'B' : 'A';
        assert_false(signature_verifies(k->cert, jwt, alg));
        dot[1] = dot[1] == 'A' ? 'B' : 'A';
        X509 *other = make_cert(k->other_key, 0, 3600);
        assert_false(signature_verifies(other, jwt, alg));
        X509_free(other);

        free(jwt);
        jwt_signer_free(s);
}

static void test_signature_verifies(void **state) {
        check_signature(*state, JWT_ALG_PS256, JWT_ALG_RS256);
        check_signature(*state, JWT_ALG_RS256, JWT_ALG_PS256);
}

/* PS256 with a salt as long as the digest, nothing else: a verifier that insists on a 32-byte
 * salt accepts it, one that insists on the longest salt OpenSSL would choose by default does not. */
static void test_pss_salt_length(void **state) {
        Keys *k = *state;
        JwtSigner *s = signer_ok(k->cert_pem, k->key_pem, JWT_ALG_PS256);
        char *jwt = NULL;
        const char *last;
        size_t sig_len;
        unsigned char *sig;
        EVP_PKEY_CTX *pctx = NULL;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        assert_int_equal(jwt_client_assertion(s, CLIENT, AUDIENCE, now_usec(), &jwt), 0);
        last = strrchr(jwt, '.');
        sig = b64url_decode(last + 1, strlen(last + 1), &sig_len);
        assert_int_equal(sig_len, 256);
        for (int saltlen = 0; saltlen < 2; saltlen++) {
                assert_int_equal(EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL,
                                                      X509_get0_pubkey(k->cert)), 1);
                assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
                assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, saltlen ? 32 : 222), 1);
                assert_int_equal(EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *) jwt,
                                                  (size_t) (last - jwt)) == 1, saltlen == 1);
        }
        EVP_MD_CTX_free(ctx);
        free(sig);
        free(jwt);
        jwt_signer_free(s);
}

static void test_fresh_assertion_each_time(void **state) {
        Keys *k = *state;
        JwtSigner *s = signer_ok(k->cert_pem, k->key_pem, JWT_ALG_PS256);
        char *a = NULL, *b = NULL;
        struct json_object *ca, *cb;

        assert_int_equal(jwt_client_assertion(s, CLIENT, AUDIENCE, now_usec(), &a), 0);
        assert_int_equal(jwt_client_assertion(s, CLIENT, AUDIENCE, now_usec(), &b), 0);
        ca = decode_json(strchr(a, '.') + 1, (size_t) (strrchr(a, '.') - strchr(a, '.') - 1));
        cb = decode_json(strchr(b, '.') + 1, (size_t) (strrchr(b, '.') - strchr(b, '.') - 1));
        assert_string_not_equal(get_string(ca, "jti"), get_string(cb, "jti"));
        assert_true(signature_verifies(k->cert, a, JWT_ALG_PS256));
        assert_true(signature_verifies(k->cert, b, JWT_ALG_PS256));

        assert_int_equal(jwt_client_assertion(s, "", AUDIENCE, now_usec(), &a), -EINVAL);
        assert_int_equal(jwt_client_assertion(s, CLIENT, NULL, now_usec(), &a), -EINVAL);

        json_object_put(ca);
        json_object_put(cb);
        free(a);
        free(b);
        jwt_signer_free(s);
}

static void test_mismatched_key_refused(void **state) {
        Keys *k = *state;
        JwtSigner *s = NULL;
        Diag d = DIAG_INIT;

        assert_int_equal(jwt_signer_new(k->cert_pem, "app.pem", k->other_key_pem, "wrong.key",
                                        JWT_ALG_PS256, &s, &d),
                         -EKEYREJECTED);
        assert_null(s);
        assert_true(diag_has(&d, "wrong.key: error: private key does not belong to the certificate app.pem"));
        assert_int_equal(d.n_errors, 1);
        assert_no_key_text(&d, k->other_key_pem);
        diag_clear(&d);
}

static void test_unusable_keys_refused(void **state) {
        EVP_PKEY *ec = EVP_EC_gen("P-256"), *small = EVP_RSA_gen(1024);
        X509 *ec_cert = make_cert(ec, 0, 3600), *small_cert = make_cert(small, 0, 3600);
        char *ec_pem = key_pem(ec), *ec_cert_pem = cert_pem(ec_cert);
        char *small_pem = key_pem(small), *small_cert_pem = cert_pem(small_cert);
        JwtSigner *s = NULL;
        Diag d = DIAG_INIT;

        assert_int_equal(jwt_signer_new(ec_cert_pem, "ec.pem", ec_pem, "ec.key",
                                        JWT_ALG_PS256, &s, &d), -EKEYREJECTED);
        assert_true(diag_has(&d, "ec.key: error: private key is not an RSA key (the client assertion is "
                             "signed PS256 or RS256)"));
        assert_int_equal(jwt_signer_new(small_cert_pem, "small.pem", small_pem, "small.key",
                                        JWT_ALG_PS256, &s, &d),
                         -EKEYREJECTED);
        assert_true(diag_has(&d, "small.key: error: RSA key has 1024 bits; Entra ID needs at least 2048"));
        assert_null(s);
        assert_no_key_text(&d, ec_pem);
        assert_no_key_text(&d, small_pem);
        diag_clear(&d);

        EVP_PKEY_free(ec);
        EVP_PKEY_free(small);
        X509_free(ec_cert);
        X509_free(small_cert);
        free(ec_pem);
        free(ec_cert_pem);
        free(small_pem);
        free(small_cert_pem);
}

static void test_bad_pem_refused(void **state) {
        Keys *k = *state;
        BIO *bio = BIO_new(BIO_s_mem());
        JwtSigner *s = NULL;
        Diag d = DIAG_INIT;
        char *encrypted;

        assert_int_equal(jwt_signer_new(k->cert_pem, "app.pem", k->key_pem, "app.key", (JwtAlg) 7, &s, &d),
                         -EINVAL);
        assert_int_equal(jwt_signer_new("garbage", "app.pem", k->key_pem, "app.key",
                                        JWT_ALG_PS256, &s, &d), -EBADMSG);
        assert_true(diag_has(&d, "app.pem: error: not a PEM certificate"));
        /* A key where the certificate should be is not a certificate. */
        assert_int_equal(jwt_signer_new(k->key_pem, "app.pem", k->key_pem, "app.key",
                                        JWT_ALG_PS256, &s, &d), -EBADMSG);
        assert_int_equal(jwt_signer_new(k->cert_pem, "app.pem", k->cert_pem, "app.key",
                                        JWT_ALG_PS256, &s, &d), -EBADMSG);
        assert_true(diag_has(&d, "app.key: error: not an unencrypted PEM private key (the file's mode "
                             "protects it, not a passphrase)"));

        /* An encrypted key is refused, without a passphrase prompt. */
        assert_int_equal(PEM_write_bio_PrivateKey(bio, k->key, EVP_aes_256_cbc(), NULL, 0, NULL,
                                                  (void *) "passphrase"), 1);
        encrypted = bio_text(bio);
        assert_int_equal(jwt_signer_new(k->cert_pem, "app.pem", encrypted, "app.key",
                                        JWT_ALG_PS256, &s, &d), -EBADMSG);
        assert_null(s);
        assert_int_equal(d.n_errors, 4);
        assert_no_key_text(&d, k->key_pem);
        free(encrypted);
        diag_clear(&d);
}

static void test_combined_pem_and_expiry(void **state) {
        Keys *k = *state;
        X509 *old = make_cert(k->key, -7200, -3600);
        char *old_pem = cert_pem(old), *both = NULL, *jwt = NULL;
        JwtSigner *s = NULL;
        Diag d = DIAG_INIT;

        /* One file holding certificate and key serves as both. */
        assert_true(asprintf(&both, "%s%s", k->cert_pem, k->key_pem) > 0);
        s = signer_ok(both, both, JWT_ALG_RS256);
        assert_int_equal(jwt_client_assertion(s, CLIENT, AUDIENCE, now_usec(), &jwt), 0);
        assert_true(signature_verifies(k->cert, jwt, JWT_ALG_RS256));
        jwt_signer_free(s);
        free(jwt);

        /* An expired certificate is Entra's to refuse; we only warn. */
        assert_int_equal(jwt_signer_new(old_pem, "old.pem", k->key_pem, "app.key", JWT_ALG_PS256, &s, &d), 0);
        assert_int_equal(d.n_errors, 0);
        assert_int_equal(d.n_warnings, 1);
        assert_true(diag_has(&d, "old.pem: warning: certificate has expired; Entra ID refuses assertions "
                             "signed with an expired certificate"));
        diag_clear(&d);
        jwt_signer_free(s);

        assert_null(jwt_signer_free(NULL));
        X509_free(old);
        free(old_pem);
        free(both);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_base64url), cmocka_unit_test(test_assertion_parts),
                cmocka_unit_test(test_signature_verifies), cmocka_unit_test(test_pss_salt_length),
                cmocka_unit_test(test_fresh_assertion_each_time),
                cmocka_unit_test(test_mismatched_key_refused),
                cmocka_unit_test(test_unusable_keys_refused),
                cmocka_unit_test(test_bad_pem_refused),
                cmocka_unit_test(test_combined_pem_and_expiry),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
