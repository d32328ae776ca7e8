/* test_graph_api: Microsoft Graph as data (graph_api.h), over tables: the request URLs, pages of
 * members (good, strange and hostile), the group answer, which next links may be followed, how
 * answers are classified, the error line, and the member list's bounds, order and hash. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_api.h"
#include "util.h"

#define GRAPH "https://graph.microsoft.com"
#define GROUP "6a0c1f6e-1b7e-4d8e-9c1a-2b3c4d5e6f70"
#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"
#define U3 "33333333-3333-4333-8333-333333333333"
#define NEXT GRAPH "/v1.0/groups/" GROUP "/transitiveMembers/microsoft.graph.user?$skiptoken=X"

static Guid guid(const char *s) {
        Guid g;

        assert_int_equal(guid_parse(s, strlen(s), &g), 0);
        return g;
}

static void test_urls(void **state) {
        Guid g = guid(GROUP);
        char *url = NULL;

        assert_int_equal(graph_group_url("http://127.0.0.1:8080", &g, &url), 0);
        assert_string_equal(url, "http://127.0.0.1:8080/v1.0/groups/" GROUP "?$select=id,displayName");
        free(url);
        assert_int_equal(graph_members_url(GRAPH, &g, &url), 0);
        assert_string_equal(url, GRAPH "/v1.0/groups/" GROUP "/transitiveMembers/microsoft.graph.user"
                            "?$select=id,displayName,userPrincipalName,accountEnabled&$top=999");
        free(url);
}

static const struct {
        const char *body;
        int result;            /* of graph_parse_members */
        size_t n;              /* members after the page */
        const char *next;      /* expected next link, or NULL */
        const char *name1;     /* displayName of the first member */
        bool enabled1;
} pages[] = {
        { "{\"value\": [{\"id\": \"" U1 "\", \"displayName\": \"Jane Doe\", \"userPrincipalName\": \"jane@x.test\", "
          "\"accountEnabled\": true}], \"@odata.nextLink\": \"" NEXT "\"}", 0, 1, NEXT, "Jane Doe", true },
        /* The last page; unknown fields ignored; braces and case in ids. */
        { "{\"@odata.context\": \"x\", \"value\": [{\"id\": \"{" U1 "}\", \"extra\": [1, 2]}]}", 0, 1, NULL, "", true },
        { "{\"value\": []}", 0, 0, NULL, NULL, false },
        /* accountEnabled false, null, or of another type. */
        { "{\"value\": [{\"id\": \"" U1 "\", \"accountEnabled\": false}]}", 0, 1, NULL, "", false },
        { "{\"value\": [{\"id\": \"" U1 "\", \"accountEnabled\": null}]}", 0, 1, NULL, "", true },
        { "{\"value\": [{\"id\": \"" U1 "\", \"accountEnabled\": \"no\"}]}", 0, 1, NULL, "", true },
        /* Objects that are not users are skipped; a user without a usable id spoils the page. */
        { "{\"value\": [{\"@odata.type\": \"#microsoft.graph.device\", \"id\": \"nope\"}, "
          "{\"@odata.type\": \"#microsoft.graph.user\", \"id\": \"" U2 "\", \"displayName\": null}]}",
          0, 1, NULL, "", true },
        { "{\"value\": [{\"displayName\": \"No Id\"}]}", -EBADMSG, 0, NULL, NULL, false },
        { "{\"value\": [{\"id\": \"not-a-guid\"}]}", -EBADMSG, 0, NULL, NULL, false },
        { "{\"value\": [{\"id\": 42}]}", -EBADMSG, 0, NULL, NULL, false },
        { "{\"value\": [\"" U1 "\"]}", -EBADMSG, 0, NULL, NULL, false },
        /* Not a page. */
        { "{\"values\": []}", -EBADMSG, 0, NULL, NULL, false },
        { "{\"value\": {}}", -EBADMSG, 0, NULL, NULL, false },
        { "[]", -EBADMSG, 0, NULL, NULL, false },
        { "<html>proxy login</html>", -EBADMSG, 0, NULL, NULL, false },
        { "{\"value\": []} trailing", -EBADMSG, 0, NULL, NULL, false },
        { "", -EBADMSG, 0, NULL, NULL, false },
        /* A next link elsewhere is refused, not followed. */
        { "{\"value\": [], \"@odata.nextLink\": \"https://evil.test/v1.0/x\"}", -EXDEV, 0, NULL, NULL, false },
        { "{\"value\": [], \"@odata.nextLink\": \"/v1.0/relative\"}", -EXDEV, 0, NULL, NULL, false },
        /* Control characters in names become spaces. */
        { "{\"value\": [{\"id\": \"" U1 "\", \"displayName\": \"a\\nb\\u0000c\"}]}", 0, 1, NULL, "a b c", true },
};

