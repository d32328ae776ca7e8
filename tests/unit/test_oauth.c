/* test_oauth: the Entra token endpoint as data: the token answer (hostile ones too: NUL bytes,
 * deep nesting, header injection, oversized tokens), the two request bodies, the form-encoding of
 * the Basic credentials (RFC 6749 §2.3.1), and the Retry-After header. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oauth.h"
#include "util.h"

#define SEC USEC_PER_SEC
#define CLIENT "0b5b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"

/* A buffer of n copies of c followed by tail, not NUL-terminated in the counted part. */
static char *repeat(char c, size_t n, const char *tail, size_t *ret_len) {
        size_t tlen = strlen(tail);
        char *s = malloc(n + tlen + 1);
        assert_non_null(s);
        memset(s, c, n);
        memcpy(s + n, tail, tlen + 1);
        *ret_len = n + tlen;
        return s;
}

/* ---- Entra token ------------------------------------------------------------------------------- */

static int parse_token(const char *body, char **t, uint64_t *e) {
        return oauth_parse_token(body, strlen(body), t, e);
}

static void check_expires(const char *body, uint64_t expected_sec) {
        char *t = NULL;
        uint64_t e = 0;
        assert_int_equal(parse_token(body, &t, &e), 0);
        assert_string_equal(t, "tok");
        assert_int_equal(e, expected_sec * SEC);
        free(t);
}

static void test_token(void **state) {
        char *t = NULL;
        uint64_t e = 0;
        assert_int_equal(parse_token("{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
                                     "\"access_token\":\"eyJ0eXAi.eyJhdWQi.c2lnbmF0dXJl\"}", &t, &e), 0);
        assert_string_equal(t, "eyJ0eXAi.eyJhdWQi.c2lnbmF0dXJl");
        assert_int_equal(e, 3599 * SEC);
        free(t);

        check_expires("{\"access_token\":\"tok\",\"expires_in\":\"1800\"}", 1800);
        check_expires("{\"access_token\":\"tok\"}", 3600);
        check_expires("{\"access_token\":\"tok\",\"expires_in\":\"soon\"}", 3600);
        check_expires("{\"access_token\":\"tok\",\"expires_in\":true}", 3600);
        check_expires("{\"access_token\":\"tok\",\"expires_in\":0}", 1);
        check_expires("{\"access_token\":\"tok\",\"expires_in\":-5}", 1);
        check_expires("{\"access_token\":\"tok\",\"expires_in\":999999999999}", 86400);
        check_expires("{\"access_token\":\"tok\",\"expires_in\":\"99999999999999999999999\"}", 3600);
}

static void test_token_bad(void **state) {
        const char *bad[] = {
                "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215\"}",
                "{\"access_token\":\"\"}",
                "{\"access_token\":42}",
                "{\"access_token\":null}",
                "{\"access_token\":\"a\\r\\nX-Injected: 1\"}",
                "{\"access_token\":\"a b\"}",
                "{\"access_token\":\"\\u00e9\"}",
                "[\"access_token\"]",
                "access_token=abc",
                "",
        };
        char *t = (char *) "untouched";
        uint64_t e = 7;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(parse_token(bad[i], &t, &e), -EBADMSG);
        assert_int_equal(oauth_parse_token("{\"access_token\":\"a\\u0000b\"}", 26, &t, &e), -EBADMSG);
        size_t len;
        char *deep = repeat('[', 10000, "", &len);
        assert_int_equal(oauth_parse_token(deep, len, &t, &e), -EBADMSG);
        free(deep);
        assert_string_equal(t, "untouched");
        assert_int_equal(e, 7);
}

static void test_token_size(void **state) {
        static const char prefix[] = "{\"access_token\":\"";
        const size_t plen = sizeof prefix - 1;
        char *t = NULL;
        uint64_t e;
        size_t len;
        /* A token of exactly 16 KiB is taken, one byte more is refused. */
        for (size_t size = 16 * 1024; size <= 16 * 1024 + 1; size++) {
                char *body = repeat('x', plen + size, "\"}", &len);
                memcpy(body, prefix, plen);
                int r = oauth_parse_token(body, len, &t, &e);
                free(body);
                if (size == 16 * 1024) {
                        assert_int_equal(r, 0);
                        assert_int_equal(strlen(t), size);
                        free(t);
                } else
                        assert_int_equal(r, -EBADMSG);
        }
}

static void test_request_body(void **state) {
        char *b = NULL;
        assert_int_equal(oauth_request_body("https://admin.ch-01.luware.cloud/.default", &b), 0);
        assert_string_equal(b, "grant_type=client_credentials&scope=https%3A%2F%2Fadmin.ch-01.luware.cloud%2F.default");
        free(b);
        assert_int_equal(oauth_request_body("a b&c=d+e", &b), 0);
        assert_string_equal(b, "grant_type=client_credentials&scope=a%20b%26c%3Dd%2Be");
        free(b);
        assert_int_equal(oauth_request_body("", &b), -EINVAL);
        assert_int_equal(oauth_request_body(NULL, &b), -EINVAL);
}

