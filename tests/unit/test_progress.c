/* test_progress: a run's progress as the store keeps it (a JSON round trip, and garbage refused),
 * the time left at the rate limit, and the lines people read. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "util.h"

static void assert_progress_equal(const Progress *a, const Progress *b) {
        assert_string_equal(a->run_id, b->run_id);
        assert_int_equal(a->pid, b->pid);
        assert_int_equal(a->running, b->running);
        assert_int_equal(a->started_usec, b->started_usec);
        assert_int_equal(a->updated_usec, b->updated_usec);
        assert_int_equal(a->done, b->done);
        assert_int_equal(a->total, b->total);
        for (size_t k = 0; k < _PROGRESS_KIND_MAX; k++)
                assert_int_equal(a->pending[k], b->pending[k]);
        assert_int_equal(a->held, b->held);
        assert_int_equal(a->drift, b->drift);
        assert_int_equal(a->failed, b->failed);
        assert_int_equal(a->quarantined, b->quarantined);
        assert_int_equal(a->eta_usec, b->eta_usec);
}

static void test_round_trip(void **state) {
        Progress in = {
                .run_id = "0123456789abcdef0123456789abcdef", .pid = 4242, .running = true,
                .started_usec = 1700000000123456, .updated_usec = 1700000005000000, .done = 120,
                .total = 5012, .pending = { 4890, 2, 0 }, .held = 131, .drift = 1, .failed = 3,
                .quarantined = 4, .eta_usec = 4892 * USEC_PER_SEC,
        }, out;
        char *text = NULL;

        assert_int_equal(progress_format(&in, &text), 0);
        assert_int_equal(progress_parse(text, &out), 0);
        assert_progress_equal(&in, &out);
        free(text);

        in = (Progress) { 0 };   /* idle, nothing known: still a valid record */
        assert_int_equal(progress_format(&in, &text), 0);
        assert_int_equal(progress_parse(text, &out), 0);
        assert_progress_equal(&in, &out);
        free(text);
}

static void test_garbage_refused(void **state) {
        static const char *const bad[] = {
                NULL, "", "nonsense", "[]", "{}", "42",
                /* a field of the wrong type, or missing, or negative */
                "{\"run_id\":1,\"pid\":1,\"running\":true,\"started\":0,\"updated\":0,\"done\":0,\"total\":0,"
                "\"pending\":{\"create\":0,\"copy\":0,\"delete\":0},\"held\":0,\"drift\":0,\"failed\":0,"
                "\"quarantined\":0,\"eta\":0}",
                "{\"run_id\":\"\",\"pid\":1,\"running\":true,\"started\":0,\"updated\":0,\"done\":0,\"total\":0,"
                "\"pending\":{\"create\":0,\"copy\":0},\"held\":0,\"drift\":0,\"failed\":0,"
                "\"quarantined\":0,\"eta\":0}",
                "{\"run_id\":\"\",\"pid\":1,\"running\":true,\"started\":0,\"updated\":0,\"done\":-1,\"total\":0,"
                "\"pending\":{\"create\":0,\"copy\":0,\"delete\":0},\"held\":0,\"drift\":0,\"failed\":0,"
                "\"quarantined\":0,\"eta\":0}",
                "{\"run_id\":\"0123456789abcdef0123456789abcdef0\",\"pid\":1,\"running\":true,\"started\":0,"
                "\"updated\":0,\"done\":0,\"total\":0,\"pending\":{\"create\":0,\"copy\":0,\"delete\":0},"
                "\"held\":0,\"drift\":0,\"failed\":0,\"quarantined\":0,\"eta\":0}",
                "{\"run_id\":\"\",\"pid\":1,\"running\":\"yes\",\"started\":0,\"updated\":0,\"done\":0,\"total\":0,"
                "\"pending\":{\"create\":0,\"copy\":0,\"delete\":0},\"held\":0,\"drift\":0,\"failed\":0,"
                "\"quarantined\":0,\"eta\":0}",
        };
        Progress p = { .done = 7 };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(progress_parse(bad[i], &p), -EINVAL);
                assert_int_equal(p.done, 7);   /* untouched */
        }
}

static void test_eta(void **state) {
        static const struct { size_t open; unsigned ops; uint64_t window, eta; } cases[] = {
                { 0, 60, 60 * USEC_PER_SEC, 0 },
                { 5000, 60, 60 * USEC_PER_SEC, 5000 * USEC_PER_SEC },   /* 83 min */
                { 30, 60, 60 * USEC_PER_SEC, 30 * USEC_PER_SEC },
                { 10, 200, USEC_PER_SEC, 50 * USEC_PER_MSEC },
                { 10, 0, USEC_PER_SEC, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_int_equal(progress_eta(cases[i].open, cases[i].ops, cases[i].window), cases[i].eta);
}

static void test_lines(void **state) {
        static const struct { uint64_t usec; const char *text; } durations[] = {
                { 0, "0 s" }, { 35 * USEC_PER_SEC, "35 s" }, { 59 * USEC_PER_SEC, "59 s" },
                { 60 * USEC_PER_SEC, "1 min" }, { 5000 * USEC_PER_SEC, "1 h 23 min" },
                { 3600 * USEC_PER_SEC, "1 h" }, { 4 * 60 * USEC_PER_SEC + 20 * USEC_PER_SEC, "4 min" },
        };
        char buf[128];
        Progress p = { .running = true, .done = 120, .total = 5012, .eta_usec = 4892 * USEC_PER_SEC };

        for (size_t i = 0; i < ELEMENTSOF(durations); i++) {
                progress_duration(durations[i].usec, buf, sizeof(buf));
                assert_string_equal(buf, durations[i].text);
        }
        progress_line(&p, buf, sizeof(buf));
        assert_string_equal(buf, "120 of 5012 calls done, ETA 1 h 22 min");
        p.done = p.total;
        progress_line(&p, buf, sizeof(buf));
        assert_string_equal(buf, "5012 of 5012 calls done");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_garbage_refused),
                cmocka_unit_test(test_eta),
                cmocka_unit_test(test_lines),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
