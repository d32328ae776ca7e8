/* test_nimbus_api: requests, answer classification (nimbus-sync.yaml(5), RETRIES) and tolerant
 * parsing of the Nimbus answers (the Entra token endpoint's are in test_oauth). Hostile inputs
 * (garbage bytes, NUL bytes, 1 MiB bodies, deep nesting, invalid UTF-8) must end in "unknown" or a
 * clean message, never in a crash or a leak. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>

#include "nimbus_api.h"
#include "util.h"

#define SEC USEC_PER_SEC
#define API "https://admin.ch-01.luware.cloud/api/public-api-next/"

/* Built from bytes, so request tests do not depend on guid_parse(). */
static const Guid GUID_A = { { 0x6f, 0x96, 0x19, 0xff, 0x8b, 0x86, 0xd0, 0x11,
                               0xb4, 0x2d, 0x00, 0xc0, 0x4f, 0xc9, 0x64, 0xff } };
#define GUID_A_TEXT "6f9619ff-8b86-d011-b42d-00c04fc964ff"
static const Guid GUID_B = { { 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x4a, 0x6b,
                               0x8c, 0x7d, 0x8e, 0x9f, 0xa0, 0xb1, 0xc2, 0xd3 } };
#define GUID_B_TEXT "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3"

static uint64_t xorshift(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

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

/* Valid UTF-8 by glibc's decoder, independent of the code under test. */
static bool utf8_valid(const char *s, size_t len) {
        iconv_t cd = iconv_open("UTF-32LE", "UTF-8");
        assert_true(cd != (iconv_t) -1);
        char out[4 * 1024];
        char *in = (char *) s, *o = out;
        size_t inleft = len, outleft = sizeof out;
        size_t r = iconv(cd, &in, &inleft, &o, &outleft);
        iconv_close(cd);
        return r != (size_t) -1 && inleft == 0;
}

/* One clean line: valid UTF-8, no control bytes, no doubled or outer spaces, within the limit. */
static void assert_clean_line(const char *m) {
        size_t n = strlen(m);
        assert_true(n > 0 && n <= NIMBUS_MAX_MESSAGE);
        assert_true(utf8_valid(m, n));
        assert_true(m[0] != ' ' && m[n - 1] != ' ');
        assert_null(strstr(m, "  "));
        for (size_t i = 0; i < n; i++)
                assert_true((unsigned char) m[i] >= 0x20 && (unsigned char) m[i] != 0x7f);
}

/* ---- names and requests ------------------------------------------------------------------------ */

static void test_names(void **state) {
        assert_string_equal(nimbus_call_name(CALL_CREATE), "create");
        assert_string_equal(nimbus_call_name(CALL_COPY), "copy");
        assert_string_equal(nimbus_call_name(CALL_DELETE), "delete");
        assert_string_equal(nimbus_call_name(CALL_GET_USER), "verify");
        assert_string_equal(nimbus_call_name(CALL_LICENSES), "licenses");
        assert_string_equal(outcome_name(OUTCOME_OK), "ok");
        assert_string_equal(outcome_name(OUTCOME_EXISTS), "exists");
        assert_string_equal(outcome_name(OUTCOME_GONE), "gone");
        assert_string_equal(outcome_name(OUTCOME_PERMANENT), "permanent");
}

static void check_request(NimbusCall call, const Guid *id, const Guid *target, const char *url,
                          const char *method, const char *body) {
        char *u = NULL, *b = NULL;
        const char *m = NULL;
        assert_int_equal(nimbus_request_build(call, API, id, target, &u, &m, &b), 0);
        assert_string_equal(u, url);
        assert_string_equal(m, method);
        if (body)
                assert_string_equal(b, body);
        else
                assert_null(b);
        free(u);
        free(b);
}

static void test_requests(void **state) {
        check_request(CALL_CREATE, &GUID_A, &GUID_B, API "user", "POST",
                      "{\"o365Id\":\"" GUID_A_TEXT "\",\"organizationUnitId\":\"" GUID_B_TEXT "\"}");
        check_request(CALL_COPY, &GUID_A, &GUID_B, API "user/copy", "POST",
                      "{\"newO365Id\":\"" GUID_A_TEXT "\",\"sourceO365Id\":\"" GUID_B_TEXT "\"}");
        check_request(CALL_DELETE, &GUID_A, NULL, API "user/" GUID_A_TEXT, "DELETE",
                      "{\"o365Id\":\"" GUID_A_TEXT "\"}");
        check_request(CALL_GET_USER, &GUID_B, NULL, API "user/" GUID_B_TEXT, "GET", NULL);
        check_request(CALL_LICENSES, NULL, NULL, API "user/license-usage", "GET", NULL);
}

static void test_request_errors(void **state) {
        const Guid null_guid = {};
        char *u = (char *) "untouched", *b = (char *) "untouched";
        const char *m = "untouched";

        assert_int_equal(nimbus_request_build(CALL_CREATE, "https://x/api", &GUID_A, &GUID_B, &u, &m, &b), -EINVAL);
        assert_int_equal(nimbus_request_build(CALL_CREATE, NULL, &GUID_A, &GUID_B, &u, &m, &b), -EINVAL);
        assert_int_equal(nimbus_request_build(CALL_CREATE, "", &GUID_A, &GUID_B, &u, &m, &b), -EINVAL);
        assert_int_equal(nimbus_request_build(CALL_CREATE, API, &GUID_A, NULL, &u, &m, &b), -EINVAL);
        assert_int_equal(nimbus_request_build(CALL_COPY, API, NULL, &GUID_B, &u, &m, &b), -EINVAL);
        assert_int_equal(nimbus_request_build(CALL_COPY, API, &GUID_A, &null_guid, &u, &m, &b), -EINVAL);
        assert_int_equal(nimbus_request_build(CALL_DELETE, API, &null_guid, NULL, &u, &m, &b), -EINVAL);
        assert_int_equal(nimbus_request_build(CALL_GET_USER, API, NULL, NULL, &u, &m, &b), -EINVAL);
        assert_int_equal(nimbus_request_build((NimbusCall) 99, API, &GUID_A, &GUID_B, &u, &m, &b), -EINVAL);
        assert_string_equal(u, "untouched");
        assert_string_equal(m, "untouched");
        assert_string_equal(b, "untouched");
}

/* ---- classification ---------------------------------------------------------------------------- */

#define ALL (-1)   /* the row holds for every call */
#define MUT (-2)   /* create, copy and delete */
#define ADD (-3)   /* create and copy */
#define GET (-4)   /* get user and license usage */

static bool row_matches(int row_call, int call) {
        switch (row_call) {
        case ALL: return true;
        case MUT: return call == CALL_CREATE || call == CALL_COPY || call == CALL_DELETE;
        case ADD: return call == CALL_CREATE || call == CALL_COPY;
        case GET: return call == CALL_GET_USER || call == CALL_LICENSES;
        default:  return row_call == call;
        }
}

typedef struct Row {
        int call;
        long status;
        int transport_error;
        const char *body;
        Outcome expected;
} Row;

static const Row rows[] = {
        { ALL, 200, 0, "{}", OUTCOME_OK },
        { ALL, 200, 0, " {\"o365Id\": \"x\"}\r\n", OUTCOME_OK },
        { MUT, 201, 0, NULL, OUTCOME_OK },
        { MUT, 204, 0, NULL, OUTCOME_OK },
        { MUT, 299, 0, NULL, OUTCOME_OK },
        { MUT, 200, 0, " \r\n", OUTCOME_OK },
        { MUT, 200, 0, "\"created\"", OUTCOME_OK },
        { GET, 200, 0, NULL, OUTCOME_NOT_API },
        { GET, 204, 0, NULL, OUTCOME_NOT_API },
        { CALL_GET_USER, 200, 0, "[]", OUTCOME_NOT_API },
        { CALL_LICENSES, 200, 0, "[]", OUTCOME_OK },
        { CALL_LICENSES, 200, 0, "42", OUTCOME_NOT_API },
        /* a proxy's login page, or any other body that is not JSON, is never a success */
        { ALL, 200, 0, "<!DOCTYPE html><html><body>Sign in</body></html>", OUTCOME_NOT_API },
        { ALL, 200, 0, "OK", OUTCOME_NOT_API },
        { ALL, 203, 0, "<html>", OUTCOME_NOT_API },
        /* a body that says the call failed is read as the status it names (400 if none) */
        { ADD, 200, 0, "{\"isSuccess\":false,\"statusCode\":409,\"message\":\"User already exists\"}",
          OUTCOME_EXISTS },
        { ADD, 200, 0, "{\"IsSuccess\":false,\"StatusCode\":\"409\"}", OUTCOME_EXISTS },
        { ADD, 201, 0, "{\"success\":\"False\",\"message\":\"User duplication error\"}", OUTCOME_EXISTS },
        { ALL, 202, 0, "{\"status\":\"Running\",\"succeeded\":false}", OUTCOME_OK },
        { ALL, 200, 0, "{\"success\":false,\"message\":\"SourceO365Id is required\"}", OUTCOME_PERMANENT },
        { ALL, 200, 0, "{\"success\":false,\"statusCode\":200}", OUTCOME_PERMANENT },
        { CALL_DELETE, 200, 0, "{\"is_success\":false,\"status_code\":404}", OUTCOME_GONE },
        { CALL_GET_USER, 200, 0, "{\"isSuccess\":false,\"statusCode\":404}", OUTCOME_GONE },
        { ADD, 200, 0, "{\"isSuccess\":false,\"statusCode\":403,\"message\":\"No Licenses available\"}",
          OUTCOME_NO_LICENSES },
        { ALL, 200, 0, "{\"isSuccess\":false,\"status\":401}", OUTCOME_AUTH },
        { ALL, 200, 0, "{\"isSuccess\":false,\"statusCode\":503}", OUTCOME_TRANSIENT },
        { ALL, 200, 0, "{\"isSuccess\":true,\"statusCode\":409}", OUTCOME_OK },
        { ALL, 200, 0, "{\"status\":\"Active\",\"success\":null}", OUTCOME_OK },
        { ALL, 0, -ECONNRESET, NULL, OUTCOME_TRANSIENT },
        { ALL, 0, -ETIMEDOUT, NULL, OUTCOME_TRANSIENT },
        { ALL, 100, 0, NULL, OUTCOME_TRANSIENT },
        { ALL, 199, 0, NULL, OUTCOME_TRANSIENT },
        { ALL, -1, 0, NULL, OUTCOME_TRANSIENT },
        { ALL, 600, 0, NULL, OUTCOME_TRANSIENT },
        { ALL, 99999, 0, NULL, OUTCOME_TRANSIENT },
        { ALL, 301, 0, NULL, OUTCOME_REDIRECT },
        { ALL, 302, 0, NULL, OUTCOME_REDIRECT },
        { ALL, 304, 0, NULL, OUTCOME_REDIRECT },
        { ALL, 307, 0, NULL, OUTCOME_REDIRECT },
        { ALL, 400, 0, "{\"message\":\"SourceO365Id is required\"}", OUTCOME_PERMANENT },
        { ADD, 400, 0, "{\"message\":\"User already exists\"}", OUTCOME_EXISTS },
        { ADD, 400, 0, "Also relates to user duplication error", OUTCOME_EXISTS },
        { ADD, 400, 0, "{\"error\":\"Bad Request\",\"message\":\"Duplicate user\"}", OUTCOME_EXISTS },
        { GET, 400, 0, "User already exists", OUTCOME_PERMANENT },
        { CALL_DELETE, 400, 0, "User already exists", OUTCOME_PERMANENT },
        { ALL, 401, 0, "Provisioning Api disabled by admin", OUTCOME_AUTH },
        { ALL, 401, 0, NULL, OUTCOME_AUTH },
        { ALL, 403, 0, "{\"message\":\"No Licenses available\"}", OUTCOME_NO_LICENSES },
        { ALL, 403, 0, "not enough LICENSES left", OUTCOME_NO_LICENSES },
        { ALL, 403, 0, "\"License limit reached\"", OUTCOME_NO_LICENSES },
        { ALL, 403, 0, "{\"error\":\"Forbidden\",\"message\":\"No authenticated user\"}", OUTCOME_AUTH },
        { ALL, 403, 0, "No  authenticated\r\nuser", OUTCOME_AUTH },
        { ADD, 403, 0, "{\"message\":\"Organization Unit not allowed\"}", OUTCOME_FORBIDDEN },
        { CALL_DELETE, 403, 0, "{\"message\":\"Organization Unit not allowed\"}", OUTCOME_PERMANENT },
        { GET, 403, 0, "{\"message\":\"Organization Unit not allowed\"}", OUTCOME_PERMANENT },
        /* "licen" outside the message does not count. */
        { ADD, 403, 0, "{\"licenseCount\":0,\"message\":\"Organization Unit not allowed\"}", OUTCOME_FORBIDDEN },
        { ADD, 403, 0, NULL, OUTCOME_FORBIDDEN },
        { CALL_DELETE, 403, 0, NULL, OUTCOME_PERMANENT },
        { GET, 403, 0, NULL, OUTCOME_PERMANENT },
        { CALL_DELETE, 404, 0, NULL, OUTCOME_GONE },
        { CALL_GET_USER, 404, 0, NULL, OUTCOME_GONE },
        { CALL_CREATE, 404, 0, NULL, OUTCOME_PERMANENT },
        { CALL_COPY, 404, 0, "A source user with this SourceO365Id was not found", OUTCOME_PERMANENT },
        { CALL_LICENSES, 404, 0, NULL, OUTCOME_PERMANENT },
        /* a web server's 404 page (api_url at the wrong host), or a proxy's page, says nothing
         * of the user: neither gone nor already there */
        { ALL, 404, 0, "<html><head><title>404 Not Found</title></head></html>", OUTCOME_NOT_API },
        { ALL, 404, 0, "\r\n  <!DOCTYPE html><html></html>", OUTCOME_NOT_API },
        { ALL, 404, 0, "\xEF\xBB\xBF<html><body>Not Found</body></html>", OUTCOME_NOT_API },
        { ALL, 409, 0, "<html>Conflict</html>", OUTCOME_NOT_API },
        { ALL, 400, 0, "<html><body>The page does not exist</body></html>", OUTCOME_NOT_API },
        { CALL_DELETE, 404, 0, "{\"message\":\"User not found\"}", OUTCOME_GONE },
        { CALL_GET_USER, 404, 0, "User not found", OUTCOME_GONE },
        { ALL, 408, 0, NULL, OUTCOME_TRANSIENT },
        { ALL, 429, 0, NULL, OUTCOME_TRANSIENT },
        { CALL_CREATE, 409, 0, "User already exists", OUTCOME_EXISTS },
        { CALL_COPY, 409, 0, NULL, OUTCOME_EXISTS },
        { CALL_DELETE, 409, 0, NULL, OUTCOME_PERMANENT },
        { CALL_GET_USER, 409, 0, NULL, OUTCOME_PERMANENT },
        { CALL_LICENSES, 409, 0, NULL, OUTCOME_PERMANENT },
        { ALL, 405, 0, NULL, OUTCOME_PERMANENT },
        { ALL, 410, 0, NULL, OUTCOME_PERMANENT },
        { ALL, 422, 0, NULL, OUTCOME_PERMANENT },
        { ALL, 499, 0, NULL, OUTCOME_PERMANENT },
        { ALL, 500, 0, "Unable to check configuration", OUTCOME_TRANSIENT },
        { ALL, 501, 0, NULL, OUTCOME_TRANSIENT },
        { ALL, 502, 0, "<html>Bad Gateway</html>", OUTCOME_TRANSIENT },
        { ALL, 503, 0, NULL, OUTCOME_TRANSIENT },
        { ALL, 504, 0, NULL, OUTCOME_TRANSIENT },
        { ALL, 599, 0, NULL, OUTCOME_TRANSIENT },
};

static void test_classify(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(rows); i++)
                for (int call = CALL_CREATE; call <= CALL_LICENSES; call++) {
                        if (!row_matches(rows[i].call, call))
                                continue;
                        const char *b = rows[i].body;
                        Outcome o = nimbus_classify((NimbusCall) call, rows[i].status, rows[i].transport_error,
                                                    b, b ? strlen(b) : 0);
                        if (o != rows[i].expected)
                                fail_msg("row %zu (%s %ld): got %s, want %s", i, nimbus_call_name(call),
                                         rows[i].status, outcome_name(o), outcome_name(rows[i].expected));
                }
}

