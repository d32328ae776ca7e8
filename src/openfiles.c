/* openfiles.c: roster files held open by their writer, from inotify events (see openfiles.h). */
#include "openfiles.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/inotify.h>

#include "util.h"

static OpenFile *find(OpenFiles *o, const char *name) {
        for (size_t i = 0; i < o->n; i++)
                if (streq(o->files[i].name, name))
                        return &o->files[i];
        return NULL;
}

static void forget(OpenFiles *o, OpenFile *f) {
        free(f->name);
        *f = o->files[--o->n];
}

static int opened(OpenFiles *o, const char *name) {
        OpenFile *f = find(o, name);
        char *copy;

        if (f) {
                f->opens++;
                return 0;
        }
        if (o->n == OPENFILES_MAX)
                return 0;       /* not followed: the settle time alone, as for a remote writer */
        if (!(copy = strdup(name)))
                return -ENOMEM;
        o->files[o->n++] = (OpenFile) { .name = copy, .opens = 1 };
        return 0;
}

/* The last close makes the file whole again; a close we never saw the open of changes nothing. */
static void closed(OpenFiles *o, OpenFile *f) {
        if (f && --f->opens == 0)
                forget(o, f);
}

int openfiles_event(OpenFiles *o, uint32_t mask, const char *name) {
        OpenFile *f;

        if (mask & IN_Q_OVERFLOW) {
                openfiles_clear(o);
                return 0;
        }
        if (mask & IN_OPEN)
                return opened(o, name);
        f = find(o, name);
        if (mask & (IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) {
                if (f)
                        forget(o, f);
                return 0;
        }
        if (f && (mask & IN_MODIFY))
                f->modified = true;
        if (mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE))
                closed(o, f);
        return 0;
}

const char *openfiles_held(const OpenFiles *o) {
        for (size_t i = 0; i < o->n; i++)
                if (o->files[i].modified)
                        return o->files[i].name;
        return NULL;
}

void openfiles_clear(OpenFiles *o) {
        while (o->n > 0)
                forget(o, &o->files[o->n - 1]);
}
