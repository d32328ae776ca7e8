/* rosterview.h: the roster as the daemon last read it, kept in the state store (meta key
 * ROSTER_VIEW_META_KEY) so that `status`, `status --check` and the metrics show the daemon's
 * verdict rather than their own: the daemon reads the folder as the service user, and what root
 * or an admin can read may differ (a file the service user may not open, say). It says when the
 * daemon read the folder, whether it accepted what it found (or the rejection's first error),
 * and the files of the roster in force with their users. Pure functions; see nimbus-sync(8),
 * status. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "roster.h"

#define ROSTER_VIEW_META_KEY "daemon_roster"

typedef struct RosterViewFile {
        char *name;             /* relative to roster_dir when inside it */
        size_t users;
} RosterViewFile;

typedef struct RosterView {
        uint64_t read_usec;     /* the daemon's last read of the folder (or of the groups) */
        char *error;            /* that read was rejected: its first error; NULL: accepted */
        uint64_t accepted_usec; /* when the roster in force was read; 0 = none yet */
        size_t users;           /* in the roster in force, groups included */
        uint64_t newest_usec;   /* mtime of its newest file, 0 = none */
        RosterViewFile *files;  /* its files */
        size_t n_files;
} RosterView;

/* The roster in force, read at now from roster_dir: users and files (files, its files alone:
 * the Entra groups are not files; may be r itself). Replaces what v said of the roster in force
 * and clears the error. */
int roster_view_accept(RosterView *v, const Roster *r, const Roster *files, const char *roster_dir,
                       uint64_t now);
/* A read at now was rejected: error is its first line; the roster in force stays as it was. */
int roster_view_reject(RosterView *v, const char *error, uint64_t now);

/* The store's form: one JSON object. Free *ret with free(). */
int roster_view_format(const RosterView *v, char **ret);
/* -EINVAL when text is not such an object; at most ROSTER_MAX_FILES files are taken. */
int roster_view_parse(const char *text, RosterView *ret);

void roster_view_clear(RosterView *v);
