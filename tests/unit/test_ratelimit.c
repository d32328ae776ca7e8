/* test_ratelimit: the sliding-window limiter (PRODUCT §6.4). Besides the single rules, a simulated
 * clock drives the limiter through many operations and a brute-force check over the recorded start
 * times confirms that no window ever holds more than `ops` starts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "ratelimit.h"
#include "util.h"

#define SEC USEC_PER_SEC
#define MSEC USEC_PER_MSEC

/* The largest number of starts that fall in any half-open interval [t, t + window). It suffices
 * to try intervals that begin at a start time: moving an interval's beginning forward to its
 * first start loses nothing. */
static unsigned max_in_window(const uint64_t *times, size_t n, uint64_t window) {
        unsigned worst = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned c = 0;
                for (size_t j = 0; j < n; j++)
                        if (times[j] >= times[i] && times[j] < times[i] + window)
                                c++;
                if (c > worst)
                        worst = c;
        }
        return worst;
}

/* A deterministic generator for the simulation, so a failure can be reproduced. */
static uint64_t xorshift(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static void test_init_rejects_zero(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 0, SEC), -EINVAL);
        assert_int_equal(ratelimit_init(&rl, 3, 0), -EINVAL);
        ratelimit_done(NULL);
}

static void test_margin(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 3, SEC), 0);
        assert_int_equal(rl.margin_usec, 50 * MSEC);             /* window / 100 = 10 ms, raised to 50 ms */
        ratelimit_done(&rl);
        assert_null(rl.ring);
        assert_int_equal(ratelimit_init(&rl, 60, 60 * SEC), 0);
        assert_int_equal(rl.margin_usec, 250 * MSEC);            /* 600 ms, capped */
        ratelimit_done(&rl);
        assert_int_equal(ratelimit_init(&rl, 1, 100), 0);
        assert_int_equal(rl.margin_usec, 10);                     /* a tenth of a tiny window */
        ratelimit_done(&rl);
        ratelimit_done(&rl);                                      /* twice is harmless */
}

static void test_three_then_wait(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 3, SEC), 0);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(ratelimit_next(&rl, 0), 0);
                ratelimit_record(&rl, 0);
        }
        assert_int_equal(ratelimit_next(&rl, 0), SEC + 50 * MSEC);
        assert_int_equal(ratelimit_next(&rl, 500 * MSEC), SEC + 50 * MSEC);
        assert_int_equal(ratelimit_next(&rl, 2 * SEC), 2 * SEC);  /* never earlier than now */
        ratelimit_done(&rl);
}

/* A share of the window: with 4 ops, limit 2 waits for the 2nd most recent start to leave. */
static void test_next_within_share(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 4, SEC), 0);
        assert_int_equal(ratelimit_next_within(&rl, 0, 2), 0);
        ratelimit_record(&rl, 0);
        assert_int_equal(ratelimit_next_within(&rl, 0, 2), 0);
        ratelimit_record(&rl, 100 * MSEC);
        /* two in the window: the older (t=0) must leave first */
        assert_int_equal(ratelimit_next_within(&rl, 100 * MSEC, 2), SEC + 50 * MSEC);
        ratelimit_record(&rl, 200 * MSEC);
        /* now the 2nd most recent is t=100ms */
        assert_int_equal(ratelimit_next_within(&rl, 200 * MSEC, 2), 1100 * MSEC + 50 * MSEC);
        /* the full window still has room for one more */
        assert_int_equal(ratelimit_next(&rl, 200 * MSEC), 200 * MSEC);
        /* limits of 0 or above ops mean the whole window */
        assert_int_equal(ratelimit_next_within(&rl, 200 * MSEC, 0), 200 * MSEC);
        assert_int_equal(ratelimit_next_within(&rl, 200 * MSEC, 99), 200 * MSEC);
        ratelimit_done(&rl);
}

