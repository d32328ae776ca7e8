/* dirwatch.h: watches the roster folder and says when its roster files have changed and then
 * stayed unchanged for the settle time. inotify (through uv_fs_event) gives the first hint; a
 * cheap fingerprint of the candidate files (name, size, mtime, inode) decides whether anything
 * really changed and whether it has settled, so half-written files are never read and an
 * unchanged folder costs no work. A periodic rescan is the safety net for missed events. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct DirWatch DirWatch;

/* Called from the loop when the folder's roster files changed and have settled. */
typedef void (*DirWatchFn)(void *userdata);

int dirwatch_new(uv_loop_t *loop, const char *dir, uint64_t settle_usec, uint64_t rescan_usec,
                 DirWatchFn changed, void *userdata, DirWatch **ret);
/* Frees from the handles' close callbacks: run the loop afterwards. Accepts NULL. */
void dirwatch_close(DirWatch *w);
/* Forget the last fingerprint, so the next check reports a change (after a reload). */
void dirwatch_invalidate(DirWatch *w);

/* The fingerprint of the roster files in dir; -errno if the folder cannot be read. */
int dirwatch_fingerprint(const char *dir, uint64_t *ret);
/* False while a roster file in dir was modified within the last settle_usec (it may still be
 * being written); true otherwise, and when the folder cannot be read. */
bool dirwatch_settled(const char *dir, uint64_t settle_usec);