static void test_pages(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(pages); i++) {
                GraphListing *l = NULL;
                char *next = (char *) "unset";

                print_message("page %zu\n", i);
                assert_int_equal(graph_listing_new(10, &l), 0);
                assert_int_equal(graph_parse_members(pages[i].body, strlen(pages[i].body), GRAPH, l, &next),
                                 pages[i].result);
                if (pages[i].result == 0) {
                        assert_int_equal(l->n, pages[i].n);
                        if (pages[i].next)
                                assert_string_equal(next, pages[i].next);
                        else
                                assert_null(next);
                        if (pages[i].name1) {
                                assert_string_equal(graph_member_name(l, &l->members[0]), pages[i].name1);
                                assert_int_equal(l->members[0].enabled, pages[i].enabled1);
                        }
                        free(next);
                }
                graph_listing_free(l);
        }
}

/* The member bound: the page that would pass it is refused. */
static void test_member_limit(void **state) {
        const char *body = "{\"value\": [{\"id\": \"" U1 "\"}, {\"id\": \"" U2 "\"}, {\"id\": \"" U3 "\"}]}";
        GraphListing *l = NULL;
        char *next = NULL;

        assert_int_equal(graph_listing_new(2, &l), 0);
        assert_int_equal(graph_parse_members(body, strlen(body), GRAPH, l, &next), -E2BIG);
        graph_listing_free(l);
}

/* Names are cut to GRAPH_MAX_NAME bytes, never inside a character. */
static void test_long_names(void **state) {
        char name[GRAPH_MAX_NAME + 8], *body = NULL;
        GraphListing *l = NULL;
        char *next = NULL;

        memset(name, 'x', GRAPH_MAX_NAME - 1);
        memcpy(name + GRAPH_MAX_NAME - 1, "\xc3\xa9yyy", 6);   /* e-acute across the limit */
        assert_true(asprintf(&body, "{\"value\": [{\"id\": \"%s\", \"userPrincipalName\": \"%s\"}]}", U1, name) > 0);
        assert_int_equal(graph_listing_new(10, &l), 0);
        assert_int_equal(graph_parse_members(body, strlen(body), GRAPH, l, &next), 0);
        assert_int_equal(strlen(graph_member_upn(l, &l->members[0])), GRAPH_MAX_NAME - 1);
        free(body);
        graph_listing_free(l);
}

static void test_group(void **state) {
        static const struct {
                const char *body;
                int result;
                const char *name;
        } table[] = {
                { "{\"id\": \"" GROUP "\", \"displayName\": \"Support Agents\"}", 0, "Support Agents" },
                { "{\"id\": \"" GROUP "\"}", 0, NULL },
                { "{\"displayName\": null}", 0, NULL },
                { "{\"displayName\": \"Tab\\there\"}", 0, "Tab here" },
                { "[\"Support\"]", -EBADMSG, NULL },
                { "Support", -EBADMSG, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char *name = (char *) "unset";

                assert_int_equal(graph_parse_group(table[i].body, strlen(table[i].body), &name), table[i].result);
                if (table[i].result < 0)
                        continue;
                if (table[i].name)
                        assert_string_equal(name, table[i].name);
                else
                        assert_null(name);
                free(name);
        }
}

static void test_links(void **state) {
        static const struct {
                const char *base, *link;
                bool allowed;
        } table[] = {
                { GRAPH, NEXT, true },
                { GRAPH, "https://GRAPH.microsoft.com/v1.0/x", true },
                { GRAPH, "https://graph.microsoft.com:443/v1.0/x", true },
                { GRAPH, "http://graph.microsoft.com/v1.0/x", false },
                { GRAPH, "https://graph.microsoft.com:8443/v1.0/x", false },
                { GRAPH, "https://graph.microsoft.com.evil.test/v1.0/x", false },
                { GRAPH, "https://evil.test/?u=https://graph.microsoft.com", false },
                { GRAPH, "/v1.0/x", false },
                { GRAPH, "javascript:alert(1)", false },
                { GRAPH, "", false },
                { "http://127.0.0.1:8080", "http://127.0.0.1:8080/v1.0/x?$skiptoken=1", true },
                { "http://127.0.0.1:8080", "http://127.0.0.1:8081/v1.0/x", false },
                { "http://127.0.0.1:8080", "http://localhost:8080/v1.0/x", false },
        };
        char *huge = malloc(GRAPH_MAX_LINK + 64);

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                print_message("link %zu: %s\n", i, table[i].link);
                assert_int_equal(graph_link_allowed(table[i].base, table[i].link), table[i].allowed);
        }
        assert_non_null(huge);
        snprintf(huge, GRAPH_MAX_LINK + 64, "%s/v1.0/x?$skiptoken=", GRAPH);
        memset(huge + strlen(huge), 'a', GRAPH_MAX_LINK);
        huge[GRAPH_MAX_LINK + 1] = '\0';
        assert_false(graph_link_allowed(GRAPH, huge));
        free(huge);
}

