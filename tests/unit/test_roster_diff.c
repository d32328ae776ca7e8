/* test_roster_diff.c: which roster files changed from one load to the next (roster_diff.h), over
 * tables of file sets, the line the roster-load entry shows, and the JSON kept in the store. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roster_diff.h"
#include "util.h"

typedef struct F { const char *file; uint64_t hash; size_t users; } F;

#define MAXF 8

static RosterFileSet make_set(const F *f) {
        RosterFileSet s = { .files = calloc(MAXF + 1, sizeof(RosterFileState)) };

        assert_non_null(s.files);
        for (; f && f->file; f++) {
                s.files[s.n] = (RosterFileState) { .file = strdup(f->file), .hash = f->hash, .users = f->users };
                s.n++;
        }
        return s;
}

static void test_diff_table(void **state) {
        static const struct {
                F old[MAXF], new[MAXF];
                size_t added, removed, changed;
                const char *line;
        } cases[] = {
                { .old = { { 0 } }, .new = { { "/r/a.yaml", 1, 3 }, { "/r/b.csv", 2, 2 } }, 2, 0, 0,
                  "added a.yaml (3 users), b.csv (2 users)" },
                { .old = { { "/r/a.yaml", 1, 3 } }, .new = { { "/r/a.yaml", 1, 3 } }, 0, 0, 0, "no file changed" },
                { .old = { { "/r/a.yaml", 1, 3 } }, .new = { { "/r/a.yaml", 9, 5 } }, 0, 0, 1,
                  "changed a.yaml (5 users, was 3)" },
                { .old = { { "/r/a.yaml", 1, 3 }, { "/r/c.csv", 4, 7 } }, .new = { { "/r/b.yaml", 2, 1 } }, 1, 2, 0,
                  "added b.yaml (1 users); removed a.yaml (3 users), c.csv (7 users)" },
                /* same users, other content: changed all the same */
                { .old = { { "/r/a.yaml", 1, 3 } }, .new = { { "/r/a.yaml", 2, 3 }, { "/r/z.csv", 3, 0 } }, 1, 0, 1,
                  "added z.csv (0 users); changed a.yaml (3 users, was 3)" },
                /* outside roster_dir: the whole path */
                { .old = { { 0 } }, .new = { { "/elsewhere/x.csv", 1, 1 } }, 1, 0, 0, "added /elsewhere/x.csv (1 users)" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                RosterFileSet old = make_set(cases[i].old), new = make_set(cases[i].new);
                RosterDiff d;
                char line[512];

                assert_int_equal(roster_diff(&old, &new, &d), 0);
                assert_int_equal(d.count[ROSTER_FILE_ADDED], cases[i].added);
                assert_int_equal(d.count[ROSTER_FILE_REMOVED], cases[i].removed);
                assert_int_equal(d.count[ROSTER_FILE_CHANGED], cases[i].changed);
                roster_diff_format(&d, "/r/", line, sizeof(line));
                assert_string_equal(line, cases[i].line);
                roster_diff_clear(&d);
                roster_file_set_clear(&old);
                roster_file_set_clear(&new);
        }
}

/* Many files: ten named per kind, the rest counted; a short buffer is cut, never overrun. */
static void test_format_bounded(void **state) {
        RosterFileSet old = { 0 }, new = { .files = calloc(30, sizeof(RosterFileState)) };
        RosterDiff d;
        char line[2048], tiny[16];

        assert_non_null(new.files);
        for (size_t i = 0; i < 25; i++) {
                assert_true(asprintf(&new.files[i].file, "/r/f%02zu.csv", i) > 0);
                new.files[i].users = i;
                new.n++;
        }
        assert_int_equal(roster_diff(&old, &new, &d), 0);
        roster_diff_format(&d, "/r", line, sizeof(line));
        assert_non_null(strstr(line, "f09.csv (9 users) and 15 more"));
        assert_null(strstr(line, "f10.csv"));
        roster_diff_format(&d, "/r", tiny, sizeof(tiny));
        assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
        roster_diff_clear(&d);
        roster_file_set_clear(&new);
}

static void test_json_round_trip(void **state) {
        static const F files[] = { { "/r/b \"q\".csv", UINT64_C(0xfedcba9876543210), 12 }, { "/r/a.yaml", 1, 0 }, { 0 } };
        RosterFileSet set = make_set(files), back;
        char *json = NULL;

        assert_int_equal(roster_file_set_to_json(&set, &json), 0);
        assert_int_equal(roster_file_set_from_json(json, &back), 0);
        assert_int_equal(back.n, 2);
        assert_string_equal(back.files[0].file, "/r/a.yaml");            /* sorted */
        assert_string_equal(back.files[1].file, "/r/b \"q\".csv");
        assert_true(back.files[1].hash == UINT64_C(0xfedcba9876543210));
        assert_int_equal(back.files[1].users, 12);
        roster_file_set_clear(&back);
        free(json);
        roster_file_set_clear(&set);

        /* what the store holds may be anything: no list, no files */
        static const char *const junk[] = { NULL, "", "{}", "[1, {\"file\": 3}]", "[{\"file\": \"x\"}]", "not json" };
        for (size_t i = 0; i < ELEMENTSOF(junk); i++) {
                assert_int_equal(roster_file_set_from_json(junk[i], &back), 0);
                assert_int_equal(back.n, 0);
                roster_file_set_clear(&back);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_diff_table),
                cmocka_unit_test(test_format_bounded),
                cmocka_unit_test(test_json_round_trip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
