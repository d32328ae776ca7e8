/* test_rosterview: the daemon's roster verdict as the store keeps it: an accepted roster's files
 * and users (named relative to the roster folder), a rejection that keeps the roster in force,
 * the JSON round trip, and garbage refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rosterview.h"
#include "util.h"

/* Three users in two files, one of them outside the folder (a path given as it is). */
static Roster *sample_roster(void) {
        static char a[] = "/var/lib/nimbus-sync/roster.d/a.csv", b[] = "/elsewhere/b.yaml";
        static char *files[] = { a, b };
        static RosterEntry entries[] = { { .file = 0 }, { .file = 1 }, { .file = 0 } };
        static Roster r = { .entries = entries, .n = 3, .files = files, .n_files = 2,
                            .newest_usec = 1700000000 * USEC_PER_SEC };

        return &r;
}

static void assert_view_equal(const RosterView *a, const RosterView *b) {
        assert_int_equal(a->read_usec, b->read_usec);
        assert_int_equal(a->accepted_usec, b->accepted_usec);
        assert_int_equal(a->users, b->users);
        assert_int_equal(a->newest_usec, b->newest_usec);
        if (a->error || b->error)
                assert_string_equal(a->error, b->error);
        assert_int_equal(a->n_files, b->n_files);
        for (size_t i = 0; i < a->n_files; i++) {
                assert_string_equal(a->files[i].name, b->files[i].name);
                assert_int_equal(a->files[i].users, b->files[i].users);
        }
}

static void round_trip(const RosterView *v) {
        RosterView back = { 0 };
        char *text = NULL;

        assert_int_equal(roster_view_format(v, &text), 0);
        assert_int_equal(roster_view_parse(text, &back), 0);
        assert_view_equal(v, &back);
        roster_view_clear(&back);
        free(text);
}

static void test_accept_then_reject(void **state) {
        RosterView v = { 0 };
        Roster *r = sample_roster(), merged = *r;

        round_trip(&v);   /* nothing yet */
        merged.n = 5;     /* the files and two users of an Entra group */
        assert_int_equal(roster_view_accept(&v, &merged, r, "/var/lib/nimbus-sync/roster.d/", 100), 0);
        assert_int_equal(v.users, 5);
        assert_int_equal(v.n_files, 2);
        assert_string_equal(v.files[0].name, "a.csv");
        assert_int_equal(v.files[0].users, 2);
        assert_string_equal(v.files[1].name, "/elsewhere/b.yaml");
        assert_int_equal(v.files[1].users, 1);
        assert_int_equal(v.newest_usec, 1700000000 * USEC_PER_SEC);
        assert_int_equal(v.read_usec, 100);
        assert_int_equal(v.accepted_usec, 100);
        assert_null(v.error);
        round_trip(&v);

        /* Rejected later: the verdict changes, the roster in force does not. */
        assert_int_equal(roster_view_reject(&v, "a.csv:3:1: error: invalid o365_id \"x\"", 200), 0);
        assert_string_equal(v.error, "a.csv:3:1: error: invalid o365_id \"x\"");
        assert_int_equal(v.read_usec, 200);
        assert_int_equal(v.accepted_usec, 100);
        assert_int_equal(v.n_files, 2);
        round_trip(&v);

        /* Accepted again: the error is gone. */
        assert_int_equal(roster_view_accept(&v, r, r, "/var/lib/nimbus-sync/roster.d", 300), 0);
        assert_null(v.error);
        assert_int_equal(v.users, 3);
        roster_view_clear(&v);
        roster_view_clear(NULL);
}

static void test_garbage_refused(void **state) {
        static const char *const bad[] = {
                NULL, "", "{", "[]", "{}",
                "{\"read\":1,\"error\":null,\"accepted\":1,\"users\":1,\"newest\":0}",          /* no files */
                "{\"read\":1,\"error\":3,\"accepted\":1,\"users\":1,\"newest\":0,\"files\":[]}", /* error not text */
                "{\"read\":-1,\"error\":null,\"accepted\":1,\"users\":1,\"newest\":0,\"files\":[]}",
                "{\"read\":1,\"error\":null,\"accepted\":1,\"users\":1,\"newest\":0,\"files\":[{\"name\":\"a\"}]}",
                "{\"read\":1,\"error\":null,\"accepted\":1,\"users\":1,\"newest\":0,\"files\":[7]}",
        };
        RosterView v = { .users = 9 };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(roster_view_parse(bad[i], &v), -EINVAL);
                assert_int_equal(v.users, 9);
        }
}

/* More files than a roster may have: refused, not allocated. */
static void test_too_many_files(void **state) {
        size_t size = 128 + (ROSTER_MAX_FILES + 1) * 24;
        char *text = malloc(size), *p = text;
        RosterView v = { 0 };

        assert_non_null(text);
        p += sprintf(p, "{\"read\":1,\"error\":null,\"accepted\":1,\"users\":1,\"newest\":0,\"files\":[");
        for (size_t i = 0; i <= ROSTER_MAX_FILES; i++)
                p += sprintf(p, "%s{\"name\":\"f\",\"users\":1}", i ? "," : "");
        sprintf(p, "]}");
        assert_int_equal(roster_view_parse(text, &v), -EINVAL);
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_accept_then_reject),
                cmocka_unit_test(test_garbage_refused),
                cmocka_unit_test(test_too_many_files),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