/* ---- error messages ---------------------------------------------------------------------------- */

static void check_message(long status, const char *body, size_t len, const char *expected) {
        char *m = NULL;
        assert_int_equal(nimbus_error_message(status, body, len, &m), 0);
        assert_string_equal(m, expected);
        free(m);
}
#define MSG(status, body, expected) check_message(status, body, sizeof(body) - 1, expected)

static void test_message_shapes(void **state) {
        MSG(409, "{\"error\":\"Conflict\",\"message\":\"User already exists\"}", "User already exists");
        MSG(401, "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret.\\r\\nTrace ID: 42\"}",
            "AADSTS7000215: Invalid client secret. Trace ID: 42");
        MSG(400, "{\"error\":\"invalid_request\"}", "invalid_request");
        MSG(400, "{\"error\":{\"code\":\"BadRequest\",\"message\":\"nested one\"}}", "nested one");
        MSG(404, "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404}", "Not Found");
        MSG(400, "{\"detail\":\"the detail\"}", "the detail");
        MSG(400, "{\"message\":42,\"error\":[1],\"title\":\"wrong types skipped\"}", "wrong types skipped");
        MSG(400, "{\"message\":\" \\t \",\"detail\":\"blank skipped\"}", "blank skipped");
        MSG(400, "{\"Message\":\"case of the key\"}", "case of the key");
        MSG(500, "\"just a string\"", "just a string");
        MSG(500, "  Unable to check\tconfiguration \n", "Unable to check configuration");
        MSG(500, "{\"code\":7}", "{\"code\":7}");      /* no known field: the text as it is */
        MSG(500, "[1, 2]", "[1, 2]");
        MSG(500, "{\"message\":\"unterminated", "{\"message\":\"unterminated");
        MSG(502, "<html>\n<body>Bad Gateway</body>\n</html>", "<html> <body>Bad Gateway</body> </html>");
        check_message(503, NULL, 0, "HTTP 503");
        check_message(503, "", 0, "HTTP 503");
        MSG(500, " \r\n\t ", "HTTP 500");
        MSG(500, "\"\"", "HTTP 500");
        MSG(0, "", "HTTP 0");
}

