/* source_poll.h: reading the directory sources on the libuv loop. A sweep reads every group once,
 * one after the other, through one Graph client, and hands each result to source_set_result().
 * The daemon repeats sweeps every source_interval (with jitter, so several hosts do not poll in
 * step); apply, plan and validate --online run one sweep on a loop of their own. */
#pragma once

#include <stddef.h>
#include <uv.h>

#include "diag.h"
#include "log.h"
#include "source.h"
#include "store.h"

typedef struct SourcePoller SourcePoller;

/* A sweep has ended; changed = how many sources' lists in force it changed. */
typedef void (*SourceSweepDoneFn)(void *userdata, size_t changed);

/* set, store (may be NULL: nothing recorded) and log must outlive the poller. The credential is
 * read from the configured files; problems go to diag. */
int source_poller_new(uv_loop_t *loop, SourceSet *set, Store *store, const Logger *log, SourcePoller **ret,
                      Diag *diag);
/* A read in flight is cancelled (its source keeps what it had); freed from a close callback, so
 * run the loop afterwards. Accepts NULL. */
void source_poller_close(SourcePoller *p);
/* One sweep, started from the loop; -EBUSY while one runs. */
int source_poller_sweep(SourcePoller *p, SourceSweepDoneFn done, void *userdata);
/* Sweep now, then source_interval (±10 %) after each sweep ended, calling done each time. */
int source_poller_start(SourcePoller *p, SourceSweepDoneFn done, void *userdata);

/* One sweep on a loop of its own, for the commands that run once. */
int source_refresh(SourceSet *set, Store *store, const Logger *log, Diag *diag);
