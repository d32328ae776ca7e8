/* backoff.c: retry delays of nimbus-sync.yaml(5), RETRIES: exponential backoff with full jitter,
 * honouring Retry-After. The delay functions are pure (the caller supplies the random value), so
 * they are deterministic under test; only backoff_random() touches the system. */
#include "backoff.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define RETRY_AFTER_MAX_USEC (3600 * USEC_PER_SEC)

/* The high 64 bits of the 128-bit product a * b, in portable C. */
static uint64_t mul_hi64(uint64_t a, uint64_t b) {
        uint64_t a_lo = (uint32_t) a, a_hi = a >> 32;
        uint64_t b_lo = (uint32_t) b, b_hi = b >> 32;
        uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
        /* Cannot overflow: at most (2^32-1)^2 + 2 * (2^32-1) = 2^64 - 1. */
        uint64_t cross = (lo_lo >> 32) + (uint32_t) hi_lo + lo_hi;
        return hi_hi + (hi_lo >> 32) + (cross >> 32);
}

/* min(cap, base * 2^(attempt-1)) without overflow. */
static uint64_t backoff_ceiling(uint64_t base_usec, uint64_t cap_usec, unsigned attempt) {
        unsigned shift = attempt > 0 ? attempt - 1 : 0;
        if (base_usec == 0)
                return 0;
        if (shift >= 64 || base_usec > (cap_usec >> shift))
                return cap_usec;
        return base_usec << shift;
}

uint64_t backoff_delay(uint64_t base_usec, uint64_t cap_usec, unsigned attempt, uint64_t rnd) {
        uint64_t ceiling = backoff_ceiling(base_usec, cap_usec, attempt);
        if (ceiling == UINT64_MAX)
                return rnd;
        /* Scale rnd from [0, 2^64) to [0, ceiling]: uniform without modulo bias worth mentioning,
         * and monotonic, so rnd = 0 gives 0 and rnd = UINT64_MAX gives the ceiling. */
        return mul_hi64(rnd, ceiling + 1);
}

uint64_t backoff_delay_honouring(uint64_t base_usec, uint64_t cap_usec, unsigned attempt,
                                 uint64_t rnd, uint64_t retry_after_usec) {
        uint64_t delay = backoff_delay(base_usec, cap_usec, attempt, rnd);
        /* The server knows its own load: its wish beats our cap, but a broken or hostile server
         * must not park us for days. */
        uint64_t asked = retry_after_usec < RETRY_AFTER_MAX_USEC ? retry_after_usec : RETRY_AFTER_MAX_USEC;
        return delay > asked ? delay : asked;
}

/* SplitMix64 finaliser: spreads the few changing bits of a clock reading over all 64. */
static uint64_t mix64(uint64_t x) {
        x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
        return x ^ (x >> 31);
}

uint64_t backoff_random(void) {
        uint64_t v;
        /* GRND_NONBLOCK: early at boot a daemon must not hang for jitter; the fallback is good
         * enough to keep many clients from retrying in lockstep, which is all jitter is for. */
        if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t) sizeof v)
                return v;

        struct timespec mono = {}, real = {};
        (void) clock_gettime(CLOCK_MONOTONIC, &mono);
        (void) clock_gettime(CLOCK_REALTIME, &real);
        uint64_t seed = (uint64_t) mono.tv_nsec ^ ((uint64_t) real.tv_nsec << 20) ^
                        (uint64_t) real.tv_sec ^ ((uint64_t) getpid() << 40);
        return mix64(seed);
}