static void test_message_bytes(void **state) {
        MSG(500, "abc\0def", "abc def");                            /* NUL inside plain text */
        MSG(500, "\"a\\u0000b\"", "a b");                           /* NUL inside a JSON string */
        MSG(500, "a\x01\x7f\xc2\x85z", "a z");                      /* C0, DEL and C1 controls */
        MSG(500, "caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"); /* valid UTF-8 is kept */
        MSG(500, "hello \xe2\x82", "hello \xef\xbf\xbd\xef\xbf\xbd");     /* invalid tail */
        MSG(500, "x\xc0\xafy", "x\xef\xbf\xbd\xef\xbf\xbdy");             /* overlong '/' */
        MSG(500, "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
        MSG(500, "{\"message\":\"x\xffy\"}", "x\xef\xbf\xbdy");        /* bad byte in JSON */
        MSG(500, "\xef\xbb\xbf{\"message\":\"after a BOM\"}", "after a BOM");
}

static void test_message_garbage(void **state) {
        uint64_t seed = 12345;
        char buf[4096];
        for (int round = 0; round < 200; round++) {
                size_t len = xorshift(&seed) % sizeof buf;
                for (size_t i = 0; i < len; i++)
                        buf[i] = (char) xorshift(&seed);
                char *m = NULL;
                assert_int_equal(nimbus_error_message(418, buf, len, &m), 0);
                assert_clean_line(m);
                free(m);
        }
}

static void test_message_cut(void **state) {
        size_t len;
        char *big = repeat('a', NIMBUS_MAX_BODY, "", &len);            /* 1 MiB of 'a' */
        char *m = NULL;
        assert_int_equal(nimbus_error_message(500, big, len, &m), 0);
        assert_int_equal(strlen(m), NIMBUS_MAX_MESSAGE);
        assert_int_equal(strspn(m, "a"), NIMBUS_MAX_MESSAGE);
        free(m);
        free(big);

        /* A 2-byte character that does not fit whole is left out, one that fits is kept. */
        big = repeat('a', NIMBUS_MAX_MESSAGE - 1, "\xc3\xa9zzz", &len);
        assert_int_equal(nimbus_error_message(500, big, len, &m), 0);
        assert_int_equal(strlen(m), NIMBUS_MAX_MESSAGE - 1);
        free(m);
        free(big);
        big = repeat('a', NIMBUS_MAX_MESSAGE - 2, "\xc3\xa9zzz", &len);
        assert_int_equal(nimbus_error_message(500, big, len, &m), 0);
        assert_int_equal(strlen(m), NIMBUS_MAX_MESSAGE);
        assert_string_equal(m + NIMBUS_MAX_MESSAGE - 2, "\xc3\xa9");
        free(m);
        free(big);

        /* A huge JSON message is cut just the same. */
        big = repeat('b', 100000, "\"}", &len);
        memcpy(big, "{\"message\":\"", 12);
        assert_int_equal(nimbus_error_message(500, big, len, &m), 0);
        assert_int_equal(strlen(m), NIMBUS_MAX_MESSAGE);
        assert_int_equal(strspn(m, "b"), NIMBUS_MAX_MESSAGE);
        free(m);
        free(big);
}

static void test_message_deep(void **state) {
        size_t len;
        char *deep = repeat('[', 10000, "", &len);
        char *m = NULL;
        assert_int_equal(nimbus_error_message(500, deep, len, &m), 0);
        assert_int_equal(strspn(m, "["), NIMBUS_MAX_MESSAGE);       /* shown as text */
        free(m);
        free(deep);
}

/* ---- user details ------------------------------------------------------------------------------ */

#define PARSE_USER(body, u) nimbus_parse_user(body, sizeof(body) - 1, u)

static void test_user_full(void **state) {
        NimbusUser u;
        assert_int_equal(PARSE_USER("{\"o365Id\":\"" GUID_A_TEXT "\",\"organizationUnitId\":\"{0A1B2C3D-4E5F-4A6B-8C7D-8E9FA0B1C2D3}\","
                                    "\"userAssignmentType\":\"SkillBased\",\"licenses\":[\"Enterprise\",\"Contact Center\"],"
                                    "\"unknown\":{\"deep\":[1,2,{\"x\":null}]},\"displayName\":\"A. User\"}", &u), 0);
        assert_true(guid_eq(&u.o365_id, &GUID_A));
        assert_true(guid_eq(&u.ou, &GUID_B));
        assert_string_equal(u.assignment_type, "SkillBased");
        assert_string_equal(u.licenses, "Enterprise,Contact Center");
        nimbus_user_clear(&u);
        assert_null(u.licenses);
        nimbus_user_clear(&u);
        nimbus_user_clear(NULL);
}

static void test_user_license_shapes(void **state) {
        NimbusUser u;
        assert_int_equal(PARSE_USER("{\"licenses\":[{\"name\":\"A\"},{\"name\":\"B,C\"},{\"id\":1},5,null,\"D\\nE\"]}", &u), 0);
        assert_string_equal(u.licenses, "A,B C,D E");
        nimbus_user_clear(&u);
        assert_int_equal(PARSE_USER("{\"licenses\":[]}", &u), 0);
        assert_string_equal(u.licenses, "");                        /* known: none */
        nimbus_user_clear(&u);
}

static void test_user_partial(void **state) {
        NimbusUser u;
        assert_int_equal(PARSE_USER("{}", &u), 0);
        assert_true(guid_is_null(&u.o365_id));
        assert_true(guid_is_null(&u.ou));
        assert_string_equal(u.assignment_type, "");
        assert_null(u.licenses);
        nimbus_user_clear(&u);

        assert_int_equal(PARSE_USER("{\"O365ID\":\"" GUID_B_TEXT "\",\"UserAssignmentType\":\"MsTeams\"}", &u), 0);
        assert_true(guid_eq(&u.o365_id, &GUID_B));
        assert_string_equal(u.assignment_type, "MsTeams");
        nimbus_user_clear(&u);

        /* snake_case spelling of the same fields */
        assert_int_equal(PARSE_USER("{\"o365_id\":\"" GUID_A_TEXT "\",\"organization_unit_id\":\"" GUID_B_TEXT
                                    "\",\"user_assignment_type\":\"SkillBased\"}", &u), 0);
        assert_true(guid_eq(&u.o365_id, &GUID_A));
        assert_true(guid_eq(&u.ou, &GUID_B));
        assert_string_equal(u.assignment_type, "SkillBased");
        nimbus_user_clear(&u);
}

/* An answer wrapped in a result object is read inside it; only a success flag makes it one. */
static void test_user_wrapped(void **state) {
        NimbusUser u;
        assert_int_equal(PARSE_USER("{\"isSuccess\":true,\"statusCode\":200,\"data\":{\"o365Id\":\"" GUID_A_TEXT
                                    "\",\"organizationUnitId\":\"" GUID_B_TEXT "\"}}", &u), 0);
        assert_true(guid_eq(&u.o365_id, &GUID_A));
        assert_true(guid_eq(&u.ou, &GUID_B));
        nimbus_user_clear(&u);

        assert_int_equal(PARSE_USER("{\"Success\":\"true\",\"Result\":{\"O365Id\":\"" GUID_B_TEXT "\"}}", &u), 0);
        assert_true(guid_eq(&u.o365_id, &GUID_B));
        nimbus_user_clear(&u);

        /* no success flag: "data" is just a member of the user */
        assert_int_equal(PARSE_USER("{\"o365Id\":\"" GUID_A_TEXT "\",\"data\":{\"o365Id\":\"" GUID_B_TEXT "\"}}", &u), 0);
        assert_true(guid_eq(&u.o365_id, &GUID_A));
        nimbus_user_clear(&u);
}

static void test_user_is_another(void **state) {
        static const char a[] = "{\"o365Id\":\"" GUID_A_TEXT "\"}";
        static const char wrapped_b[] = "{\"isSuccess\":true,\"data\":{\"o365Id\":\"" GUID_B_TEXT "\"}}";

        assert_false(nimbus_user_is_another(&GUID_A, a, strlen(a)));
        assert_true(nimbus_user_is_another(&GUID_B, a, strlen(a)));
        assert_true(nimbus_user_is_another(&GUID_A, wrapped_b, strlen(wrapped_b)));
        assert_false(nimbus_user_is_another(&GUID_A, "{}", 2));           /* names nobody */
        assert_false(nimbus_user_is_another(&GUID_A, "<html>", 6));       /* not a user answer */
}

static void test_user_wrong_types(void **state) {
        NimbusUser u;
        assert_int_equal(PARSE_USER("{\"o365Id\":5,\"organizationUnitId\":\"not-a-guid\",\"userAssignmentType\":7,"
                                    "\"licenses\":\"Enterprise\"}", &u), 0);
        assert_true(guid_is_null(&u.o365_id));
        assert_true(guid_is_null(&u.ou));
        assert_string_equal(u.assignment_type, "");
        assert_null(u.licenses);
        nimbus_user_clear(&u);

        assert_int_equal(PARSE_USER("{\"o365Id\":\"" GUID_A_TEXT "\\u0000\",\"userAssignmentType\":\"Skill\\nBased\"}", &u), 0);
        assert_true(guid_is_null(&u.o365_id));                       /* NUL after the GUID */
        assert_string_equal(u.assignment_type, "");
        nimbus_user_clear(&u);

        assert_int_equal(PARSE_USER("{\"userAssignmentType\":\"Skill\\u0000Based\"}", &u), 0);
        assert_string_equal(u.assignment_type, "");
        nimbus_user_clear(&u);

        assert_int_equal(PARSE_USER("{\"userAssignmentType\":\"0123456789012345678901234567890123456789\"}", &u), 0);
        assert_string_equal(u.assignment_type, "");                  /* too long to be a type */
        nimbus_user_clear(&u);
}

static void test_user_not_json(void **state) {
        const char *bad[] = { "", "<html>", "[]", "\"user\"", "42", "null", "{} x", "{\"o365Id\":",
                              "{\"a\":1}{\"b\":2}", "{\"a\":1,}", "\xef\xbb\xbf" };
        NimbusUser u = { .licenses = (char *) "untouched" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(nimbus_parse_user(bad[i], strlen(bad[i]), &u), -EBADMSG);
        assert_int_equal(nimbus_parse_user(NULL, 0, &u), -EBADMSG);
        assert_int_equal(nimbus_parse_user("{}\0", 3, &u), -EBADMSG);     /* NUL after the value */

        size_t len;
        char *deep = repeat('[', 10000, "", &len);
        assert_int_equal(nimbus_parse_user(deep, len, &u), -EBADMSG);
        free(deep);
        deep = repeat('{', 10000, "", &len);
        for (size_t i = 1; i < len; i += 2)
                deep[i] = ' ';
        assert_int_equal(nimbus_parse_user(deep, len, &u), -EBADMSG);
        free(deep);
        assert_string_equal(u.licenses, "untouched");
}

/* Bodies beyond NIMBUS_MAX_BODY are refused even if they are valid JSON. */
static void test_user_size_limit(void **state) {
        NimbusUser u;
        size_t len;
        char *body = repeat(' ', NIMBUS_MAX_BODY - 2, "}", &len);
        body[0] = '{';
        assert_int_equal(nimbus_parse_user(body, len, &u), 0);
        nimbus_user_clear(&u);
        free(body);
        body = repeat(' ', NIMBUS_MAX_BODY - 1, "}", &len);
        body[0] = '{';
        assert_int_equal(nimbus_parse_user(body, len, &u), 0);     /* exactly the limit */
        nimbus_user_clear(&u);
        free(body);
        body = repeat(' ', NIMBUS_MAX_BODY, "}", &len);
        body[0] = '{';
        assert_int_equal(nimbus_parse_user(body, len, &u), -EBADMSG);
        free(body);
}

static void test_user_bad_bytes_elsewhere(void **state) {
        NimbusUser u;
        /* Invalid UTF-8 in a field we do not use costs nothing; in a name it is replaced. */
        assert_int_equal(PARSE_USER("{\"displayName\":\"\xff\xfe\",\"o365Id\":\"" GUID_A_TEXT "\","
                                    "\"licenses\":[\"L\xc3\"]}", &u), 0);
        assert_true(guid_eq(&u.o365_id, &GUID_A));
        assert_string_equal(u.licenses, "L\xef\xbf\xbd");
        nimbus_user_clear(&u);
}

static void test_user_many_licenses(void **state) {
        size_t len, n = 2000, o;
        char *body = malloc(16 + n * 6);
        assert_non_null(body);
        o = (size_t) sprintf(body, "{\"licenses\":[");
        for (size_t i = 0; i < n; i++)
                o += (size_t) sprintf(body + o, "%s\"L%zu\"", i ? "," : "", i % 10);
        o += (size_t) sprintf(body + o, "]}");
        len = o;

        NimbusUser u;
        assert_int_equal(nimbus_parse_user(body, len, &u), 0);
        size_t commas = 0;
        for (const char *c = u.licenses; *c; c++)
                commas += *c == ',';
        assert_int_equal(commas + 1, 1000);
        nimbus_user_clear(&u);
        free(body);
}

/* ---- license usage ----------------------------------------------------------------------------- */

#define PARSE_LIC(body, l, n) nimbus_parse_licenses(body, sizeof(body) - 1, l, n)

static void test_licenses(void **state) {
        NimbusLicense *l = NULL;
        size_t n = 0;
        assert_int_equal(PARSE_LIC("{\"licenses\":[{\"name\":\"Enterprise\",\"total\":10,\"used\":\"7\",\"available\":3},"
                                   "{\"name\":\"Contact Center\",\"total\":\"x\",\"used\":-5,\"available\":1.0,\"extra\":[]},"
                                   "{\"total\":\"99999999999999999999\",\"used\":1e30,\"available\":2.5},"
                                   "\"Advanced\",7,null],\"other\":1}", &l, &n), 0);
        assert_int_equal(n, 4);
        assert_string_equal(l[0].name, "Enterprise");
        assert_int_equal(l[0].total, 10);
        assert_int_equal(l[0].used, 7);
        assert_int_equal(l[0].available, 3);
        assert_string_equal(l[1].name, "Contact Center");
        assert_int_equal(l[1].total, -1);
        assert_int_equal(l[1].used, -1);
        assert_int_equal(l[1].available, 1);
        assert_string_equal(l[2].name, "");
        assert_int_equal(l[2].total, -1);
        assert_int_equal(l[2].used, -1);
        assert_int_equal(l[2].available, -1);
        assert_string_equal(l[3].name, "Advanced");
        assert_int_equal(l[3].total, -1);
        nimbus_licenses_free(l, n);
}

static void test_licenses_bare_and_empty(void **state) {
        NimbusLicense *l = NULL;
        size_t n = 99;
        assert_int_equal(PARSE_LIC("[{\"Name\":\"Enterprise\",\"Total\":5,\"Used\":5,\"Available\":0}]", &l, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(l[0].name, "Enterprise");
        assert_int_equal(l[0].available, 0);
        nimbus_licenses_free(l, n);

        assert_int_equal(PARSE_LIC("{\"licenses\":[]}", &l, &n), 0);
        assert_int_equal(n, 0);
        assert_null(l);
        nimbus_licenses_free(NULL, 0);

        /* wrapped in a result object */
        assert_int_equal(PARSE_LIC("{\"isSuccess\":true,\"data\":[{\"name\":\"Enterprise\",\"available\":2}]}",
                                   &l, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(l[0].available, 2);
        nimbus_licenses_free(l, n);
}

static void test_licenses_bad(void **state) {
        const char *bad[] = { "", "{}", "{\"licenses\":{}}", "{\"licenses\":\"none\"}", "\"x\"",
                              "Unauthorized", "[{\"name\":\"A\"}", "[] []" };
        NimbusLicense *l = (NimbusLicense *) &l;
        size_t n = 99;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(nimbus_parse_licenses(bad[i], strlen(bad[i]), &l, &n), -EBADMSG);
        size_t len;
        char *deep = repeat('[', 10000, "", &len);
        assert_int_equal(nimbus_parse_licenses(deep, len, &l, &n), -EBADMSG);
        free(deep);
        assert_true(l == (NimbusLicense *) &l && n == 99);
}

static void test_licenses_capped(void **state) {
        size_t n = 1500, o;
        char *body = malloc(2 + n * 16);
        assert_non_null(body);
        o = (size_t) sprintf(body, "[");
        for (size_t i = 0; i < n; i++)
                o += (size_t) sprintf(body + o, "%s{\"name\":\"L%zu\"}", i ? "," : "", i % 100);
        o += (size_t) sprintf(body + o, "]");

        NimbusLicense *l = NULL;
        size_t got = 0;
        assert_int_equal(nimbus_parse_licenses(body, o, &l, &got), 0);
        assert_int_equal(got, 1000);
        assert_string_equal(l[999].name, "L99");
        nimbus_licenses_free(l, got);
        free(body);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_requests),
                cmocka_unit_test(test_request_errors),
                cmocka_unit_test(test_classify),
                cmocka_unit_test(test_message_shapes),
                cmocka_unit_test(test_message_bytes),
                cmocka_unit_test(test_message_garbage),
                cmocka_unit_test(test_message_cut),
                cmocka_unit_test(test_message_deep),
                cmocka_unit_test(test_user_full),
                cmocka_unit_test(test_user_license_shapes),
                cmocka_unit_test(test_user_partial),
                cmocka_unit_test(test_user_wrapped),
                cmocka_unit_test(test_user_is_another),
                cmocka_unit_test(test_user_wrong_types),
                cmocka_unit_test(test_user_not_json),
                cmocka_unit_test(test_user_size_limit),
                cmocka_unit_test(test_user_bad_bytes_elsewhere),
                cmocka_unit_test(test_user_many_licenses),
                cmocka_unit_test(test_licenses),
                cmocka_unit_test(test_licenses_bare_and_empty),
                cmocka_unit_test(test_licenses_bad),
                cmocka_unit_test(test_licenses_capped),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