static void test_classify(void **state) {
        static const struct {
                long status;
                int error;
                GraphOutcome outcome;
        } table[] = {
                { 200, 0, GRAPH_OK },           { 0, -ETIMEDOUT, GRAPH_RETRY },
                { 0, -ECONNRESET, GRAPH_RETRY },{ 0, -EKEYREJECTED, GRAPH_FAILED },
                { 0, -ENOKEY, GRAPH_FAILED },
                { 401, 0, GRAPH_AUTH },         { 403, 0, GRAPH_DENIED },
                { 404, 0, GRAPH_NOT_FOUND },    { 408, 0, GRAPH_RETRY },
                { 429, 0, GRAPH_RETRY },        { 503, 0, GRAPH_RETRY },
                { 504, 0, GRAPH_RETRY },        { 500, 0, GRAPH_RETRY },
                { 501, 0, GRAPH_FAILED },       { 400, 0, GRAPH_FAILED },
                { 302, 0, GRAPH_FAILED },       { 410, 0, GRAPH_FAILED },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                assert_int_equal(graph_classify(table[i].status, table[i].error), table[i].outcome);
}

static void test_error_message(void **state) {
        static const struct {
                long status;
                const char *body, *message;
        } table[] = {
                { 403, "{\"error\": {\"code\": \"Authorization_RequestDenied\", \"message\": \"Insufficient "
                  "privileges to complete the operation.\", \"innerError\": {\"date\": \"x\"}}}",
                  "Authorization_RequestDenied: Insufficient privileges to complete the operation." },
                { 404, "{\"error\": {\"code\": \"Request_ResourceNotFound\", \"message\": \"Resource '"
                  GROUP "' does not exist.\"}}",
                  "Request_ResourceNotFound: Resource '" GROUP "' does not exist." },
                { 400, "{\"error\": {\"code\": \"bad code with spaces\", \"message\": \"m\"}}", "m" },
                { 502, "Bad gateway\r\n", "Bad gateway" },
                { 503, "", "HTTP 503" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char *m = NULL;

                assert_int_equal(graph_error_message(table[i].status, table[i].body, strlen(table[i].body), &m), 0);
                assert_string_equal(m, table[i].message);
                free(m);
        }
}

/* Sorted, each member once (nested groups overlap); the hash follows what plan shows. */
static void test_listing(void **state) {
        Guid a = guid(U1), b = guid(U2), c = guid(U3);
        GraphListing *l = NULL, *m = NULL;

        assert_int_equal(graph_listing_new(10, &l), 0);
        assert_int_equal(graph_listing_add(l, &c, "C", 1, NULL, 0, true), 0);
        assert_int_equal(graph_listing_add(l, &a, "A", 1, "a@x", 3, false), 0);
        assert_int_equal(graph_listing_add(l, &c, "C", 1, NULL, 0, true), 0);
        assert_int_equal(graph_listing_add(l, &b, NULL, 0, NULL, 0, true), 0);
        assert_int_equal(graph_listing_finish(l), 0);
        assert_int_equal(l->n, 3);
        assert_true(guid_eq(&l->members[0].id, &a) && guid_eq(&l->members[2].id, &c));
        assert_int_equal(graph_listing_count(l, false), 2);
        assert_int_equal(graph_listing_count(l, true), 3);

        assert_int_equal(graph_listing_new(10, &m), 0);
        assert_int_equal(graph_listing_add(m, &b, NULL, 0, NULL, 0, true), 0);
        assert_int_equal(graph_listing_add(m, &a, "A", 1, "a@x", 3, false), 0);
        assert_int_equal(graph_listing_add(m, &c, "C", 1, NULL, 0, true), 0);
        assert_int_equal(graph_listing_finish(m), 0);
        assert_true(graph_listing_hash(l) == graph_listing_hash(m));
        m->members[0].enabled = true;
        assert_true(graph_listing_hash(l) != graph_listing_hash(m));
        m->members[0].enabled = false;
        assert_int_equal(strdup_checked("Support", &m->group_name), 0);
        assert_true(graph_listing_hash(l) != graph_listing_hash(m));
        graph_listing_free(l);
        graph_listing_free(m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_urls), cmocka_unit_test(test_pages),
                cmocka_unit_test(test_member_limit), cmocka_unit_test(test_long_names),
                cmocka_unit_test(test_group), cmocka_unit_test(test_links),
                cmocka_unit_test(test_classify), cmocka_unit_test(test_error_message),
                cmocka_unit_test(test_listing),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
