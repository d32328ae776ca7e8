/* handoff.h: `apply --user ID` beside a running daemon (see nimbus-sync(8), LOCKING AND
 * CONCURRENCY). The daemon holds state_dir's lock, so `apply` does not act itself: it records a
 * request in the state store, wakes the daemon with HANDOFF_WAKE_SIGNAL (the daemon also polls the
 * store), and follows the request until the daemon has provisioned the user, then prints the
 * outcome and exits as `apply --user` would. The daemon's side is in daemon.c; what both share
 * is here. */
#pragma once

#include <signal.h>
#include <stddef.h>

#include "cli.h"
#include "planner.h"
#include "runner.h"
#include "util.h"

#define HANDOFF_WAKE_SIGNAL SIGUSR1
/* A daemon that has not even seen the request by then is stuck: `apply` gives up. */
#define HANDOFF_PICKUP_TIMEOUT_USEC (30 * USEC_PER_SEC)
/* The daemon runs a request as `apply` would: retries due later than this end it with exit 2. */
#define HANDOFF_MAX_WAIT_USEC (60 * USEC_PER_SEC)

/* Hands `user` to the daemon whose pid holds the lock and follows it; returns apply's exit status
 * (0 done, 2 something remains, 1 error, the daemon gone or not answering). */
int handoff_apply_user(Cli *cli, const Config *c, const Guid *user, long daemon_pid);
/* The one-line outcome the daemon records for a request: what its run did for the user. */
void handoff_outcome(const Plan *p, const RunnerStats *st, char *buf, size_t size);
