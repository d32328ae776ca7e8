/* ratelimit.c: the per-tenant sliding-window limiter of PRODUCT §6.4.
 * A ring holds the start times of the last `ops` requests. The window is kept if a new request
 * starts no earlier than one window after the ops-th most recent start: then no interval of one
 * window length can hold more than `ops` starts. A small margin absorbs clock and network jitter
 * between our clock and the server's. All allocation happens in ratelimit_init(). */
#include "ratelimit.h"

#include <errno.h>
#include <stdlib.h>

#include "util.h"

#define MARGIN_MIN_USEC (50 * USEC_PER_MSEC)
#define MARGIN_MAX_USEC (250 * USEC_PER_MSEC)

static uint64_t add_sat(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t max_u64(uint64_t a, uint64_t b) {
        return a > b ? a : b;
}

int ratelimit_init(RateLimit *rl, unsigned ops, uint64_t window_usec) {
        if (ops == 0 || window_usec == 0)
                return -EINVAL;
        size_t bytes;
        if (__builtin_mul_overflow((size_t) ops, sizeof(uint64_t), &bytes))
                return -ENOMEM;

        /* Slots are written before they are read (`count` says which are), so no zeroing. */
        uint64_t *ring = malloc(bytes);
        if (!ring)
                return -ENOMEM;

        /* A hundredth of the window, but at least 50 ms (network and server-side jitter do not
         * shrink with the window), at most 250 ms, and never more than a tenth of the window. */
        uint64_t margin = window_usec / 100;
        if (margin < MARGIN_MIN_USEC)
                margin = MARGIN_MIN_USEC;
        if (margin > window_usec / 10)
                margin = window_usec / 10;
        *rl = (RateLimit) {
                .ring = ring,
                .ops = ops,
                .window_usec = window_usec,
                .margin_usec = margin < MARGIN_MAX_USEC ? margin : MARGIN_MAX_USEC,
        };
        return 0;
}

void ratelimit_done(RateLimit *rl) {
        if (!rl)
                return;
        free(rl->ring);
        *rl = (RateLimit) {};
}

void ratelimit_record(RateLimit *rl, uint64_t t) {
        if (rl->count < rl->ops) {
                /* Not yet full: head stays 0, so the next free slot is at `count`. */
                rl->ring[(rl->head + rl->count) % rl->ops] = t;
                rl->count++;
                return;
        }
        /* Full: the oldest entry is overwritten and the next one becomes the oldest. */
        rl->ring[rl->head] = t;
        rl->head = (rl->head + 1) % rl->ops;
}

void ratelimit_seed(RateLimit *rl, const uint64_t *times, size_t n) {
        /* Older starts than the last `ops` can never decide the next start time. */
        if (n > rl->ops) {
                times += n - rl->ops;
                n = rl->ops;
        }
        for (size_t i = 0; i < n; i++)
                ratelimit_record(rl, times[i]);
}

uint64_t ratelimit_next_within(const RateLimit *rl, uint64_t now, unsigned limit) {
        uint64_t next = max_u64(now, rl->paused_until);

        if (limit == 0 || limit > rl->ops)
                limit = rl->ops;
        if (rl->count < limit)
                return next;

        /* The limit-th most recent start must leave the window first. A start time later than
         * `now` means the wall clock was set back. Counting it as `now` still waits a full window
         * from now (safe, since it really happened earlier), but bounds the stall to one window
         * instead of the size of the clock step. */
        uint64_t oldest = rl->ring[(rl->head + rl->count - limit) % rl->ops];
        if (oldest > now)
                oldest = now;
        return max_u64(next, add_sat(add_sat(oldest, rl->window_usec), rl->margin_usec));
}

uint64_t ratelimit_next(const RateLimit *rl, uint64_t now) {
        return ratelimit_next_within(rl, now, rl->ops);
}

void ratelimit_pause(RateLimit *rl, uint64_t until) {
        rl->paused_until = max_u64(rl->paused_until, until);
}

unsigned ratelimit_used(const RateLimit *rl, uint64_t now) {
        /* With now < window the window reaches back before time 0: every start up to now counts. */
        bool all_old_count = now < rl->window_usec;
        uint64_t from = all_old_count ? 0 : now - rl->window_usec;
        unsigned used = 0;

        for (size_t i = 0; i < rl->count; i++) {
                uint64_t t = rl->ring[(rl->head + i) % rl->ops];
                if ((all_old_count || t > from) && t <= now)
                        used++;
        }
        return used;
}
