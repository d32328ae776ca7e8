/* ratelimit.c: the per-tenant sliding-window rule (see ratelimit.h). Slots are counted from the
 * arrival of their answer, so a window is kept if a new request starts only when fewer than
 * `ops` answers (or calls in flight) lie within one window before it. A small margin absorbs
 * clock and network jitter between our clock and the server's. */
#include "ratelimit.h"

#include <errno.h>

#include "util.h"

#define MARGIN_MIN_USEC (50 * USEC_PER_MSEC)
#define MARGIN_MAX_USEC (250 * USEC_PER_MSEC)

static uint64_t add_sat(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t max_u64(uint64_t a, uint64_t b) {
        return a > b ? a : b;
}

int ratelimit_init(RateLimit *rl, unsigned ops, uint64_t window_usec, uint64_t timeout_usec) {
        if (ops == 0 || window_usec == 0)
                return -EINVAL;

        /* A hundredth of the window, but at least 50 ms (network and server-side jitter do not
         * shrink with the window), at most 250 ms, and never more than a tenth of the window. */
        uint64_t margin = window_usec / 100;
        if (margin < MARGIN_MIN_USEC)
                margin = MARGIN_MIN_USEC;
        if (margin > window_usec / 10)
                margin = window_usec / 10;
        *rl = (RateLimit) {
                .ops = ops,
                .window_usec = window_usec,
                .margin_usec = margin < MARGIN_MAX_USEC ? margin : MARGIN_MAX_USEC,
                .in_flight_usec = timeout_usec,
        };
        return 0;
}

uint64_t ratelimit_hold(const RateLimit *rl, bool in_flight) {
        uint64_t hold = add_sat(rl->window_usec, rl->margin_usec);

        /* The answer arrives at the latest when the request times out; the slot counts from then. */
        return in_flight ? add_sat(hold, rl->in_flight_usec) : hold;
}

unsigned ratelimit_limit(const RateLimit *rl, bool verify) {
        return verify ? (rl->ops + 1) / 2 : rl->ops;
}

uint64_t ratelimit_next(uint64_t nth_release, uint64_t now, uint64_t paused_until) {
        return max_u64(max_u64(now, paused_until), nth_release);
}