static void test_token_request_body(void **state) {
        char *body = NULL;

        assert_int_equal(oauth_assertion_request_body("https://admin.ch-01.luware.cloud/.default", CLIENT,
                                                      "aGVh.Y2xh-_.c2ln", &body), 0);
        assert_string_equal(body, "grant_type=client_credentials&client_id=" CLIENT
                            "&scope=https%3A%2F%2Fadmin.ch-01.luware.cloud%2F.default"
                            "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type"
                            "%3Ajwt-bearer&client_assertion=aGVh.Y2xh-_.c2ln");
        assert_null(strstr(body, "client_secret"));
        free(body);

        body = NULL;
        assert_int_equal(oauth_assertion_request_body("s", CLIENT, "", &body), -EINVAL);
        assert_int_equal(oauth_assertion_request_body("", CLIENT, "a.b.c", &body), -EINVAL);
        assert_int_equal(oauth_assertion_request_body("s", NULL, "a.b.c", &body), -EINVAL);
        assert_null(body);
}

/* ---- Basic credentials ------------------------------------------------------------------------- */

static void check_basic(const char *raw, const char *expected) {
        char *e = NULL;
        assert_int_equal(oauth_basic_credential(raw, &e), 0);
        assert_string_equal(e, expected);
        free(e);
}

/* Form decoding, as the token endpoint does it: '+' is a space, %XX a byte. */
static char *form_decode(const char *s) {
        char *plus = strdup(s), *out;
        for (char *p = plus; *p; p++)
                if (*p == '+')
                        *p = ' ';
        int n = 0;
        char *d = curl_easy_unescape(NULL, plus, 0, &n);
        assert_non_null(d);
        out = strndup(d, (size_t) n);
        curl_free(d);
        free(plus);
        return out;
}

static void test_basic_credential(void **state) {
        /* Everything but the unreserved characters is escaped: the ones Entra would read
         * differently (+ % :), and the ones a strict decoder refuses raw (/ =). */
        check_basic("a+b/c=d%e~f:g", "a%2Bb%2Fc%3Dd%25e~f%3Ag");
        check_basic("AZaz09-._~", "AZaz09-._~");
        check_basic(CLIENT, CLIENT);
        check_basic(" &?#\"\\", "%20%26%3F%23%22%5C");
        check_basic("\xc3\xa9\x7f", "%C3%A9%7F");

        /* Whatever the secret, decoding the encoding gives it back. */
        static const char *const secrets[] = { "+/=%~:", "%2B", "++==", "x:y:z", "~%%41" };
        for (size_t i = 0; i < ELEMENTSOF(secrets); i++) {
                char *e = NULL, *d;
                assert_int_equal(oauth_basic_credential(secrets[i], &e), 0);
                assert_null(strpbrk(e, "+/=:"));
                d = form_decode(e);
                assert_string_equal(d, secrets[i]);
                free(d);
                free(e);
        }

        char *e = (char *) "untouched";
        size_t len;
        char *big = repeat('x', 64 * 1024 + 1, "", &len);
        assert_int_equal(oauth_basic_credential(big, &e), -EINVAL);
        big[64 * 1024] = '\0';
        assert_int_equal(oauth_basic_credential(big, &e), 0);
        assert_int_equal(strlen(e), 64 * 1024);
        free(e);
        free(big);
        e = (char *) "untouched";
        assert_int_equal(oauth_basic_credential("", &e), -EINVAL);
        assert_int_equal(oauth_basic_credential(NULL, &e), -EINVAL);
        assert_string_equal(e, "untouched");
}

/* ---- Retry-After ------------------------------------------------------------------------------- */

static void check_retry(const char *value, uint64_t now, uint64_t expected) {
        uint64_t d = 12345;
        assert_int_equal(parse_retry_after(value, now, &d), 0);
        assert_int_equal(d, expected);
}

static void test_retry_after(void **state) {
        const uint64_t date = UINT64_C(1445412480) * SEC;        /* Wed, 21 Oct 2015 07:28:00 GMT */
        check_retry("120", 0, 120 * SEC);
        check_retry(" 5\t", 0, 5 * SEC);
        check_retry("0", 0, 0);
        check_retry("3600", 0, 3600 * SEC);
        check_retry("7200", 0, 3600 * SEC);
        check_retry("999999999999999999999999999", 0, 3600 * SEC);
        check_retry("Wed, 21 Oct 2015 07:28:00 GMT", date - 30 * SEC, 30 * SEC);
        check_retry("Wednesday, 21-Oct-15 07:28:00 GMT", date - 30 * SEC, 30 * SEC);  /* RFC 850 */
        check_retry("Wed Oct 21 07:28:00 2015", date - 30 * SEC, 30 * SEC);           /* asctime */
        check_retry("Wed, 21 Oct 2015 07:28:00 GMT", date + 30 * SEC, 0);            /* past */
        check_retry("Wed, 21 Oct 2015 07:28:00 GMT", 0, 3600 * SEC);                 /* far ahead */
        check_retry("Fri, 31 Dec 9999 23:59:59 GMT", date, 3600 * SEC);

        const char *bad[] = { "", "   ", "-5", "1.5", "12abc", "soon", "+5" };
        uint64_t d = 12345;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(parse_retry_after(bad[i], 0, &d), -EINVAL);
        assert_int_equal(parse_retry_after(NULL, 0, &d), -EINVAL);
        size_t len;
        char *big = repeat('1', 4096, "", &len);
        assert_int_equal(parse_retry_after(big, 0, &d), -EINVAL);
        free(big);
        assert_int_equal(d, 12345);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_token),
                cmocka_unit_test(test_token_bad),
                cmocka_unit_test(test_token_size),
                cmocka_unit_test(test_request_body),
                cmocka_unit_test(test_token_request_body),
                cmocka_unit_test(test_basic_credential),
                cmocka_unit_test(test_retry_after),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