static void test_ring_wraps(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 3, 10 * SEC), 0);
        for (uint64_t t = 0; t < 5; t++)
                ratelimit_record(&rl, t * SEC);
        /* The ring holds 2, 3, 4 s: the third most recent start is at 2 s. */
        assert_int_equal(ratelimit_next(&rl, 4 * SEC), 12 * SEC + 100 * MSEC);
        ratelimit_record(&rl, 12 * SEC + 100 * MSEC);
        assert_int_equal(ratelimit_next(&rl, 12 * SEC + 100 * MSEC), 13 * SEC + 100 * MSEC);
        ratelimit_done(&rl);
}

/* Drive the limiter like the runner does: each operation arrives at some time, waits for
 * ratelimit_next() and is recorded when it starts. Returns the start times. */
static uint64_t *simulate(RateLimit *rl, size_t n, uint64_t seed, uint64_t max_gap) {
        uint64_t *times = calloc(n, sizeof *times);
        uint64_t now = 0;
        assert_non_null(times);
        for (size_t i = 0; i < n; i++) {
                if (max_gap > 0)
                        now += xorshift(&seed) % max_gap;
                uint64_t t = ratelimit_next(rl, now);
                assert_true(t >= now);
                ratelimit_record(rl, t);
                times[i] = now = t;
        }
        return times;
}

static void test_simulated_backlog(void **state) {
        const size_t n = 1000;
        const unsigned ops = 3;
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, ops, SEC), 0);

        /* All 1000 operations are queued at time 0. */
        uint64_t *times = simulate(&rl, n, 1, 0);
        assert_true(max_in_window(times, n, SEC) <= ops);

        /* The least possible: batches of `ops` one window apart, so the last batch starts after
         * (n-1)/ops windows. The limiter may add its margin per window and nothing more. */
        uint64_t windows = (n - 1) / ops;
        assert_true(times[n - 1] >= windows * SEC);
        assert_true(times[n - 1] <= windows * (SEC + rl.margin_usec));
        free(times);
        ratelimit_done(&rl);
}

static void test_simulated_random_arrivals(void **state) {
        const unsigned ops_list[] = { 1, 3, 7, 60 };
        for (size_t k = 0; k < ELEMENTSOF(ops_list); k++) {
                RateLimit rl;
                const size_t n = 1000;
                assert_int_equal(ratelimit_init(&rl, ops_list[k], 60 * SEC), 0);
                /* Gaps up to 30 s: sometimes the limiter waits, sometimes the queue is empty. */
                uint64_t *times = simulate(&rl, n, 0x9e3779b97f4a7c15 + k, 30 * SEC / ops_list[k]);
                assert_true(max_in_window(times, n, 60 * SEC) <= ops_list[k]);
                free(times);
                ratelimit_done(&rl);
        }
}

/* The brute-force checker must be able to fail, or the tests above prove nothing. */
static void test_checker_detects_overrun(void **state) {
        const uint64_t times[] = { 0, 400 * MSEC, 999 * MSEC, 1000 * MSEC, 1400 * MSEC };
        assert_int_equal(max_in_window(times, 5, SEC), 3);        /* e.g. {0, 400, 999} */
        assert_int_equal(max_in_window(times, 5, 1001 * MSEC), 4); /* {0, 400, 999, 1000} */
}

static void test_seed_keeps_last_ops(void **state) {
        /* The store's list of recent start times, ascending, longer than the ring. */
        uint64_t stored[10];
        for (size_t i = 0; i < 10; i++)
                stored[i] = i * 100 * MSEC;

        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 3, SEC), 0);
        ratelimit_seed(&rl, stored, 10);
        assert_int_equal(rl.count, 3);
        /* The last three are 700, 800, 900 ms: the next may start at 700 ms + 1 s + margin. */
        assert_int_equal(ratelimit_next(&rl, 950 * MSEC), 1750 * MSEC);
        assert_int_equal(ratelimit_used(&rl, 950 * MSEC), 3);
        ratelimit_done(&rl);

        assert_int_equal(ratelimit_init(&rl, 3, SEC), 0);
        ratelimit_seed(&rl, stored, 2);                           /* fewer than ops: no wait */
        assert_int_equal(ratelimit_next(&rl, 150 * MSEC), 150 * MSEC);
        ratelimit_record(&rl, 150 * MSEC);
        assert_int_equal(ratelimit_next(&rl, 150 * MSEC), 1050 * MSEC);
        ratelimit_seed(&rl, NULL, 0);
        assert_int_equal(rl.count, 3);
        ratelimit_done(&rl);
}

