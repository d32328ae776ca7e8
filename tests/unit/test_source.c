/* test_source: the state of directory sources (source.h): merging group members with roster
 * files under the rules of a roster file, which reads replace the list in force (an empty group
 * does not, unless deletes.allow_empty), and the last complete list surviving in the store. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"
#include "util.h"

#define GROUP "6a0c1f6e-1b7e-4d8e-9c1a-2b3c4d5e6f70"
#define OU_A "aaaaaaaa-0000-4000-8000-00000000000a"
#define OU_B "bbbbbbbb-0000-4000-8000-00000000000b"
#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"
#define U3 "33333333-3333-4333-8333-333333333333"

#define CONFIG(extra) \
        "tenant_id: 9fce70af-a632-49ca-bc0d-53db5a21c5b3\n" \
        "client_id: 0b5b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d\n" \
        "client_secret_file: /etc/nimbus-sync/secret\n" \
        "cluster: ch-01\n" \
        "sources: [{entra_group: " GROUP ", ou: " OU_A "}]\n" extra

typedef struct Fixture {
        char dir[512];
        Logger log;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_non_null(f);
        snprintf(f->dir, sizeof f->dir, "%s/test_source.XXXXXX", getenv("TMPDIR") ?: P_tmpdir);
        assert_non_null(mkdtemp(f->dir));
        log_init(&f->log, LOG_TARGET_STDERR, LOG_EMERG);   /* quiet */
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[600];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

static Config *config(const char *yaml) {
        Diag d = DIAG_INIT;
        Config *c = NULL;

        assert_int_equal(config_parse("config.yaml", yaml, strlen(yaml), &c, &d), 0);
        diag_clear(&d);
        return c;
}

static Guid guid(const char *s) {
        Guid g;

        assert_int_equal(guid_parse(s, strlen(s), &g), 0);
        return g;
}

/* A listing as Graph would give it; a member written "<id>!" is disabled. */
static GraphListing *listing(const char *group_name, const char *const *members, size_t n) {
        GraphListing *l = NULL;

        assert_int_equal(graph_listing_new(100, &l), 0);
        if (group_name)
                assert_int_equal(strdup_checked(group_name, &l->group_name), 0);
        for (size_t i = 0; i < n; i++) {
                char name[64], upn[64];
                int enabled = 1;
                Guid g;

                assert_int_equal(guid_parse(members[i], 36, &g), 0);
                snprintf(name, sizeof name, "User %zu", i);
                snprintf(upn, sizeof upn, "u%zu@example.test", i);
                if (strlen(members[i]) > 36)   /* "<id>!": disabled */
                        enabled = 0;
                assert_int_equal(graph_listing_add(l, &g, name, strlen(name), upn, strlen(upn), enabled), 0);
        }
        assert_int_equal(graph_listing_finish(l), 0);
        return l;
}

static Roster *files(const Config *c, const char *yaml) {
        Diag d = DIAG_INIT;
        Roster *r = NULL;

        assert_int_equal(roster_parse_buffer("/r/files.yaml", yaml, strlen(yaml), c, &r, &d), 0);
        diag_clear(&d);
        return r;
}

static char *first_diag(const Diag *d) {
        char *s = NULL;

        assert_true(d->n > 0);
        assert_int_equal(diag_entry_format(&d->entries[0], &s), 0);
        return s;
}

static void test_merge(void **state) {
        Fixture *f = *state;
        static const char *const members[] = { U2, U3 "!" };
        Config *c = config(CONFIG(""));
        SourceSet *set = NULL;
        Roster *fr = files(c, "users: [{o365_id: " U1 ", ou: " OU_B "}]\n"), *r = NULL;
        Diag d = DIAG_INIT;
        char label[128];
        const RosterEntry *e;
        Guid u2 = guid(U2), u3 = guid(U3), u1 = guid(U1), ou_a = guid(OU_A);

        assert_int_equal(source_set_new(c, &set), 0);
        assert_int_equal(source_set_result(set, 0, listing("Support Agents", members, 2), NULL, NULL, &f->log), 1);
        assert_int_equal(source_set_merge(set, fr, &r, &d), 0);
        assert_int_equal(r->n, 2);          /* U1 from the file, U2 from the group; U3 is disabled */
        assert_non_null(roster_find(r, &u1));
        assert_null(roster_find(r, &u3));
        e = roster_find(r, &u2);
        assert_non_null(e);
        assert_true(guid_eq(&e->target, &ou_a) && e->kind == TARGET_OU && e->line == 0);
        assert_string_equal(roster_entry_file(r, e), "entra group \"Support Agents\"");
        assert_string_equal(roster_entry_given_name(r, e), "User 0");
        assert_string_equal(roster_entry_upn(r, e), "u0@example.test");
        assert_string_equal(roster_entry_label(r, e, label, sizeof(label)), "User 0 (u0@example.test)");
        assert_string_equal(roster_entry_file(r, roster_find(r, &u1)), "/r/files.yaml");
        roster_free(r);
        diag_clear(&d);
        source_set_free(set);
        roster_free(fr);
        config_free(c);
}

