/* test_ratelimit: the sliding-window rule (nimbus-sync(8), RATE LIMIT): its numbers, and then the
 * rule as processes really use it, through the state store. Several store connections (processes)
 * share one store on a simulated clock; each takes its slots as the tenant does (one transaction:
 * look for room, take the slot), answers come after random transit times, and a brute-force check
 * over the times the server could have seen the requests confirms that no window ever holds more
 * than `ops` of them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ratelimit.h"
#include "store.h"
#include "util.h"

#define SEC USEC_PER_SEC
#define MSEC USEC_PER_MSEC

/* The largest number of arrivals that fall in any half-open interval [t, t + window). It suffices
 * to try intervals that begin at an arrival: moving an interval's beginning forward to its first
 * arrival loses nothing. */
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
        assert_int_equal(ratelimit_init(&rl, 0, SEC, SEC), -EINVAL);
        assert_int_equal(ratelimit_init(&rl, 3, 0, SEC), -EINVAL);
}

static void test_margin(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 3, SEC, 0), 0);
        assert_int_equal(rl.margin_usec, 50 * MSEC);             /* window / 100 = 10 ms, raised to 50 ms */
        assert_int_equal(ratelimit_init(&rl, 60, 60 * SEC, 0), 0);
        assert_int_equal(rl.margin_usec, 250 * MSEC);            /* 600 ms, capped */
        assert_int_equal(ratelimit_init(&rl, 1, 100, 0), 0);
        assert_int_equal(rl.margin_usec, 10);                     /* a tenth of a tiny window */
}

/* Answered: one window and the margin from the answer. In flight: as if it were answered at the
 * latest moment it can be, when it times out. */
static void test_hold(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 3, SEC, 30 * SEC), 0);
        assert_int_equal(ratelimit_hold(&rl, false), SEC + 50 * MSEC);
        assert_int_equal(ratelimit_hold(&rl, true), 31 * SEC + 50 * MSEC);
        assert_int_equal(ratelimit_init(&rl, 1, UINT64_MAX / 2, UINT64_MAX), 0);
        assert_int_equal(ratelimit_hold(&rl, true), UINT64_MAX);  /* saturates */
}

static void test_limit(void **state) {
        RateLimit rl;
        assert_int_equal(ratelimit_init(&rl, 60, SEC, 0), 0);
        assert_int_equal(ratelimit_limit(&rl, false), 60);
        assert_int_equal(ratelimit_limit(&rl, true), 30);
        assert_int_equal(ratelimit_init(&rl, 1, SEC, 0), 0);
        assert_int_equal(ratelimit_limit(&rl, true), 1);          /* never 0: verify still runs */
}

