/* roster.h: the desired state, read from the YAML and CSV roster files in roster_dir
 * (nimbus-sync.yaml(5), ROSTER FILES).
 * The desired state is the union of all files. It is built whole or not at all: any error in any
 * file rejects the new state, so a half-written or broken export can never be acted on. Entries are
 * kept sorted by O365 ID, which lets the planner diff a million users in one merge pass. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "diag.h"
#include "guid.h"
#include "util.h"

#define ROSTER_MAX_FILE_SIZE (512u * 1024 * 1024) /* one roster file */
#define ROSTER_MAX_FILES 1000
#define ROSTER_MAX_ENTRIES (10u * 1000 * 1000)    /* all files together */
#define ROSTER_MAX_NAME 256                       /* longer `name` values are cut */

typedef enum TargetKind {
        TARGET_OU = 1,       /* create with this organization unit */
        TARGET_TEMPLATE = 2, /* copy this template user */
} TargetKind;

typedef struct RosterEntry {
        Guid id;
        Guid target;         /* OU or template, per kind */
        uint8_t kind;        /* TargetKind */
        uint32_t file;       /* index into Roster.files */
        uint32_t line;
        uint32_t name;       /* offset into Roster.names of "NAME\0UPN\0" (either may be
                              * empty), 0 = neither (offset 0 holds "") */
} RosterEntry;

/* What each file (or directory source) gave: for the roster-load audit line. */
typedef struct RosterFile {
        uint64_t hash;       /* of its content: changed or not since the last load */
        size_t users;        /* entries it listed */
} RosterFile;

typedef struct Roster {
        RosterEntry *entries; /* sorted by id, unique */
        size_t n;
        char **files;         /* paths of the files read, in name order */
        RosterFile *file_stats; /* one per file */
        size_t n_files;
        char *names;          /* pool of NUL-terminated informational names and UPNs */
        size_t names_len;
        uint64_t hash;        /* hash of the content of all files, to skip unchanged re-reads */
        uint64_t newest_usec; /* mtime of the newest file read (wall clock), 0 = none */
} Roster;

#define ROSTER_READ_ATTEMPTS 3   /* reads of a folder that keeps changing before a command gives up */

/* Whether another process holds the open file fd open for writing (a read lease is refused);
 * false where the kernel cannot tell: a network share, or a file we may take no lease on (another
 * user's, without CAP_LEASE). */
bool roster_file_held_open(int fd);

/* Is this directory entry a roster file? (*.yaml, *.yml, *.csv, not starting with '.') */
bool roster_is_candidate_name(const char *name);

/* A cheap fingerprint of the roster files in dir: the folder itself and, for every candidate
 * name, its stat() with symlinks followed (inode, size, mtime, ctime, type) or why stat() failed.
 * Any rename, write, new or removed file, or link that starts or stops dangling changes it.
 * -errno if the folder cannot be read. */
int roster_fingerprint(const char *dir, uint64_t *ret);

/* Read every candidate file directly in dir, as one consistent snapshot (nimbus-sync(8), ROSTER
 * FOLDER). An empty folder is a valid, empty roster; a file that cannot be read, that is no
 * regular file (a dangling symlink, a FIFO, a directory) or that is empty is an error.
 * -EAGAIN: the folder changed while it was read (a listed file vanished or was replaced, or a
 * file changed); diag then holds only that reason, and no roster is returned, never one
 * without that file: read again. -EBUSY: another process holds a roster file open for writing
 * (roster_file_held_open()); diag names it; read again once its writer closes it.
 * ret_fingerprint (may be NULL) gets the fingerprint of the
 * folder the read saw, also when the roster is rejected, or 0 when the folder cannot be opened. */
int roster_load_dir(const char *dir, const Config *c, Roster **ret, uint64_t *ret_fingerprint, Diag *diag);
/* Read the given files (as `validate FILE...` does). */
int roster_load_files(char *const *paths, size_t n, const Config *c, Roster **ret, Diag *diag);
/* Parse one buffer as if it were a file of that name (format from the extension): for fuzzing. */
int roster_parse_buffer(const char *path, const char *buf, size_t len, const Config *c,
                        Roster **ret, Diag *diag);

const RosterEntry *roster_find(const Roster *r, const Guid *id);
/* The `name` field (a directory's displayName), or "" when there is none. */
static inline const char *roster_entry_given_name(const Roster *r, const RosterEntry *e) {
        return r->names + e->name;
}
/* The `upn` field (a directory's userPrincipalName), or "". */
static inline const char *roster_entry_upn(const Roster *r, const RosterEntry *e) {
        return e->name ? r->names + e->name + strlen(r->names + e->name) + 1 : r->names;
}
/* What plan and logs call the user: the name or, without one, the UPN; "" when neither. */
static inline const char *roster_entry_name(const Roster *r, const RosterEntry *e) {
        const char *name = roster_entry_given_name(r, e);

        return *name ? name : roster_entry_upn(r, e);
}
/* "Name (upn)" when both are known, else whichever is; "" when neither. */
const char *roster_entry_label(const Roster *r, const RosterEntry *e, char *buf, size_t size);
static inline const char *roster_entry_file(const Roster *r, const RosterEntry *e) {
        return r->files[e->file];
}
Roster *roster_free(Roster *r);
DEFINE_CLEANUP(Roster *, roster_free)