static void test_pause(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 3, SEC), 0);
        ratelimit_pause(&rl, 5 * SEC);
        assert_int_equal(ratelimit_next(&rl, 0), 5 * SEC);
        ratelimit_pause(&rl, 3 * SEC);                            /* does not shorten */
        assert_int_equal(ratelimit_next(&rl, 0), 5 * SEC);
        ratelimit_pause(&rl, 7 * SEC);                            /* extends */
        assert_int_equal(ratelimit_next(&rl, 0), 7 * SEC);
        assert_int_equal(ratelimit_next(&rl, 8 * SEC), 8 * SEC);

        /* Window and pause together: the later of the two wins. */
        for (int i = 0; i < 3; i++)
                ratelimit_record(&rl, 7 * SEC);
        assert_int_equal(ratelimit_next(&rl, 7 * SEC), 8 * SEC + 50 * MSEC);
        ratelimit_pause(&rl, 20 * SEC);
        assert_int_equal(ratelimit_next(&rl, 7 * SEC), 20 * SEC);
        ratelimit_done(&rl);
}

static void test_used(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 5, SEC), 0);
        assert_int_equal(ratelimit_used(&rl, 0), 0);
        ratelimit_record(&rl, 0);
        ratelimit_record(&rl, 500 * MSEC);
        ratelimit_record(&rl, 1000 * MSEC);
        assert_int_equal(ratelimit_used(&rl, 1000 * MSEC), 2);    /* (0, 1 s]: 0 has left */
        assert_int_equal(ratelimit_used(&rl, 999 * MSEC), 2);     /* 1 s is not yet */
        assert_int_equal(ratelimit_used(&rl, 1499 * MSEC), 2);
        assert_int_equal(ratelimit_used(&rl, 1500 * MSEC), 1);
        assert_int_equal(ratelimit_used(&rl, 2000 * MSEC), 0);
        assert_int_equal(ratelimit_used(&rl, 600 * MSEC), 2);     /* window reaches before 0 */
        ratelimit_done(&rl);
}

static void test_clock_set_back(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 3, SEC), 0);
        for (int i = 0; i < 3; i++)
                ratelimit_record(&rl, 3600 * SEC);
        /* The wall clock went back an hour: wait one window from now, not an hour. */
        assert_int_equal(ratelimit_next(&rl, 10 * SEC), 11 * SEC + 50 * MSEC);
        ratelimit_done(&rl);
}

static void test_saturates(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 1, UINT64_MAX / 2), 0);
        ratelimit_record(&rl, UINT64_MAX - 10);
        assert_int_equal(ratelimit_next(&rl, UINT64_MAX - 5), UINT64_MAX);
        ratelimit_done(&rl);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init_rejects_zero),
                cmocka_unit_test(test_margin),
                cmocka_unit_test(test_three_then_wait),
                cmocka_unit_test(test_next_within_share),
                cmocka_unit_test(test_ring_wraps),
                cmocka_unit_test(test_simulated_backlog),
                cmocka_unit_test(test_simulated_random_arrivals),
                cmocka_unit_test(test_checker_detects_overrun),
                cmocka_unit_test(test_seed_keeps_last_ops),
                cmocka_unit_test(test_pause),
                cmocka_unit_test(test_used),
                cmocka_unit_test(test_clock_set_back),
                cmocka_unit_test(test_saturates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
