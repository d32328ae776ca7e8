/* test_roster_defaults: roster_defaults (nimbus-sync.yaml(5), SOURCES) in the roster readers: an
 * entry that names neither ou nor template gets the target of the first pattern matching its
 * file's name, so an Entra CSV export without an OU column is a roster as it is. The entry's own
 * target and a YAML file's own `ou:` win. Cases over one table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roster.h"
#include "util.h"

#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"
#define OU_A "aaaaaaaa-0000-4000-8000-00000000000a"
#define OU_B "bbbbbbbb-0000-4000-8000-00000000000b"
#define TPL "cccccccc-0000-4000-8000-00000000000c"

static const char config_yaml[] =
        "tenant_id: 9fce70af-a632-49ca-bc0d-53db5a21c5b3\n"
        "client_id: 0b5b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d\n"
        "client_secret_file: /etc/nimbus-sync/secret\n"
        "cluster: ch-01\n"
        "organization_units: {support: " OU_A ", sales: " OU_B "}\n"
        "roster_defaults:\n"
        "  \"entra-*.csv\": {ou: support}\n"
        "  \"copy-*\": {template: " TPL "}\n";

typedef struct Case {
        const char *file, *text;
        const char *u1, *u2;   /* expected target of U1 and U2 ("" = not in the roster) */
        uint8_t kind1;         /* TargetKind of U1 */
        const char *error;     /* expected first error, or NULL */
} Case;

static const Case cases[] = {
        /* An Entra export: many columns, none of them an OU. */
        { "entra-support.csv", "id,displayName,userPrincipalName,accountEnabled\n"
          U1 ",Jane Doe,jane@example.com,True\n" U2 ",Joe Bloggs,joe@example.com,True\n",
          OU_A, OU_A, TARGET_OU, NULL },
        /* An OU column: a row's own OU wins, an empty cell takes the default. */
        { "entra-mixed.csv", "id,ou\n" U1 ",sales\n" U2 ",\n", OU_B, OU_A, TARGET_OU, NULL },
        { "copy-agents.yaml", "users:\n  - o365_id: " U1 "\n  - {o365_id: " U2 ", ou: sales}\n",
          TPL, OU_B, TARGET_TEMPLATE, NULL },
        /* The file's own `ou:` comes before roster_defaults. */
        { "copy-own.yaml", "ou: sales\nusers:\n  - o365_id: " U1 "\n", OU_B, "", TARGET_OU, NULL },
        { "copy-self.csv", "id\n" TPL "\n", "", "", 0,
          "copy-self.csv:2: error: the roster_defaults template is the entry's own o365_id" },
        /* No pattern matches: as without roster_defaults. */
        { "other.csv", "id,name\n" U1 ",x\n", "", "", 0,
          "other.csv:1: error: the header has neither an ou column (ou, organizationunitid, "
          "organization_unit_id) nor a template column (template, sourceo365id, template_o365_id), and no "
          "roster_defaults entry matches the file name" },
        { "other.yaml", "users:\n  - o365_id: " U1 "\n", "", "", 0,
          "other.yaml:2: error: entry needs ou or template (and the file sets no default ou)" },
};

static void check_target(const Roster *r, const char *id, const char *want, uint8_t kind) {
        char buf[GUID_STRING_MAX];
        const RosterEntry *e;
        Guid g;

        assert_int_equal(guid_parse(id, strlen(id), &g), 0);
        e = roster_find(r, &g);
        if (!*want) {
                assert_null(e);
                return;
        }
        assert_non_null(e);
        assert_string_equal(guid_format(&e->target, buf), want);
        if (kind)
                assert_int_equal(e->kind, kind);
}

static void run_case(const Config *c, const Case *t) {
        Diag d = DIAG_INIT;
        Roster *r = NULL;
        char *first = NULL;
        int k;

        k = roster_parse_buffer(t->file, t->text, strlen(t->text), c, &r, &d);
        if (t->error) {
                assert_int_equal(k, -EINVAL);
                assert_int_equal(diag_first_error(&d, &first), 0);
                assert_string_equal(first, t->error);
                free(first);
        } else {
                assert_int_equal(k, 0);
                check_target(r, U1, t->u1, t->kind1);
                check_target(r, U2, t->u2, 0);
        }
        roster_free(r);
        diag_clear(&d);
}

static void test_cases(void **state) {
        Diag d = DIAG_INIT;
        Config *c = NULL;

        assert_int_equal(config_parse("config.yaml", config_yaml, strlen(config_yaml), &c, &d), 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                print_message("case %zu: %s\n", i, cases[i].file);
                run_case(c, &cases[i]);
        }
        config_free(c);
        diag_clear(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cases),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
