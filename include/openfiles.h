/* openfiles.h: which roster files a writer on this host holds open after modifying them, told
 * from the inotify events of the roster folder (dirwatch.c). A file whose writer paused may hold
 * a valid roster of fewer users than it will: it must not be read before the writer closes it.
 *
 * A name is followed from IN_OPEN: each open counts, each close (IN_CLOSE_WRITE or
 * IN_CLOSE_NOWRITE) uncounts, and IN_MODIFY while it is open marks it modified. It is held while
 * it is modified and still open. A modification with nothing open (truncate(2), an mtime set with
 * utimensat()) is complete in itself; a file removed or renamed is forgotten. Opens from before
 * the watch began are not seen: the settle time and roster_file_held_open() cover those. Pure:
 * events in, answers out; no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPENFILES_MAX 32       /* files followed at once; more are not followed */

typedef struct OpenFile {
        char *name;
        unsigned opens;
        bool modified;
} OpenFile;

typedef struct OpenFiles {
        OpenFile files[OPENFILES_MAX];
        size_t n;
} OpenFiles;

/* One inotify event (mask: IN_* bits) for name in the folder. IN_Q_OVERFLOW forgets everything:
 * which opens were closed is then unknown. -ENOMEM if a name cannot be kept (it is not followed). */
int openfiles_event(OpenFiles *o, uint32_t mask, const char *name);
/* The name of a file modified and still open, or NULL. */
const char *openfiles_held(const OpenFiles *o);
void openfiles_clear(OpenFiles *o);
