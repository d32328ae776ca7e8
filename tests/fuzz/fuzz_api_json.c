/* fuzz_api_json: the answers a server (or anything posing as one) sends us, through the tolerant
 * readers of nimbus_api.h. The first input byte picks the reader, the rest is the body:
 *   0 token answer      1 user details    2 license usage
 *   3 error message and 403 classification                 4 Retry-After header value
 * Whatever the bytes, nothing may crash or leak, and what the readers hand on (a token for an
 * Authorization header, names and messages for logs) must keep nimbus_api.h's promises. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "nimbus_api.h"
#include "oauth.h"
#include "util.h"

#define TOKEN_LIMIT (16 * 1024)       /* nimbus_api.c's TOKEN_MAX */
#define EXPIRES_LIMIT_SEC 86400       /* nimbus_api.c's EXPIRES_MAX_SEC */
#define LICENSES_LIMIT 1000
#define RETRY_AFTER_LIMIT_SEC 3600

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF) with no C0 control
 * character or DEL: text that is safe in one log line. */
static int is_clean_text(const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        while (*p) {
                size_t n = *p < 0x80 ? 1 : *p >= 0xc2 && *p <= 0xdf ? 2 : *p >= 0xe0 && *p <= 0xef ? 3 :
                           *p >= 0xf0 && *p <= 0xf4 ? 4 : 0;
                uint32_t cp;

                if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f)))
                        return 0;
                cp = n == 1 ? *p : *p & (0x7f >> n);
                for (size_t i = 1; i < n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return 0;
                        cp = cp << 6 | (p[i] & 0x3f);
                }
                if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                        return 0;
                p += n;
        }
        return 1;
}

static void fuzz_token(const char *body, size_t len) {
        char *token = NULL;
        uint64_t expires = 0;

        if (oauth_parse_token(body, len, &token, &expires) < 0)
                return;
        FUZZ_CHECK(token && token[0] && strlen(token) <= TOKEN_LIMIT);
        for (const unsigned char *p = (const unsigned char *) token; *p; p++)
                FUZZ_CHECK(*p > 0x20 && *p < 0x7f); /* nothing that could split a header */
        FUZZ_CHECK(expires >= USEC_PER_SEC && expires <= EXPIRES_LIMIT_SEC * USEC_PER_SEC);
        free(token);
}

static void fuzz_user(const char *body, size_t len) {
        NimbusUser u = { 0 };
        int k;

        k = nimbus_parse_user(body, len, &u);
        FUZZ_CHECK(k == 0 || k == -EBADMSG || k == -ENOMEM);
        FUZZ_CHECK(memchr(u.assignment_type, '\0', sizeof u.assignment_type));
        FUZZ_CHECK(is_clean_text(u.assignment_type) && !strchr(u.assignment_type, ' '));
        if (u.licenses) {
                size_t n = strlen(u.licenses);

                FUZZ_CHECK(k == 0 && is_clean_text(u.licenses));
                FUZZ_CHECK(n == 0 || (u.licenses[0] != ',' && u.licenses[n - 1] != ','));
                FUZZ_CHECK(!strstr(u.licenses, ",,"));
        }
        nimbus_user_clear(&u);
}

static void fuzz_licenses(const char *body, size_t len) {
        NimbusLicense *l = NULL;
        size_t n = 0;
        int k;

        k = nimbus_parse_licenses(body, len, &l, &n);
        FUZZ_CHECK(k == 0 || k == -EBADMSG || k == -ENOMEM);
        if (k < 0)
                return;
        FUZZ_CHECK(n <= LICENSES_LIMIT && (n == 0) == (l == NULL));
        for (size_t i = 0; i < n; i++) {
                FUZZ_CHECK(l[i].name && is_clean_text(l[i].name));
                FUZZ_CHECK(l[i].total >= -1 && l[i].used >= -1 && l[i].available >= -1);
        }
        nimbus_licenses_free(l, n);
}

static void fuzz_error(const char *body, size_t len) {
        static const NimbusCall calls[] = { CALL_CREATE, CALL_COPY, CALL_DELETE, CALL_GET_USER, CALL_LICENSES };
        char *m = NULL;
        size_t n;

        FUZZ_CHECK(nimbus_error_message(403, body, len, &m) == 0);
        n = strlen(m);
        FUZZ_CHECK(n > 0 && n <= NIMBUS_MAX_MESSAGE && is_clean_text(m));
        FUZZ_CHECK(m[0] != ' ' && m[n - 1] != ' ');
        free(m);

        for (size_t i = 0; i < ELEMENTSOF(calls); i++) {
                Outcome o = nimbus_classify(calls[i], 403, 0, body, len);

                FUZZ_CHECK(o == OUTCOME_NO_LICENSES || o == OUTCOME_AUTH || o == OUTCOME_PERMANENT ||
                           o == OUTCOME_FORBIDDEN);
        }
}

static void fuzz_retry_after(const char *value) {
        const uint64_t now = UINT64_C(1700000000) * USEC_PER_SEC;
        uint64_t delay = UINT64_MAX;

        if (parse_retry_after(value, now, &delay) == 0)
                FUZZ_CHECK(delay <= RETRY_AFTER_LIMIT_SEC * USEC_PER_SEC);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *body;

        if (size == 0)
                return 0;
        /* Bodies are not NUL-terminated, as they come from the transport; a header value is. */
        body = fuzz_dup(data + 1, size - 1, data[0] % 5 == 4);
        switch (data[0] % 5) {
        case 0: fuzz_token(body, size - 1); break;
        case 1: fuzz_user(body, size - 1); break;
        case 2: fuzz_licenses(body, size - 1); break;
        case 3: fuzz_error(body, size - 1); break;
        default: fuzz_retry_after(body); break;
        }
        free(body);
        return 0;
}
