/* test_plan_report.c: the time estimate `plan` ends with, over a table of counts and rates, and
 * the tally behind its summaries by OU and by source. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_report.h"
#include "tally.h"
#include "util.h"

static void test_estimate_table(void **state) {
        static const struct {
                size_t calls;
                unsigned ops;
                uint64_t window;
                const char *text;
        } cases[] = {
                { 5000, 60, 60 * USEC_PER_SEC, "≈ 83 min at 60 per 60 s" },
                { 60, 60, 60 * USEC_PER_SEC, "≈ 60 s at 60 per 60 s" },
                { 89, 60, 60 * USEC_PER_SEC, "≈ 89 s at 60 per 60 s" },
                { 90, 60, 60 * USEC_PER_SEC, "≈ 2 min at 60 per 60 s" },
                { 5400, 60, 60 * USEC_PER_SEC, "≈ 1 h 30 min at 60 per 60 s" },
                { 100000, 60, 60 * USEC_PER_SEC, "≈ 27 h 47 min at 60 per 60 s" },
                { 55, 200, USEC_PER_SEC, "< 1 s at 200 per 1 s" },
                { 10, 5, 500 * USEC_PER_MSEC, "≈ 1 s at 5 per 500 ms" },
        };
        char buf[96];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                plan_report_format_estimate(cases[i].calls, cases[i].ops, cases[i].window, buf, sizeof(buf));
                assert_string_equal(buf, cases[i].text);
        }
        assert_true(plan_report_duration_usec(5000, 60, 60 * USEC_PER_SEC) == 5000 * USEC_PER_SEC);
        assert_true(plan_report_duration_usec(10, 0, USEC_PER_SEC) == 0);
}

static void test_tally(void **state) {
        Tally t = TALLY_INIT;
        size_t *order = NULL, a = 9, b = 9, again = 9;
        char key[32];

        assert_int_equal(tally_add(&t, "sales", 0, &a), 0);
        assert_int_equal(tally_add(&t, "support", 3, &b), 0);
        assert_int_equal(tally_add(&t, "sales", 2, &again), 0);
        assert_int_equal(a, again);
        assert_true(a != b);
        assert_int_equal(tally_add(&t, "only interned", TALLY_COLUMNS, NULL), 0);
        assert_int_equal(tally_add(&t, "x", TALLY_COLUMNS + 1, NULL), -EINVAL);
        /* enough keys to grow the table several times */
        for (int i = 0; i < 1000; i++) {
                snprintf(key, sizeof(key), "k%d", i % 300);
                assert_int_equal(tally_add(&t, key, 1, NULL), 0);
        }
        assert_int_equal(t.n, 303);
        assert_int_equal(tally_sorted(&t, &order), 0);
        assert_int_equal(t.rows[order[0]].total, 4);            /* k0..k99 seen 4 times; sales 2 */
        assert_string_equal(t.rows[order[0]].key, "k0");
        assert_int_equal(t.rows[a].count[0], 1);
        assert_int_equal(t.rows[a].count[2], 1);
        assert_int_equal(t.rows[a].total, 2);
        assert_int_equal(t.rows[order[t.n - 1]].total, 0);      /* interned only */
        free(order);
        tally_clear(&t);
        tally_clear(NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_estimate_table),
                cmocka_unit_test(test_tally),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
