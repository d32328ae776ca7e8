/* test_doctor: the pure judgements of `doctor` and `--raw`, over tables: the other host the API
 * may answer at, whether an answer came from the API, the fields of an answer the product did
 * not expect, and raw answers with their secrets redacted. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"
#include "util.h"

static void test_alternative_url(void **state) {
        static const struct {
                const char *url;
                int r;
                const char *alt;
        } cases[] = {
                { "https://admin.ch-01.luware.cloud/api/public-api-next/", 0,
                  "https://portal.ch-01.luware.cloud/api/public-api-next/" },
                { "https://portal.ch-01.luware.cloud/api/public-api-next/", 0,
                  "https://admin.ch-01.luware.cloud/api/public-api-next/" },
                { "https://admin.use-01.luware.cloud/.default", 0, "https://portal.use-01.luware.cloud/.default" },
                { "https://ADMIN.dewe-01.luware.cloud/", 0, "https://portal.dewe-01.luware.cloud/" },
                { "http://admin.localhost:8080/api/public-api-next/", 0,
                  "http://portal.localhost:8080/api/public-api-next/" },
                { "https://administrator.example.com/", -ENOENT, NULL },
                { "https://api.admin.example.com/", -ENOENT, NULL },
                { "https://127.0.0.1:8443/api/public-api-next/", -ENOENT, NULL },
                { "http://localhost:8080/", -ENOENT, NULL },
                { "not a url", -EINVAL, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *alt = NULL;
                int r = doctor_alternative_url(cases[i].url, &alt);

                if (r != cases[i].r || !streq_ptr(alt, cases[i].alt))
                        fail_msg("%s: got %d %s, expected %d %s", cases[i].url, r, alt ? alt : "(null)",
                                 cases[i].r, cases[i].alt ? cases[i].alt : "(null)");
                free(alt);
        }
}

static void test_api_verdict(void **state) {
        static const struct {
                long status;
                int error;
                const char *body;
                ApiVerdict verdict;
        } cases[] = {
                { 200, 0, "{\"licenses\": []}", API_ANSWERS },
                { 200, 0, " [ ] \n", API_ANSWERS },
                { 200, 0, "<html><body>Sign in</body></html>", API_ABSENT },   /* login or proxy page */
                { 200, 0, "", API_ABSENT },
                { 200, 0, "ok", API_ABSENT },
                { 200, 0, "{\"licenses\": []} trailing", API_ABSENT },
                { 204, 0, "", API_ABSENT },
                { 301, 0, "", API_ABSENT },
                { 302, 0, "{}", API_ABSENT },
                { 404, 0, "{\"error\": \"NotFound\"}", API_ABSENT },
                { 404, 0, "<!DOCTYPE html><title>404</title>", API_ABSENT },
                { 401, 0, "", API_REFUSES },                                     /* WWW-Authenticate only */
                { 401, 0, "{\"message\": \"Provisioning Api disabled by admin\"}", API_REFUSES },
                { 401, 0, "No app permission found for app id", API_REFUSES },
                { 403, 0, "\n  <html>Forbidden by the proxy</html>", API_ABSENT },
                { 400, 0, "{\"error\": \"BadRequest\"}", API_REFUSES },
                { 408, 0, "", API_UNAVAILABLE },
                { 429, 0, "{}", API_UNAVAILABLE },
                { 500, 0, "{\"message\": \"Unable to check configuration\"}", API_UNAVAILABLE },
                { 503, 0, "<html>down</html>", API_UNAVAILABLE },
                { 0, -EHOSTUNREACH, "", API_ABSENT },
                { 0, -ECONNREFUSED, "", API_ABSENT },
                { 0, -ETIMEDOUT, "", API_UNAVAILABLE },
                { 0, -ECONNRESET, "", API_UNAVAILABLE },
                { 0, -EKEYREJECTED, "", API_UNTRUSTED },
                { 0, -ENOKEY, "", API_UNTRUSTED },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                ApiVerdict v = doctor_api_verdict(cases[i].status, cases[i].error, cases[i].body,
                                                  strlen(cases[i].body));

                if (v != cases[i].verdict)
                        fail_msg("%ld %d \"%s\": got %d, expected %d", cases[i].status, cases[i].error,
                                 cases[i].body, v, cases[i].verdict);
        }
        assert_non_null(strstr(doctor_transport_hint(-EKEYREJECTED), "set ca_file"));
        assert_non_null(strstr(doctor_transport_hint(-EHOSTUNREACH), "DNS"));
}

