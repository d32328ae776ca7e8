/* ratelimit.h: the per-tenant sliding-window limiter of PRODUCT §6.4.
 * At most `ops` requests may start within any window of length `window`. The limiter keeps the
 * start times of the last `ops` requests in a ring, so the question "when may the next one start?"
 * is answered in O(1): at the time the ops-th most recent start leaves the window. The ring is
 * seeded from the store at start-up, so a restart cannot break the window. A 429 pauses it whole. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct RateLimit {
        uint64_t *ring;         /* start times, usec, oldest at `head` once full */
        size_t head, count;
        unsigned ops;
        uint64_t window_usec;
        uint64_t margin_usec;   /* safety gap against clock and network jitter: window/100 within [50 ms, 250 ms], at most window/10 */
        uint64_t paused_until;  /* 429 or Retry-After: nothing starts before this */
} RateLimit;

int ratelimit_init(RateLimit *rl, unsigned ops, uint64_t window_usec); /* -EINVAL if ops == 0 or window == 0 */
void ratelimit_done(RateLimit *rl);
/* Record start times read from the store (ascending); only the last `ops` matter. */
void ratelimit_seed(RateLimit *rl, const uint64_t *times, size_t n);
/* The earliest time >= now at which one more request may start. */
uint64_t ratelimit_next(const RateLimit *rl, uint64_t now);
/* The same for a smaller share of the window: the earliest time >= now at which fewer than `limit`
 * starts lie in the window. Verify GETs use half the window, so they only take spare budget. */
uint64_t ratelimit_next_within(const RateLimit *rl, uint64_t now, unsigned limit);
/* Record a start at t (t >= every earlier t). */
void ratelimit_record(RateLimit *rl, uint64_t t);
/* Nothing starts before `until` (a later pause extends, an earlier one does not shorten). */
void ratelimit_pause(RateLimit *rl, uint64_t until);
/* How many recorded starts lie within (now - window, now]. */
unsigned ratelimit_used(const RateLimit *rl, uint64_t now);
