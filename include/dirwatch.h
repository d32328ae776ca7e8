/* dirwatch.h: watches the roster folder and says when its roster files have changed and then
 * stayed unchanged for the settle time, with no writer on this host seen holding one open.
 * inotify gives the first hint, and tells a file a writer has closed from one whose writer
 * merely paused (openfiles.h); the roster folder's fingerprint (roster_fingerprint(): names,
 * inodes, sizes, mtimes, symlinks followed) decides whether anything really changed and whether
 * it has settled, so half-written files are never read and an unchanged folder costs no work. A
 * periodic rescan is the safety net for missed events and network shares, and notices a symlink
 * whose target went away. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct DirWatch DirWatch;

/* Called from the loop when the folder's roster files changed and have settled: read the folder
 * and set *fingerprint to the fingerprint of what was read (roster_load_dir() gives it). Return
 * -EAGAIN when the folder changed while it was read, -EBUSY when a file's writer still holds it
 * open: it is read again after the settle time. */
typedef int (*DirWatchFn)(void *userdata, uint64_t *fingerprint);

/* seen: the fingerprint of the folder as the caller has just read it, so that only a change
 * after that read calls `changed`; NULL when it has not been read, which then happens once the
 * files have settled. */
int dirwatch_new(uv_loop_t *loop, const char *dir, uint64_t settle_usec, uint64_t rescan_usec,
                 const uint64_t *seen, DirWatchFn changed, void *userdata, DirWatch **ret);
#define DIRWATCH_HELD_SETTLES 10

/* Called once when a roster file has stayed modified and open in its writer's hands for
 * DIRWATCH_HELD_SETTLES settle times (name: the file, or NULL when inotify lost track of which): the roster is not read
 * until the writer closes it, and the admin should hear why. Again after the next read. */
typedef void (*DirWatchHeldFn)(void *userdata, const char *name);
void dirwatch_on_held(DirWatch *w, DirWatchHeldFn held);
/* Frees from the handles' close callbacks: run the loop afterwards. Accepts NULL. */
void dirwatch_close(DirWatch *w);
/* False while a roster file in dir was modified within the last settle_usec (it may still be
 * being written); true otherwise, and when the folder cannot be read. */
bool dirwatch_settled(const char *dir, uint64_t settle_usec);
