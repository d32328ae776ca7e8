/* ratelimit.h: the per-tenant sliding-window rule of nimbus-sync.yaml(5), RATE LIMIT.
 * At most `ops` requests may start within any window of length `window`, counted across every
 * process that uses the tenant's state store. Each request holds a slot: from its send while it
 * is in flight, and for one window (plus a small margin) after its answer arrived. The server saw
 * the request at the latest when the answer arrived, so however long the transit, no window on
 * the server's side can hold more than `ops` arrivals. The slots live in the store, where every
 * process looks for room and takes it in one transaction (store_rate_slot()); these pure
 * functions give the numbers of the rule. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct RateLimit {
        unsigned ops;
        uint64_t window_usec;
        uint64_t margin_usec;   /* safety gap against clock and network jitter: window/100 within [50 ms, 250 ms], at most window/10 */
        uint64_t in_flight_usec;/* the longest a request can be in flight (its timeout) */
} RateLimit;

/* -EINVAL if ops == 0 or window == 0. */
int ratelimit_init(RateLimit *rl, unsigned ops, uint64_t window_usec, uint64_t timeout_usec);
/* How long a slot is held after its time t: answered (t = the answer's arrival) or still in
 * flight (t = the send; a process that died in flight leaves its slot so). */
uint64_t ratelimit_hold(const RateLimit *rl, bool in_flight);
/* How many slots a call may find held and still start: all of them for mutations, half for the
 * verify GETs, which only take spare budget. */
unsigned ratelimit_limit(const RateLimit *rl, bool verify);
/* The earliest time >= now at which one more request may start: once the limit-th latest of the
 * slots held now is released (nth_release; 0 when fewer than the limit are held), and not before
 * paused_until (a 429). */
uint64_t ratelimit_next(uint64_t nth_release, uint64_t now, uint64_t paused_until);