static void test_next(void **state) {
        static const struct { uint64_t nth, now, paused, want; } cases[] = {
                { 0, 100, 0, 100 },            /* fewer than the limit held: now */
                { 500, 100, 0, 500 },          /* the limit-th latest frees at 500 */
                { 50, 100, 0, 100 },           /* never earlier than now */
                { 0, 100, 700, 700 },          /* a 429 pause */
                { 900, 100, 700, 900 },        /* the later of window and pause */
                { 500, 100, 300, 500 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_int_equal(ratelimit_next(cases[i].nth, cases[i].now, cases[i].paused), cases[i].want);
}

/* The brute-force checker must be able to fail, or the simulation proves nothing. */
static void test_checker_detects_overrun(void **state) {
        const uint64_t times[] = { 0, 400 * MSEC, 999 * MSEC, 1000 * MSEC, 1400 * MSEC };
        assert_int_equal(max_in_window(times, 5, SEC), 3);        /* e.g. {0, 400, 999} */
        assert_int_equal(max_in_window(times, 5, 1001 * MSEC), 4); /* {0, 400, 999, 1000} */
}

/* ---- the simulation -------------------------------------------------------------------------- */

#define SIM_PROCS 3
#define SIM_MAX 400

typedef struct SimCall {
        uint64_t sent, answer, arrival;
        int64_t row;
        int proc;
        bool answered, lost;    /* lost: its process died in flight, the answer is never recorded */
} SimCall;

typedef struct Sim {
        char dir[PATH_MAX];
        Store *s[SIM_PROCS];
        RateLimit rl;
        SimCall calls[SIM_MAX];
        size_t n_calls;
        uint64_t seed, now, max_transit;
        bool dead[SIM_PROCS];
} Sim;

static void sim_open(Sim *sim, unsigned ops, uint64_t window, uint64_t timeout, uint64_t seed) {
        const char *tmp = getenv("TMPDIR");

        *sim = (Sim) { .seed = seed, .now = 1000 * SEC };
        snprintf(sim->dir, sizeof sim->dir, "%s/test-ratelimit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        assert_non_null(mkdtemp(sim->dir));
        for (int p = 0; p < SIM_PROCS; p++)
                assert_int_equal(store_open(sim->dir, false, &sim->s[p]), 0);
        assert_int_equal(ratelimit_init(&sim->rl, ops, window, timeout), 0);
}

static void sim_close(Sim *sim) {
        static const char *const files[] = { STORE_FILE_NAME, STORE_FILE_NAME "-wal", STORE_FILE_NAME "-shm" };
        char p[PATH_MAX + 32];

        for (int i = 0; i < SIM_PROCS; i++)
                store_close(sim->s[i]);
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                snprintf(p, sizeof p, "%s/%s", sim->dir, files[i]);
                (void) unlink(p);
        }
        assert_int_equal(rmdir(sim->dir), 0);
}

/* What the tenant does before each send: 0 and the slot taken, or when to look again. */
static uint64_t sim_try_send(Sim *sim, int p) {
        Store *s = sim->s[p];
        StoreSlot nth = { 0 };
        uint64_t paused = 0, next;
        int r;

        assert_int_equal(store_begin(s), 0);
        r = store_rate_slot(s, sim->now, ratelimit_hold(&sim->rl, false), ratelimit_hold(&sim->rl, true),
                            sim->rl.ops, &nth);
        assert_true(r == 0 || r == -ENOENT);
        assert_int_equal(store_rate_paused_until(s, &paused), 0);
        next = ratelimit_next(r == 0 ? nth.release_usec : 0, sim->now, paused);
        if (next <= sim->now) {
                uint64_t transit = xorshift(&sim->seed) % (sim->max_transit + 1);
                int64_t row = 0;

                assert_int_equal(store_send_begin(s, sim->now, &row), 0);
                sim->calls[sim->n_calls++] = (SimCall) { .sent = sim->now, .answer = sim->now + transit,
                                                         .row = row, .proc = p };
                next = 0;
        }
        assert_int_equal(store_commit(s), 0);
        return next;
}

/* Answers due by now are recorded; the server saw each request somewhere between send and answer. */
static uint64_t sim_answers(Sim *sim) {
        uint64_t next = UINT64_MAX;

        for (size_t i = 0; i < sim->n_calls; i++) {
                SimCall *c = &sim->calls[i];
                if (c->answered)
                        continue;
                if (c->answer > sim->now) {
                        next = c->answer < next ? c->answer : next;
                        continue;
                }
                c->answered = true;
                c->arrival = c->sent + xorshift(&sim->seed) % (c->answer - c->sent + 1);
                c->lost = sim->dead[c->proc];
                if (!c->lost)
                        assert_int_equal(store_send_answered(sim->s[c->proc], c->row, c->answer), 0);
        }
        return next;
}

/* Every process has a backlog: all of them send whenever the shared window lets them, until
 * `wanted` calls were sent and answered. From kill_at calls on, the last process is dead. */
static void sim_run(Sim *sim, size_t wanted, int kill_at) {
        for (;;) {
                uint64_t wake = UINT64_MAX, next = 0;

                (void) sim_answers(sim);
                if (kill_at >= 0 && sim->n_calls >= (size_t) kill_at)
                        sim->dead[SIM_PROCS - 1] = true;   /* its calls in flight stay so in the store */
                for (int p = 0; p < SIM_PROCS && sim->n_calls < wanted; p++) {
                        if (sim->dead[p])
                                continue;
                        while (sim->n_calls < wanted && (next = sim_try_send(sim, p)) == 0)
                                ;
                        if (sim->n_calls < wanted && next < wake)
                                wake = next;
                }
                next = sim_answers(sim);          /* those answered at once, too */
                wake = next < wake ? next : wake;
                if (wake == UINT64_MAX)
                        return;
                assert_true(wake > sim->now);
                sim->now = wake;
        }
}

static void sim_check(Sim *sim) {
        uint64_t arrivals[SIM_MAX];

        for (size_t i = 0; i < sim->n_calls; i++)
                arrivals[i] = sim->calls[i].arrival;
        assert_true(max_in_window(arrivals, sim->n_calls, sim->rl.window_usec) <= sim->rl.ops);
}

/* No transit time, one backlog: batches of `ops` one window (and margin) apart, the least the
 * window allows. */
static void test_shared_backlog_is_fast(void **state) {
        Sim sim;
        const size_t n = 60;
        sim_open(&sim, 3, SEC, 0, 1);
        uint64_t t0 = sim.now;
        sim_run(&sim, n, -1);
        sim_check(&sim);
        uint64_t windows = (n - 1) / 3;
        assert_true(sim.calls[n - 1].sent - t0 >= windows * SEC);
        assert_true(sim.calls[n - 1].sent - t0 <= windows * (SEC + sim.rl.margin_usec));
        sim_close(&sim);
}

/* Three processes, answers taking up to the timeout: the server never sees more than `ops`. */
static void test_shared_window_with_transit(void **state) {
        const unsigned ops_list[] = { 1, 4, 20 };
        for (size_t k = 0; k < ELEMENTSOF(ops_list); k++) {
                Sim sim;
                sim_open(&sim, ops_list[k], SEC, 800 * MSEC, 0x9e3779b97f4a7c15 + k);
                sim.max_transit = 800 * MSEC;
                sim_run(&sim, 200, -1);
                sim_check(&sim);
                sim_close(&sim);
        }
}

/* A process dies with calls in flight: their slots count as long as those calls could have been
 * in flight, and the others still keep the window. */
static void test_shared_window_process_dies(void **state) {
        Sim sim;
        sim_open(&sim, 5, SEC, 2 * SEC, 42);
        sim.max_transit = 2 * SEC;
        sim_run(&sim, 150, 40);
        sim_check(&sim);
        sim_close(&sim);
}

/* A 429 seen by one process pauses them all. */
static void test_pause_is_shared(void **state) {
        Sim sim;
        sim_open(&sim, 5, SEC, 0, 7);
        assert_int_equal(store_rate_pause(sim.s[0], sim.now + 10 * SEC), 0);
        assert_int_equal(sim_try_send(&sim, 2), sim.now + 10 * SEC);
        sim.now += 10 * SEC;
        assert_int_equal(sim_try_send(&sim, 1), 0);
        sim_close(&sim);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init_rejects_zero),
                cmocka_unit_test(test_margin),
                cmocka_unit_test(test_hold),
                cmocka_unit_test(test_limit),
                cmocka_unit_test(test_next),
                cmocka_unit_test(test_checker_detects_overrun),
                cmocka_unit_test(test_shared_backlog_is_fast),
                cmocka_unit_test(test_shared_window_with_transit),
                cmocka_unit_test(test_shared_window_process_dies),
                cmocka_unit_test(test_pause_is_shared),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
