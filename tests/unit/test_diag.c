/* test_diag: how diagnostics are formatted, that they stay one line, and that the list is
 * bounded while the counters keep counting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

static char *format_entry(const Diag *d, size_t i) {
        char *s = NULL;

        assert_true(i < d->n);
        assert_int_equal(diag_entry_format(&d->entries[i], &s), 0);
        assert_non_null(s);
        return s;
}

static void assert_entry(const Diag *d, size_t i, const char *expected) {
        char *s = format_entry(d, i);

        assert_string_equal(s, expected);
        free(s);
}

static void test_format_parts(void **state) {
        Diag d = DIAG_INIT;

        assert_int_equal(diag_add(&d, DIAG_ERROR, "config.yaml", 7, 3, "unknown key \"%s\"", "rate_limt"),
                         -EINVAL);
        assert_int_equal(diag_add(&d, DIAG_WARNING, "a.csv", 12, 0, "listed twice"), 0);
        assert_int_equal(diag_add(&d, DIAG_ERROR, "/etc/secret", 0, 0, "mode %04o", 0644), -EINVAL);
        assert_int_equal(diag_add(&d, DIAG_ERROR, NULL, 0, 0, "no file"), -EINVAL);
        assert_int_equal(diag_add(&d, DIAG_WARNING, "x.yaml", 0, 5, "column without line"), 0);

        assert_int_equal(d.n, 5);
        assert_entry(&d, 0, "config.yaml:7:3: error: unknown key \"rate_limt\"");
        assert_entry(&d, 1, "a.csv:12: warning: listed twice");
        assert_entry(&d, 2, "/etc/secret: error: mode 0644");
        assert_entry(&d, 3, "error: no file");
        assert_entry(&d, 4, "x.yaml: warning: column without line");
        assert_int_equal(d.n_errors, 3);
        assert_int_equal(d.n_warnings, 2);
        assert_int_equal(d.dropped, 0);

        /* The entry keeps its own copy of the file name. */
        assert_string_equal(d.entries[0].file, "config.yaml");
        assert_int_equal(d.entries[0].line, 7);
        assert_int_equal(d.entries[0].col, 3);
        assert_int_equal(d.entries[1].level, DIAG_WARNING);
        diag_clear(&d);
}

static void test_one_line(void **state) {
        Diag d = DIAG_INIT;
        char *s;

        diag_add(&d, DIAG_ERROR, "bad\nname.yaml", 1, 1, "value \"%s\"", "a\nb\r\x1b[31mc");
        s = format_entry(&d, 0);
        assert_null(strchr(s, '\n'));
        assert_null(strchr(s, '\r'));
        assert_null(strchr(s, '\x1b'));
        assert_string_equal(s, "bad?name.yaml:1:1: error: value \"a?b??[31mc\"");
        free(s);
        diag_clear(&d);
}

static void test_long_message_is_cut(void **state) {
        Diag d = DIAG_INIT;
        char *big = malloc(100000);

        assert_non_null(big);
        memset(big, 'x', 99999);
        big[99999] = '\0';
        diag_add(&d, DIAG_ERROR, "f", 1, 1, "%s", big);
        assert_true(strlen(d.entries[0].msg) <= 1024);
        assert_true(strlen(d.entries[0].msg) > 500);
        assert_string_equal(d.entries[0].msg + strlen(d.entries[0].msg) - 3, "...");
        free(big);
        diag_clear(&d);
}

static void test_bounded(void **state) {
        Diag d = DIAG_INIT;

        for (unsigned i = 0; i < DIAG_MAX_ENTRIES + 50; i++)
                assert_int_equal(diag_add(&d, DIAG_ERROR, "f.csv", i + 1, 0, "error %u", i), -EINVAL);
        for (unsigned i = 0; i < 20; i++)
                assert_int_equal(diag_add(&d, DIAG_WARNING, "f.csv", i + 1, 0, "warning %u", i), 0);

        assert_int_equal(d.n, DIAG_MAX_ENTRIES);
        assert_true(d.cap <= DIAG_MAX_ENTRIES);
        assert_int_equal(d.n_errors, DIAG_MAX_ENTRIES + 50);
        assert_int_equal(d.n_warnings, 20);
        assert_int_equal(d.dropped, 70);
        /* The first ones are kept, in order. */
        assert_entry(&d, 0, "f.csv:1: error: error 0");
        assert_entry(&d, DIAG_MAX_ENTRIES - 1, "f.csv:100: error: error 99");
        diag_clear(&d);
        assert_int_equal(d.n, 0);
        assert_int_equal(d.n_errors, 0);
        assert_null(d.entries);
}

static void test_first_error(void **state) {
        Diag d = DIAG_INIT;
        char *s = (char *) 1;

        assert_int_equal(diag_first_error(&d, &s), 0);
        assert_null(s);

        diag_add(&d, DIAG_WARNING, "a.yaml", 3, 1, "just a warning");
        assert_int_equal(diag_first_error(&d, &s), 0);
        assert_null(s);

        diag_add(&d, DIAG_ERROR, "a.yaml", 9, 2, "the first error");
        diag_add(&d, DIAG_ERROR, "a.yaml", 10, 2, "the second error");
        assert_int_equal(diag_first_error(&d, &s), 0);
        assert_string_equal(s, "a.yaml:9:2: error: the first error");
        free(s);
        diag_clear(&d);
}

static void test_first_error_after_warnings_filled_the_list(void **state) {
        Diag d = DIAG_INIT;
        char *s = NULL;

        for (unsigned i = 0; i < DIAG_MAX_ENTRIES; i++)
                diag_add(&d, DIAG_WARNING, "w.csv", i + 1, 0, "dup");
        diag_add(&d, DIAG_ERROR, "w.csv", 500, 0, "lost");
        assert_int_equal(d.n_errors, 1);
        assert_int_equal(diag_first_error(&d, &s), 0);
        assert_non_null(s);
        assert_non_null(strstr(s, "1 errors"));
        free(s);
        diag_clear(&d);
}

static void test_clear_null(void **state) {
        diag_clear(NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format_parts), cmocka_unit_test(test_one_line),
                cmocka_unit_test(test_long_message_is_cut), cmocka_unit_test(test_bounded),
                cmocka_unit_test(test_first_error),
                cmocka_unit_test(test_first_error_after_warnings_filled_the_list),
                cmocka_unit_test(test_clear_null),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
