/* roster_internal.h: what the roster units share. Not part of the public contract; tests include
 * it to exercise the limits with small numbers.
 *
 * The work is split in one direction only: the loader (roster_load.c) reads files from disk and
 * picks the format reader by the file name; the readers (roster_yaml.c, roster_csv.c) report
 * each entry's fields as they meet them (roster_item_*); the builder (roster.c) checks and stores
 * them, so YAML and CSV rosters obey exactly the same rules and produce the same messages. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "roster.h"

typedef struct RosterLimits {
        size_t max_file_size;
        size_t max_files;
        size_t max_entries;
} RosterLimits;

#define ROSTER_LIMITS_DEFAULT \
        ((RosterLimits) { ROSTER_MAX_FILE_SIZE, ROSTER_MAX_FILES, ROSTER_MAX_ENTRIES })

typedef struct RosterBuilder {
        const Config *config;   /* for organization_units names; may be NULL */
        Diag *diag;
        RosterLimits limits;

        RosterEntry *entries;   /* in reading order until roster_builder_finish() sorts them */
        size_t n, cap;
        char **files;
        size_t n_files, cap_files;
        RosterFile *file_stats; /* one per file */
        size_t cap_stats;
        char *names;            /* offset 0 holds "" */
        size_t names_len, names_cap;
        uint64_t hash;

        size_t errors;          /* errors reported so far; any error rejects the roster */
        bool full;              /* max_entries reached: readers stop */
        const RosterDefault *file_default; /* roster_defaults for the file being read, or NULL */
} RosterBuilder;

/* One entry while its fields arrive. A field that had an error marks the item bad: it is still
 * checked for the other rules (so all its problems are shown) but never stored. */
typedef struct RosterItem {
        Guid id, ou, template_id;
        unsigned line, col;
        bool has_id, has_ou, has_template, bad;
        size_t name_len;        /* the name and UPN wait in the pool past names_len */
        size_t upn_len;
} RosterItem;

int roster_builder_init(RosterBuilder *b, const Config *c, const RosterLimits *limits, Diag *diag);
void roster_builder_done(RosterBuilder *b);
/* From now on diagnostics name this file and entries belong to it. */
int roster_builder_begin_file(RosterBuilder *b, const char *path);
/* Add a file's content to Roster.hash; name is the file name as it should count there. */
void roster_builder_hash(RosterBuilder *b, const char *name, const char *buf, size_t len);
/* Sort, report duplicates, and hand over the result; -EINVAL if any error was reported. */
int roster_builder_finish(RosterBuilder *b, Roster **ret);

int roster_load_dir_limits(const char *dir, const Config *c, const RosterLimits *limits, Roster **ret,
                           uint64_t *ret_fingerprint, Diag *diag);
int roster_load_files_limits(char *const *paths, size_t n, const Config *c, const RosterLimits *limits,
                             Roster **ret, Diag *diag);

/* An error about the file being read; returns what diag_add() returns. */
int roster_error(RosterBuilder *b, unsigned line, unsigned col, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* An `ou:` value: an OU GUID or a name from organization_units. A bad one is reported at
 * line:col and gives -EINVAL. */
int roster_resolve_ou(RosterBuilder *b, const char *s, size_t len, unsigned line, unsigned col, Guid *ret);

void roster_item_begin(RosterItem *it, unsigned line, unsigned col);
void roster_item_id(RosterBuilder *b, RosterItem *it, const char *s, size_t len, unsigned line, unsigned col);
void roster_item_ou(RosterBuilder *b, RosterItem *it, const char *s, size_t len, unsigned line, unsigned col);
void roster_item_template(RosterBuilder *b, RosterItem *it, const char *s, size_t len, unsigned line,
                          unsigned col);
/* Informational name and UPN (see roster_entry_name()); a second value replaces the first. */
int roster_item_name(RosterBuilder *b, RosterItem *it, const char *s, size_t len);
int roster_item_upn(RosterBuilder *b, RosterItem *it, const char *s, size_t len);
/* Check the item and store it. With needs_default, an item with neither ou nor template is kept
 * for roster_builder_default_ou() (YAML's file-wide `ou:` may come after the users). */
int roster_item_commit(RosterBuilder *b, RosterItem *it, bool needs_default);
/* Give the entries stored since `first` that still lack a target this OU, or, when ou is NULL,
 * the file's roster_defaults target, or else report each of them. */
void roster_builder_default_ou(RosterBuilder *b, size_t first, const Guid *ou);

/* ---- the desired state beyond files (source.c) ----
 * Append a whole roster (its entries, files and names) as read before. */
int roster_builder_add_roster(RosterBuilder *b, const Roster *r);
/* Start a pseudo-file for entries that come from a directory source rather than a file: label
 * is shown where a file name would be, content_hash says whether its entries changed. Entries
 * then follow through roster_item_*() with line 0. */
int roster_builder_begin_source(RosterBuilder *b, const char *label, uint64_t content_hash);

/* The format readers: buf is UTF-8 text that is not blank (the loader checked). Errors are
 * diagnostics; -EINVAL says reading stopped early, -ENOMEM that memory ran out. */
int roster_yaml_parse(RosterBuilder *b, const char *buf, size_t len);
int roster_csv_parse(RosterBuilder *b, const char *buf, size_t len);