static void test_answer_summary(void **state) {
        static const struct {
                NimbusResult res;
                const char *summary;
        } cases[] = {
                { { .http_status = 0, .message = "Could not resolve host: admin.x", .body = "" },
                  "no answer: Could not resolve host: admin.x" },
                { { .http_status = 302, .message = "HTTP 302", .body = "" },
                  "a redirect, HTTP 302; doctor --raw shows where to" },
                { { .http_status = 200, .message = "", .body = "<html>Sign in</html>", .body_len = 20 },
                  "HTTP 200, an HTML page: a web server or a proxy, not the API" },
                { { .http_status = 404, .message = "<html>x</html>", .body = " <html>x</html>", .body_len = 15 },
                  "HTTP 404, an HTML page: a web server or a proxy, not the API" },
                { { .http_status = 200, .message = "", .body = "ok", .body_len = 2 },
                  "HTTP 200, but not the API's JSON" },
                { { .http_status = 401, .message = "Provisioning Api disabled by admin", .body = "{}", .body_len = 2 },
                  "HTTP 401: Provisioning Api disabled by admin" },
        };
        char buf[256];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                doctor_answer_summary(&cases[i].res, buf, sizeof buf);
                assert_string_equal(buf, cases[i].summary);
        }
}

static void test_hints(void **state) {
        static const struct {
                const char *message;
                const char *hint;   /* a part of it */
        } token[] = {
                { "AADSTS7000215: Invalid client secret provided.", "client secret is wrong" },
                { "aadsts7000222: The provided client secret keys are expired.", "has expired" },
                { "AADSTS700016: Application with identifier 'x' was not found", "check client_id" },
                { "AADSTS90002: Tenant 'x' not found.", "check tenant_id" },
                { "AADSTS500011: The resource principal named https://admin.ch-01.luware.cloud was not found",
                  "check cluster" },
                { "cannot load ca_file /etc/x.pem: No such file or directory", "fix ca_file" },
                { "SSL certificate problem: unable to get local issuer certificate", "set ca_file" },
                { "invalid_client", "check tenant_id, client_id" },
                { NULL, "check tenant_id, client_id" },
        };
        static const struct {
                long status;
                const char *message;
                const char *hint;
        } refusal[] = {
                { 401, "Provisioning Api disabled by admin", "enable the Public API" },
                { 401, "No app permission found for app id", "Application Permissions" },
                { 401, "Role missing", "Provisioning.User.Create" },
                { 401, "", "check scope" },
                { 403, "Forbidden", "Application Permissions" },
        };

        for (size_t i = 0; i < ELEMENTSOF(token); i++)
                if (!strstr(doctor_token_hint(token[i].message), token[i].hint))
                        fail_msg("%s: %s", token[i].message, doctor_token_hint(token[i].message));
        for (size_t i = 0; i < ELEMENTSOF(refusal); i++)
                if (!strstr(doctor_refusal_hint(refusal[i].status, refusal[i].message), refusal[i].hint))
                        fail_msg("%s: %s", refusal[i].message, doctor_refusal_hint(refusal[i].status,
                                                                                     refusal[i].message));
}

typedef int (*ShapeFn)(const char *body, size_t len, ShapeReport *ret);

