/* roster_diff.h: which roster files changed from one load to the next, for the roster-load
 * journal entry (nimbus-sync(8), LOGS AND AUDIT): files added, removed and changed, each with its
 * user count. What a load found is kept in the state store as a small JSON list, so the daemon
 * and `apply` compare with the last load of either, also across restarts. Pure functions. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "roster.h"

/* At most this many files of each kind are named in the message; the fields name them all. */
#define ROSTER_DIFF_NAMED 10

typedef struct RosterFileState {
        char *file;             /* path as read */
        uint64_t hash;          /* RosterFile.hash */
        size_t users;
} RosterFileState;

typedef struct RosterFileSet {
        RosterFileState *files; /* sorted by file */
        size_t n;
} RosterFileSet;

typedef enum RosterChange {
        ROSTER_FILE_ADDED,
        ROSTER_FILE_REMOVED,
        ROSTER_FILE_CHANGED,
        _ROSTER_FILE_CHANGE_MAX,
} RosterChange;

typedef struct RosterFileDiff {
        const char *file;       /* borrowed from the sets compared */
        RosterChange change;
        size_t users;           /* now (added, changed) or before (removed) */
        size_t users_before;    /* changed: before */
} RosterFileDiff;

typedef struct RosterDiff {
        RosterFileDiff *files;  /* in file order */
        size_t n;
        size_t count[_ROSTER_FILE_CHANGE_MAX];
} RosterDiff;

/* The files of r, a roster read from files only (before directory sources join it). */
int roster_file_set(const Roster *r, RosterFileSet *ret);
/* The JSON kept in the store, and back. A text that is no such list gives an empty set. */
int roster_file_set_to_json(const RosterFileSet *set, char **ret);
int roster_file_set_from_json(const char *json, RosterFileSet *ret);
void roster_file_set_clear(RosterFileSet *set);

/* What changed from old to new. The diff borrows the file names of both sets. */
int roster_diff(const RosterFileSet *old, const RosterFileSet *new, RosterDiff *ret);
void roster_diff_clear(RosterDiff *d);
/* "added a.yaml (3 users); changed b.csv (4 users, was 2); removed c.csv (7 users)", paths
 * relative to roster_dir, or "no file changed". */
void roster_diff_format(const RosterDiff *d, const char *roster_dir, char *buf, size_t size);
const char *roster_change_name(RosterChange c);