/* A user in a file and in a group: as in two files. */
static void test_merge_conflicts(void **state) {
        Fixture *f = *state;
        static const struct {
                const char *file;
                int result;
                const char *diag;
        } table[] = {
                { "users: [{o365_id: " U2 ", ou: " OU_A "}]\n", 0,
                  "entra group \"Support Agents\": warning: o365_id " U2 " listed twice (also at /r/files.yaml:1)" },
                { "users: [{o365_id: " U2 ", ou: " OU_B "}]\n", -EINVAL,
                  "entra group \"Support Agents\": error: o365_id " U2 " listed with a different ou than at "
                  "/r/files.yaml:1" },
                { "users: [{o365_id: " U2 ", template: " U1 "}]\n", -EINVAL,
                  "entra group \"Support Agents\": error: o365_id " U2 " listed with a different target than at "
                  "/r/files.yaml:1" },
        };
        static const char *const members[] = { U2 };
        Config *c = config(CONFIG(""));
        SourceSet *set = NULL;

        assert_int_equal(source_set_new(c, &set), 0);
        assert_int_equal(source_set_result(set, 0, listing("Support Agents", members, 1), NULL, NULL, &f->log), 1);
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                Roster *fr = files(c, table[i].file), *r = NULL;
                Diag d = DIAG_INIT;
                char *s;

                assert_int_equal(source_set_merge(set, fr, &r, &d), table[i].result);
                s = first_diag(&d);
                assert_string_equal(s, table[i].diag);
                free(s);
                roster_free(r);
                roster_free(fr);
                diag_clear(&d);
        }
        source_set_free(set);
        config_free(c);
}

/* Never read completely: the desired state cannot be built. */
static void test_merge_without_list(void **state) {
        Config *c = config(CONFIG(""));
        SourceSet *set = NULL;
        Roster *fr = files(c, "users: []\n"), *r = NULL;
        Diag d = DIAG_INIT;
        char *s;

        assert_int_equal(source_set_new(c, &set), 0);
        assert_int_equal(source_set_merge(set, fr, &r, &d), -EINVAL);
        assert_null(r);
        s = first_diag(&d);
        assert_string_equal(s, "entra group " GROUP ": error: no complete member list yet (not read)");
        free(s);
        diag_clear(&d);
        source_set_free(set);
        roster_free(fr);
        config_free(c);
}

/* What replaces the list in force, over a sequence of reads. */
static void test_results(void **state) {
        Fixture *f = *state;
        static const char *const two[] = { U1, U2 }, *const one[] = { U1 }, *const disabled[] = { U3 "!" };
        static const struct {
                const char *const *members;   /* NULL: a failure */
                size_t n;
                bool allow_empty;
                int result;                   /* 1 changed, 0 not */
                size_t in_force;              /* members of the list in force afterwards */
                bool error;
        } steps[] = {
                { NULL, 0, false, 0, 0, true },          /* never read: no list */
                { two, 2, false, 1, 2, false },
                { two, 2, false, 0, 2, false },          /* unchanged */
                { NULL, 0, false, 0, 2, true },          /* failure: the list stays */
                { one, 1, false, 1, 1, false },
                { one, 0, false, 0, 1, true },           /* empty: refused */
                { disabled, 1, false, 0, 1, true },      /* only disabled members: empty too */
                { one, 0, true, 1, 0, false },           /* allow_empty: accepted */
        };
        Config *strict = config(CONFIG("")), *lax = config(CONFIG("deletes: {allow_empty: true}\n"));
        SourceSet *set = NULL;

        assert_int_equal(source_set_new(strict, &set), 0);
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                GraphFailure fail = { .outcome = GRAPH_DENIED, .http_status = 403, .message = "denied" };
                GraphListing *l = steps[i].members ? listing("G", steps[i].members, steps[i].n) : NULL;

                print_message("step %zu\n", i);
                set->config = steps[i].allow_empty ? lax : strict;
                assert_int_equal(source_set_result(set, 0, l, l ? NULL : &fail, NULL, &f->log), steps[i].result);
                assert_int_equal(set->sources[0].list ? set->sources[0].list->n : 0, steps[i].in_force);
                assert_int_equal(set->sources[0].error != NULL, steps[i].error);
                assert_int_equal(source_set_current(set), !steps[i].error && set->sources[0].list);
        }
        source_set_free(set);
        config_free(strict);
        config_free(lax);
}

/* The last complete list and the last error survive in the store. */
static void test_store(void **state) {
        Fixture *f = *state;
        static const char *const members[] = { U1, U2 "!" };
        Config *c = config(CONFIG(""));
        SourceSet *a = NULL, *b = NULL;
        Store *st = NULL;
        GraphFailure fail = { .outcome = GRAPH_NOT_FOUND, .http_status = 404, .message = "gone" };

        assert_int_equal(store_open(f->dir, false, &st), 0);
        assert_int_equal(source_set_new(c, &a), 0);
        assert_int_equal(source_set_load(a, st), 0);   /* no tables yet: nothing known */
        assert_null(a->sources[0].list);
        assert_int_equal(source_set_result(a, 0, listing("Support Agents", members, 2), NULL, st, &f->log), 1);
        assert_int_equal(source_set_result(a, 0, NULL, &fail, st, &f->log), 0);

        assert_int_equal(source_set_new(c, &b), 0);
        assert_int_equal(source_set_load(b, st), 0);
        assert_non_null(b->sources[0].list);
        assert_int_equal(b->sources[0].list->n, 2);
        assert_false(b->sources[0].list->members[1].enabled);
        assert_true(b->sources[0].hash == a->sources[0].hash);
        assert_string_equal(b->sources[0].label, "entra group \"Support Agents\"");
        assert_string_equal(b->sources[0].error, "gone");
        source_set_free(a);
        source_set_free(b);
        store_close(st);
        config_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_merge, setup, teardown),
                cmocka_unit_test_setup_teardown(test_merge_conflicts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_merge_without_list, setup, teardown),
                cmocka_unit_test_setup_teardown(test_results, setup, teardown),
                cmocka_unit_test_setup_teardown(test_store, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