static void check_shape(ShapeFn fn, const char *body, int r, const char *unexpected, const char *missing) {
        ShapeReport rep = { 0 };
        int k = fn(body, strlen(body), &rep);

        if (k != r || !streq_ptr(rep.unexpected, unexpected) || !streq_ptr(rep.missing, missing))
                fail_msg("%s: got %d unexpected=%s missing=%s", body, k, rep.unexpected ?: "(null)",
                         rep.missing ?: "(null)");
        shape_report_clear(&rep);
}

static void test_user_shape(void **state) {
        static const struct {
                const char *body;
                int r;
                const char *unexpected, *missing;
        } cases[] = {
                { "{\"o365Id\": \"a\", \"organizationUnitId\": \"b\", \"userAssignmentType\": \"MsTeams\", "
                  "\"licenses\": []}", 0, NULL, NULL },
                /* The product reads field names ignoring case and '_': so does this check. */
                { "{\"O365ID\": \"a\", \"OrganizationUnitId\": \"b\", \"userassignmenttype\": \"x\", "
                  "\"Licenses\": []}", 0, NULL, NULL },
                { "{\"o365_id\": \"a\", \"organization_unit_id\": \"b\", \"user_assignment_type\": \"x\", "
                  "\"licenses\": []}", 0, NULL, NULL },
                { "{\"o365Id\": \"a\", \"ouId\": \"b\", \"userAssignmentType\": \"x\", \"licenses\": [], "
                  "\"displayName\": \"Ada\"}", 0, "ouId, displayName", "organizationUnitId" },
                { "{}", 0, NULL, "o365Id, organizationUnitId, userAssignmentType, licenses" },
                { "{\"bad\\u001b[31mkey\": 1, \"o365Id\": 1, \"organizationUnitId\": 1, "
                  "\"userAssignmentType\": 1, \"licenses\": 1}", 0, "bad?[31mkey", NULL },
                { "[]", -EBADMSG, NULL, NULL },
                { "<html></html>", -EBADMSG, NULL, NULL },
                { "", -EBADMSG, NULL, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                check_shape(doctor_user_shape, cases[i].body, cases[i].r, cases[i].unexpected, cases[i].missing);
}

static void test_license_shape(void **state) {
        static const struct {
                const char *body;
                int r;
                const char *unexpected, *missing;
        } cases[] = {
                { "{\"licenses\": [{\"name\": \"Nimbus\", \"total\": 5, \"used\": 1, \"available\": 4}]}",
                  0, NULL, NULL },
                { "[{\"Name\": \"Nimbus\", \"Total\": 5, \"Used\": 1, \"Available\": 4}]", 0, NULL, NULL },
                { "{\"licenses\": []}", 0, NULL, NULL },
                { "{\"licenses\": [{\"name\": \"A\", \"total\": 5, \"used\": 1}, "
                  "{\"name\": \"B\", \"total\": 5, \"used\": 1}]}", 0, NULL, "licenses[].available" },
                { "[{\"sku\": \"A\", \"assigned\": 3, \"purchased\": 5}]", 0, "[].sku, [].assigned, [].purchased",
                  "[].name, [].total, [].used, [].available" },
                { "{\"items\": [], \"count\": 0}", 0, "items, count", "licenses" },
                { "{\"licenses\": 3}", 0, "licenses (not a list)", NULL },
                { "{\"licenses\": [1, {\"name\": \"A\", \"total\": 1, \"used\": 1, \"available\": 0}]}", 0,
                  "licenses[].(an entry that is not an object)", NULL },
                { "Forbidden", -EBADMSG, NULL, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                check_shape(doctor_license_shape, cases[i].body, cases[i].r, cases[i].unexpected,
                            cases[i].missing);
}

/* Many unexpected names: ten are listed, then "...". */
static void test_shape_is_bounded(void **state) {
        char body[2048] = "{";
        ShapeReport rep = { 0 };

        for (int i = 0; i < 40; i++)
                snprintf(body + strlen(body), sizeof body - strlen(body), "%s\"field%02d\": %d", i ? ", " : "", i, i);
        strcat(body, "}");
        assert_int_equal(doctor_user_shape(body, strlen(body), &rep), 0);
        assert_string_equal(rep.unexpected, "field00, field01, field02, field03, field04, field05, field06, "
                            "field07, field08, field09, ...");
        shape_report_clear(&rep);
}

static char *format(const NimbusRaw *raw) {
        char *s = NULL;

        assert_int_equal(doctor_format_raw(raw, &s), 0);
        return s;
}

#define TOKEN_VALUE "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.secret-part.sig"

static void test_raw_redacts_tokens(void **state) {
        const char *headers = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Set-Cookie: fpc=AbC123; path=/\r\nX-Ms-Request-Id: 42\r\n\r\n";
        const char *body = "{\"token_type\": \"Bearer\", \"expires_in\": 3599, \"access_token\": \""
                           TOKEN_VALUE "\", \"nested\": [{\"refresh_token\": \"r-secret-part\"}]}";
        NimbusRaw raw = { .what = "token", .method = "POST", .url = "https://login.example/t/oauth2/v2.0/token",
                          .status = 200, .headers = headers, .headers_len = strlen(headers),
                          .body = body, .body_len = strlen(body) };
        char *s = format(&raw);

        assert_null(strstr(s, "secret-part"));   /* both tokens, the nested one too */
        assert_null(strstr(s, "AbC123"));
        assert_non_null(strstr(s, "> POST https://login.example/t/oauth2/v2.0/token\n< HTTP/1.1 200 OK\n"
                                  "< Content-Type: application/json\n< Set-Cookie: [redacted]\n"
                                  "< X-Ms-Request-Id: 42\n<\n"));
        assert_non_null(strstr(s, "\"access_token\": \"[redacted]\""));
        assert_non_null(strstr(s, "\"expires_in\": 3599"));
        assert_non_null(strstr(s, "\"token_type\": \"Bearer\""));
        assert_null(strchr(s, '\r'));
        free(s);
}

static void test_raw_keeps_other_answers_as_they_came(void **state) {
        const char *headers = "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n";
        const char *body = "<html>\x1b[2J gone\r\n</html>";
        NimbusRaw raw = { .what = "licenses", .method = "GET", .url = "https://h/api/public-api-next/user/license-usage",
                          .status = 404, .headers = headers, .headers_len = strlen(headers),
                          .body = body, .body_len = strlen(body) };
        const char *json = "{\"licenses\":[{\"name\":\"N\",\"total\":1}]}";
        char *s = format(&raw);

        /* The escape sequence cannot clear the admin's terminal. */
        assert_string_equal(s, "> GET https://h/api/public-api-next/user/license-usage\n< HTTP/1.1 404 Not Found\n"
                               "< Content-Type: text/html\n<\n<html>\\x1b[2J gone\n</html>\n");
        free(s);

        raw.body = json;
        raw.body_len = strlen(json);
        s = format(&raw);
        assert_non_null(strstr(s, "<\n{\"licenses\":[{\"name\":\"N\",\"total\":1}]}\n"));   /* byte for byte */
        free(s);

        raw = (NimbusRaw) { .what = "licenses", .method = "GET", .url = "https://h/x", .status = 0,
                            .error_text = "Could not resolve host: h", .headers = "", .body = "" };
        s = format(&raw);
        assert_string_equal(s, "> GET https://h/x\n< no answer: Could not resolve host: h\n");
        free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_alternative_url), cmocka_unit_test(test_api_verdict),
                cmocka_unit_test(test_answer_summary), cmocka_unit_test(test_hints),
                cmocka_unit_test(test_user_shape), cmocka_unit_test(test_license_shape),
                cmocka_unit_test(test_shape_is_bounded), cmocka_unit_test(test_raw_redacts_tokens),
                cmocka_unit_test(test_raw_keeps_other_answers_as_they_came),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
