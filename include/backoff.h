/* backoff.h: retry delays of nimbus-sync.yaml(5), RETRIES: exponential backoff with full jitter,
 * honouring Retry-After. Pure functions: the caller passes the random value, so tests are
 * deterministic. */
#pragma once

#include <stdint.h>

/* Full jitter: a delay uniform in [0, min(cap, base * 2^(attempt-1))], chosen by `rnd`.
 * attempt is 1-based (the attempt that just failed). Never overflows. */
uint64_t backoff_delay(uint64_t base_usec, uint64_t cap_usec, unsigned attempt, uint64_t rnd);
/* The delay to use when the server also asked for retry_after_usec (0 = not given): the larger of
 * the two, but never more than cap_usec... unless the server asked for more, which is honoured up
 * to 1 hour. */
uint64_t backoff_delay_honouring(uint64_t base_usec, uint64_t cap_usec, unsigned attempt,
                                 uint64_t rnd, uint64_t retry_after_usec);
/* A uniformly random 64-bit value from getrandom(). */
uint64_t backoff_random(void);
