/* test_backoff: exponential backoff with full jitter and Retry-After (nimbus-sync.yaml(5),
 * RETRIES). The delay functions take the random value as input, so bounds are checked exactly at
 * both ends of the random range and against a 128-bit reference for values in between. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backoff.h"
#include "util.h"

#define SEC USEC_PER_SEC
#define BASE (2 * SEC)          /* nimbus-sync.yaml(5), RETRIES: 2 s base, 15 min cap */
#define CAP (900 * SEC)
#define HOUR (3600 * SEC)

static uint64_t xorshift(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/* The ceiling the documentation promises, computed the slow and obvious way. */
static uint64_t expected_ceiling(uint64_t base, uint64_t cap, unsigned attempt) {
        uint64_t c = base;
        for (unsigned i = 1; i < attempt; i++) {
                if (c > cap / 2)
                        return cap;
                c *= 2;
        }
        return c < cap ? c : cap;
}

static void test_bounds_per_attempt(void **state) {
        uint64_t seed = 42;
        for (unsigned a = 1; a <= 20; a++) {
                uint64_t ceiling = expected_ceiling(BASE, CAP, a);
                assert_int_equal(backoff_delay(BASE, CAP, a, 0), 0);
                assert_int_equal(backoff_delay(BASE, CAP, a, UINT64_MAX), ceiling);
                for (int i = 0; i < 1000; i++) {
                        uint64_t rnd = xorshift(&seed);
                        uint64_t d = backoff_delay(BASE, CAP, a, rnd);
                        assert_true(d <= ceiling);
#ifdef __SIZEOF_INT128__
                        /* Scaling reference: floor(rnd * (ceiling + 1) / 2^64). */
                        assert_int_equal(d, (uint64_t) (((unsigned __int128) rnd * (ceiling + 1)) >> 64));
#endif
                }
        }
}

static void test_doubles_until_cap(void **state) {
        assert_int_equal(backoff_delay(BASE, CAP, 1, UINT64_MAX), 2 * SEC);
        assert_int_equal(backoff_delay(BASE, CAP, 2, UINT64_MAX), 4 * SEC);
        assert_int_equal(backoff_delay(BASE, CAP, 9, UINT64_MAX), 512 * SEC);
        assert_int_equal(backoff_delay(BASE, CAP, 10, UINT64_MAX), CAP);     /* 1024 s > 900 s */
        assert_int_equal(backoff_delay(BASE, CAP, 1000, UINT64_MAX), CAP);
        assert_int_equal(backoff_delay(BASE, CAP, 0, UINT64_MAX), 2 * SEC);  /* 0 counts as 1 */
        assert_int_equal(backoff_delay(BASE, 1 * SEC, 1, UINT64_MAX), 1 * SEC); /* cap < base */
}

static void test_monotonic_in_rnd(void **state) {
        uint64_t prev = 0;
        for (uint64_t rnd = 0; rnd < UINT64_MAX - (UINT64_MAX >> 8); rnd += UINT64_MAX >> 8) {
                uint64_t d = backoff_delay(BASE, CAP, 5, rnd);
                assert_true(d >= prev);
                prev = d;
        }
}

static void test_no_overflow(void **state) {
        /* Caps near UINT64_MAX and huge attempts: the ceiling saturates at the cap. */
        const uint64_t caps[] = { UINT64_MAX, UINT64_MAX - 1, UINT64_MAX / 2 + 1, UINT64_MAX / 3 };
        const unsigned attempts[] = { 1, 2, 63, 64, 65, 100, 999, 1000 };
        for (size_t c = 0; c < ELEMENTSOF(caps); c++)
                for (size_t a = 0; a < ELEMENTSOF(attempts); a++) {
                        uint64_t ceiling = expected_ceiling(BASE, caps[c], attempts[a]);
                        assert_int_equal(backoff_delay(BASE, caps[c], attempts[a], UINT64_MAX), ceiling);
                        assert_int_equal(backoff_delay(BASE, caps[c], attempts[a], 0), 0);
                        assert_true(backoff_delay(BASE, caps[c], attempts[a], UINT64_MAX / 2) <= ceiling);
                }
        assert_int_equal(backoff_delay(UINT64_MAX, UINT64_MAX, 1, 12345), 12345);
        assert_int_equal(backoff_delay(UINT64_MAX, UINT64_MAX, 1000, UINT64_MAX), UINT64_MAX);
        assert_int_equal(backoff_delay(1, UINT64_MAX, 64, UINT64_MAX), UINT64_C(1) << 63);
        assert_int_equal(backoff_delay(0, CAP, 1000, UINT64_MAX), 0);
}

/* Full jitter spreads the delay over the whole range, not around the ceiling. */
static void test_spread(void **state) {
        const unsigned n = 100000;
        unsigned buckets[10] = {};
        uint64_t seed = 7;
        for (unsigned i = 0; i < n; i++) {
                uint64_t d = backoff_delay(BASE, CAP, 20, xorshift(&seed));
                buckets[d * 10 / (CAP + 1)]++;
        }
        for (size_t b = 0; b < ELEMENTSOF(buckets); b++) {
                assert_true(buckets[b] > n / 10 * 9 / 10);
                assert_true(buckets[b] < n / 10 * 11 / 10);
        }
}

static void test_honouring(void **state) {
        uint64_t jitter = backoff_delay(BASE, CAP, 3, UINT64_MAX / 2);
        assert_true(jitter > 0 && jitter < 10 * SEC);
        assert_int_equal(backoff_delay_honouring(BASE, CAP, 3, UINT64_MAX / 2, 0), jitter);
        /* The larger of the two. */
        assert_int_equal(backoff_delay_honouring(BASE, CAP, 3, UINT64_MAX / 2, 1), jitter);
        assert_int_equal(backoff_delay_honouring(BASE, CAP, 3, UINT64_MAX / 2, 30 * SEC), 30 * SEC);
        /* The server may ask for more than our cap... */
        assert_int_equal(backoff_delay_honouring(BASE, CAP, 3, 0, 20 * 60 * SEC), 20 * 60 * SEC);
        /* ...but not for more than an hour. */
        assert_int_equal(backoff_delay_honouring(BASE, CAP, 3, 0, 2 * HOUR), HOUR);
        assert_int_equal(backoff_delay_honouring(BASE, CAP, 3, 0, UINT64_MAX), HOUR);
        /* With a cap above an hour, our own jitter may still exceed the server's wish. */
        assert_int_equal(backoff_delay_honouring(BASE, 3 * HOUR, 1000, UINT64_MAX, 2 * HOUR), 3 * HOUR);
}

static void test_random(void **state) {
        uint64_t all_and = UINT64_MAX, all_or = 0, first = backoff_random();
        bool differs = false;
        for (int i = 0; i < 128; i++) {
                uint64_t v = backoff_random();
                all_and &= v;
                all_or |= v;
                differs |= v != first;
        }
        /* Every bit takes both values: fails by chance with probability about 2^-121. */
        assert_true(differs);
        assert_int_equal(all_and, 0);
        assert_int_equal(all_or, UINT64_MAX);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bounds_per_attempt),
                cmocka_unit_test(test_doubles_until_cap),
                cmocka_unit_test(test_monotonic_in_rnd),
                cmocka_unit_test(test_no_overflow),
                cmocka_unit_test(test_spread),
                cmocka_unit_test(test_honouring),
                cmocka_unit_test(test_random),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
