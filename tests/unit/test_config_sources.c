/* test_config_sources: the directory-source keys of the configuration (nimbus-sync.yaml(5),
 * SOURCES): graph_url, sources:, source_interval and roster_defaults: their defaults, what each
 * accepts, every error with its exact file:line:col (over tables), and the roster_defaults lookup. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

#define TENANT "9fce70af-a632-49ca-bc0d-53db5a21c5b3"
#define CLIENT "0b5b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
#define OU_SUPPORT "3f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10"
#define GROUP_A "6a0c1f6e-1b7e-4d8e-9c1a-2b3c4d5e6f70"
#define GROUP_B "0d9e8f7a-6b5c-4d3e-8f1a-0b2c3d4e5f60"
#define TEMPLATE "1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2b"
/* Four lines, so the first line of a test's own text is line 5. */
#define MINIMAL "tenant_id: " TENANT "\nclient_id: " CLIENT "\nclient_secret_file: /etc/nimbus-sync/secret\n" \
                "cluster: ch-01\n"

static Config *parse_ok(const char *yaml) {
        Diag d = DIAG_INIT;
        Config *c = NULL;
        int r = config_parse("config.yaml", yaml, strlen(yaml), &c, &d);

        for (size_t i = 0; i < d.n; i++)
                print_error("unexpected: %u:%u: %s\n", d.entries[i].line, d.entries[i].col, d.entries[i].msg);
        assert_int_equal(r, 0);
        assert_non_null(c);
        diag_clear(&d);
        return c;
}

static void expect_error(const char *yaml, const char *expected) {
        Diag d = DIAG_INIT;
        Config *c = NULL;
        bool found = false;

        assert_int_equal(config_parse("config.yaml", yaml, strlen(yaml), &c, &d), -EINVAL);
        assert_null(c);
        for (size_t i = 0; i < d.n; i++) {
                char *s = NULL;

                assert_int_equal(diag_entry_format(&d.entries[i], &s), 0);
                found = found || streq(s, expected);
                if (!found)
                        print_error("  got: %s\n", s);
                free(s);
        }
        if (!found) {
                print_error("expected: %s\n", expected);
                fail();
        }
        diag_clear(&d);
}

static void test_defaults(void **state) {
        Config *c = parse_ok(MINIMAL);

        assert_string_equal(c->graph_url, "https://graph.microsoft.com");
        assert_int_equal(c->n_sources, 0);
        assert_int_equal(c->n_roster_defaults, 0);
        assert_int_equal(c->source_interval_usec, 5 * 60 * USEC_PER_SEC);
        assert_null(config_roster_default(c, "/x/entra-export.csv"));
        config_free(c);
}

/* organization_units may come after the sources that use its names. */
static void test_sources(void **state) {
        Config *c = parse_ok(MINIMAL
                "sources:\n"
                "  - entra_group: " GROUP_A "\n"
                "    ou: support\n"
                "  - entra_group: '{" GROUP_B "}'\n"
                "    template: " TEMPLATE "\n"
                "    include_disabled: true\n"
                "source_interval: 90s\n"
                "graph_url: http://127.0.0.1:8080\n"
                "organization_units:\n"
                "  support: " OU_SUPPORT "\n");
        char buf[GUID_STRING_MAX];

        assert_int_equal(c->n_sources, 2);
        assert_string_equal(guid_format(&c->sources[0].group, buf), GROUP_A);
        assert_false(c->sources[0].target.is_template);
        assert_string_equal(guid_format(&c->sources[0].target.id, buf), OU_SUPPORT);
        assert_false(c->sources[0].include_disabled);
        assert_string_equal(guid_format(&c->sources[1].group, buf), GROUP_B);
        assert_true(c->sources[1].target.is_template);
        assert_string_equal(guid_format(&c->sources[1].target.id, buf), TEMPLATE);
        assert_true(c->sources[1].include_disabled);
        assert_int_equal(c->source_interval_usec, 90 * USEC_PER_SEC);
        assert_string_equal(c->graph_url, "http://127.0.0.1:8080");
        config_free(c);
}

