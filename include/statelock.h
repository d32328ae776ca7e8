/* statelock.h: one writer per tenant. The daemon and `apply` hold an exclusive lock on state_dir
 * for as long as they run, so two of them never act on one tenant at once (see nimbus-sync(8),
 * LOCKING AND CONCURRENCY). It is an flock(2) on state_dir/state.lock, taken without waiting; the
 * file names its holder (pid and command), so whoever finds it taken can say who has it. The
 * kernel drops the lock when the holder exits, however it exits. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define STATELOCK_FILE_NAME "state.lock"
#define STATELOCK_COMMAND_MAX 16

typedef struct StateLock StateLock;

typedef struct StateLockHolder {
        long pid;                              /* 0 when the file does not say (yet) */
        char command[STATELOCK_COMMAND_MAX];   /* "daemon", "apply", or "" */
} StateLockHolder;

/* Take the lock for `command`. -EWOULDBLOCK when another process holds it: then *holder (if
 * not NULL) says who. Other negative errno values: the file could not be opened. */
int statelock_take(const char *state_dir, const char *command, StateLock **ret, StateLockHolder *holder);
/* Is this the lock of state_dir (however the path is spelt)? */
bool statelock_is_for(const StateLock *l, const char *state_dir);
/* "the daemon (pid N)", "`nimbus-sync apply` (pid N)", or "another process", for messages. */
const char *statelock_describe(const StateLockHolder *h, char *buf, size_t size);
/* Releases the lock and frees l. Accepts NULL; returns NULL. */
StateLock *statelock_release(StateLock *l);
