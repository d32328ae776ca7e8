/* source.h: the directory sources of a tenant (nimbus-sync.yaml(5), SOURCES): for each
 * configured Entra ID group its last complete member list, why its last read failed, and the
 * desired state they make together with the roster files.
 *
 * Failure is never emptiness: a read that failed (or found the group empty while
 * deletes.allow_empty is false) leaves the last complete list in force, and a group that was never
 * read completely makes the desired state incomplete, so nothing is planned from it at all. The
 * lists are kept in the state store, so they survive restarts. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "diag.h"
#include "graph_client.h"
#include "log.h"
#include "roster.h"
#include "store.h"

typedef struct Source {
        const SourceConfig *config;  /* in the Config the set was made for */
        GraphListing *list;          /* the last complete member list, or NULL */
        uint64_t hash;               /* graph_listing_hash() of list */
        uint64_t read_usec;          /* when list was read */
        char *label;                 /* entra group "Support Agents": its place in plan and logs */
        char *error;                 /* why the last read failed, or NULL */
        uint64_t error_usec;         /* when it failed */
} Source;

typedef struct SourceSet {
        const Config *config;        /* not owned; must outlive the set */
        Source *sources;             /* one per config->sources[], in that order */
        size_t n;
} SourceSet;

int source_set_new(const Config *c, SourceSet **ret);
SourceSet *source_set_free(SourceSet *set);

/* The last complete lists (and errors) recorded in the store; a group it does not know stays
 * without a list. */
int source_set_load(SourceSet *set, Store *store);

/* A read of sources[i] has ended: with a complete listing (taken), or with a failure. A listing
 * replaces the list in force, unless it joins no user while deletes.allow_empty is false: that
 * counts as a failure. Each outcome is logged once through log and, with a store, recorded there.
 * Returns 1 when the list in force changed, 0 when not. */
int source_set_result(SourceSet *set, size_t i, GraphListing *list, const GraphFailure *failure, Store *store,
                      const Logger *log);

/* One line for validate --online and doctor: entra group "Support Agents" (GUID): 12 users;
 * disabled accounts left out: 1. */
void source_describe(const Source *s, char *buf, size_t size);

/* Are all sources' lists complete, and did the last read of each succeed? */
bool source_set_current(const SourceSet *set);

/* The desired state: the roster files and every source's members, joined as files are (an id
 * with two different targets is an error). A source without a complete list is an error. */
int source_set_merge(const SourceSet *set, const Roster *files, Roster **ret, Diag *diag);