static void test_graph_url_forms(void **state) {
        static const struct {
                const char *in, *out;
        } table[] = {
                { "https://graph.microsoft.com", "https://graph.microsoft.com" },
                { "https://graph.microsoft.us", "https://graph.microsoft.us" },
                { "http://localhost:9000", "http://localhost:9000" },
                { "http://[::1]:9000", "http://[::1]:9000" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char yaml[512];
                Config *c;

                snprintf(yaml, sizeof(yaml), MINIMAL "graph_url: %s\n", table[i].in);
                c = parse_ok(yaml);
                assert_string_equal(c->graph_url, table[i].out);
                config_free(c);
        }
}

/* First match wins; the base name of the path is matched. */
static void test_roster_defaults(void **state) {
        Config *c = parse_ok(MINIMAL
                "organization_units: {support: " OU_SUPPORT "}\n"
                "roster_defaults:\n"
                "  \"entra-*.csv\": {ou: support}\n"
                "  \"*.csv\": {template: " TEMPLATE "}\n");
        const RosterDefault *d;
        char buf[GUID_STRING_MAX];

        assert_int_equal(c->n_roster_defaults, 2);
        d = config_roster_default(c, "/var/lib/nimbus-sync/roster.d/entra-support.csv");
        assert_non_null(d);
        assert_false(d->target.is_template);
        assert_string_equal(guid_format(&d->target.id, buf), OU_SUPPORT);
        d = config_roster_default(c, "other.csv");
        assert_non_null(d);
        assert_true(d->target.is_template);
        assert_null(config_roster_default(c, "/dir/entra-support.yaml"));
        assert_null(config_roster_default(c, "/entra-x.csv/users.yaml"));
        config_free(c);
}

static void test_errors(void **state) {
        static const struct {
                const char *yaml, *error;
        } table[] = {
                { "sources: " GROUP_A "\n",
                  "config.yaml:5:10: error: sources: expected a list of {entra_group, ou | template}, got a scalar" },
                { "sources:\n  - ou: " OU_SUPPORT "\n",
                  "config.yaml:6:5: error: sources[1]: missing entra_group (the group's object ID)" },
                { "sources:\n  - {entra_group: nope, ou: " OU_SUPPORT "}\n",
                  "config.yaml:6:19: error: sources[1].entra_group: invalid GUID \"nope\" (the group's object ID)" },
                { "sources:\n  - {entra_group: " GROUP_A "}\n",
                  "config.yaml:6:5: error: sources[1]: needs ou (a GUID or an organization_units name) or template (an O365 ID)" },
                { "sources:\n  - {entra_group: " GROUP_A ", ou: " OU_SUPPORT ", template: " TEMPLATE "}\n",
                  "config.yaml:6:109: error: sources[1]: set either ou or template, not both" },
                { "sources:\n  - {entra_group: " GROUP_A ", ou: sales}\n",
                  "config.yaml:6:61: error: sources[1]: unknown organization unit \"sales\" (neither a GUID nor a name from organization_units)" },
                { "sources:\n  - {entra_group: " GROUP_A ", template: x}\n",
                  "config.yaml:6:67: error: sources[1]: invalid template \"x\" (must be an O365 ID)" },
                { "sources:\n  - {entra_group: " GROUP_A ", ou: " OU_SUPPORT ", include_disabled: maybe}\n",
                  "config.yaml:6:117: error: sources[1].include_disabled: expected true or false, got \"maybe\"" },
                { "sources:\n  - {entra_group: " GROUP_A ", ou: " OU_SUPPORT ", groups: 1}\n",
                  "config.yaml:6:99: error: sources[1]: unknown key \"groups\"" },
                { "sources:\n  - {entra_group: " GROUP_A ", ou: " OU_SUPPORT "}\n"
                  "  - {entra_group: " GROUP_A ", template: " TEMPLATE "}\n",
                  "config.yaml:7:19: error: sources[2].entra_group: entra group " GROUP_A " is listed twice (also sources[1])" },
                { "sources:\n  - " GROUP_A "\n",
                  "config.yaml:6:5: error: sources[1]: expected a mapping, got a scalar" },
                { "source_interval: 0\n",
                  "config.yaml:5:18: error: source_interval: 0 is out of range (1s..7d)" },
                { "graph_url: http://graph.example.com\n",
                  "config.yaml:5:12: error: graph_url: plain http:// is accepted only for loopback hosts" },
                { "graph_url: https://graph.microsoft.com/v1.0\n",
                  "config.yaml:5:12: error: graph_url: graph_url takes scheme and host only (and a port)" },
                { "roster_defaults: [a]\n",
                  "config.yaml:5:18: error: roster_defaults: expected a mapping of file name pattern: {ou | template}, got a list" },
                { "roster_defaults:\n  \"x/*.csv\": {ou: " OU_SUPPORT "}\n",
                  "config.yaml:6:3: error: roster_defaults: \"x/*.csv\" is not a file name pattern (at most 255 characters, no '/')" },
                { "roster_defaults:\n  \"*.csv\": {}\n",
                  "config.yaml:6:12: error: roster_defaults.\"*.csv\": needs ou (a GUID or an organization_units name) or template (an O365 ID)" },
                { "roster_defaults:\n  \"*.csv\": {ou: nowhere}\n",
                  "config.yaml:6:17: error: roster_defaults.\"*.csv\": unknown organization unit \"nowhere\" (neither a GUID nor a name from organization_units)" },
                { "roster_defaults:\n  \"*.csv\": {name: x}\n",
                  "config.yaml:6:13: error: roster_defaults.\"*.csv\": unknown key \"name\"" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char yaml[1024];

                snprintf(yaml, sizeof(yaml), MINIMAL "%s", table[i].yaml);
                expect_error(yaml, table[i].error);
        }
}

/* Bounded: more entries than the limit are refused, not allocated. */
static void test_limits(void **state) {
        size_t cap = strlen(MINIMAL) + 16 + (CONFIG_MAX_SOURCES + 1) * 128;
        _cleanup_free_ char *yaml = malloc(cap);
        size_t n;

        assert_non_null(yaml);
        n = (size_t) snprintf(yaml, cap, MINIMAL "sources:\n");
        for (unsigned i = 0; i <= CONFIG_MAX_SOURCES; i++)
                n += (size_t) snprintf(yaml + n, cap - n, "  - {entra_group: %08x-1b7e-4d8e-9c1a-2b3c4d5e6f70, "
                                       "ou: " OU_SUPPORT "}\n", i);
        expect_error(yaml, "config.yaml:106:5: error: sources: more than 100 entries");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_sources),
                cmocka_unit_test(test_graph_url_forms),
                cmocka_unit_test(test_roster_defaults),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_limits),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
