/* graph_api.h: Microsoft Graph as data: the requests that read an Entra ID group (its name, and
 * its user members with nested groups expanded, page by page) and tolerant parsing of Graph's
 * answers into a bounded member list. No I/O here; graph_client.c moves the bytes.
 *
 * Unknown fields are ignored and a missing accountEnabled means "enabled" (Graph leaves it out
 * when the app may not read it). What would make a listing wrong is refused instead: a member
 * without a valid id, a page without a value array, a next link to another host. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guid.h"

#define GRAPH_SCOPE "https://graph.microsoft.com/.default"
#define GRAPH_PAGE_SIZE 999                  /* the most Graph gives per page */
#define GRAPH_MAX_BODY (8 * 1024 * 1024)     /* one answer */
#define GRAPH_MAX_MEMBERS (1000 * 1000)      /* one group */
#define GRAPH_MAX_PAGES 100000               /* one group, even at one member per page */
#define GRAPH_MAX_NAME 256                   /* displayName and userPrincipalName are cut to this */
#define GRAPH_MAX_LINK 4096                  /* a longer @odata.nextLink is refused */
#define GRAPH_MAX_MESSAGE 300

typedef struct GraphMember {
        Guid id;
        uint32_t name;        /* displayName: offset into the pool, 0 = none */
        uint32_t upn;         /* userPrincipalName: offset into the pool, 0 = none */
        bool enabled;         /* accountEnabled; true when Graph did not say */
} GraphMember;

/* A group's user members. The pool holds the names, NUL-terminated; offset 0 holds "". */
typedef struct GraphListing {
        char *group_name;     /* displayName of the group, or NULL */
        GraphMember *members; /* sorted by id and unique once graph_listing_finish() ran */
        size_t n, cap;
        char *pool;
        size_t pool_len, pool_cap;
        size_t max_members;
} GraphListing;

int graph_listing_new(size_t max_members, GraphListing **ret);
GraphListing *graph_listing_free(GraphListing *l);
/* Names are cut to GRAPH_MAX_NAME bytes (never inside a UTF-8 sequence), control characters
 * become spaces. -E2BIG beyond max_members. */
int graph_listing_add(GraphListing *l, const Guid *id, const char *name, size_t name_len, const char *upn,
                      size_t upn_len, bool enabled);
/* Sort by id; a member listed twice (nested groups overlap) is kept once. */
int graph_listing_finish(GraphListing *l);
/* Changes whenever the group's name or any member's id, names or enabled flag changes. */
uint64_t graph_listing_hash(const GraphListing *l);
/* Members that join the roster: all of them, or only the enabled ones. */
size_t graph_listing_count(const GraphListing *l, bool include_disabled);
static inline const char *graph_member_name(const GraphListing *l, const GraphMember *m) {
        return l->pool + m->name;
}
static inline const char *graph_member_upn(const GraphListing *l, const GraphMember *m) {
        return l->pool + m->upn;
}

/* graph_url is scheme://host[:port] without a trailing '/'. */
int graph_group_url(const char *graph_url, const Guid *group, char **ret);
int graph_members_url(const char *graph_url, const Guid *group, char **ret);

/* A group object: its displayName (NULL when missing). -EBADMSG if not a JSON object. */
int graph_parse_group(const char *body, size_t len, char **ret_name);
/* One page of members, appended to l. *ret_next is the next page's URL, or NULL on the last page.
 * -EBADMSG: not a page (no value array, a member without a valid id); -E2BIG: more members than
 * l->max_members; -EXDEV: a next link that is too long or leaves graph_url's scheme and host. */
int graph_parse_members(const char *body, size_t len, const char *graph_url, GraphListing *l,
                        char **ret_next);
/* May we follow this link? Same scheme, host and port as graph_url, at most GRAPH_MAX_LINK. */
bool graph_link_allowed(const char *graph_url, const char *link);

typedef enum GraphOutcome {
        GRAPH_OK,             /* 2xx */
        GRAPH_RETRY,          /* network error, timeout, 408, 429, 500, 502, 503, 504 */
        GRAPH_AUTH,           /* 401: the token; one more try with a fresh one */
        GRAPH_DENIED,         /* 403: the app lacks GroupMember.Read.All */
        GRAPH_NOT_FOUND,      /* 404: no such group (deleted?) */
        GRAPH_FAILED,         /* anything else: a bad answer, 3xx, 400, other 4xx and 5xx */
} GraphOutcome;

GraphOutcome graph_classify(long http_status, int transport_error);
/* One line for logs and status: Graph's "code: message" from {"error": {"code", "message"}}, or
 * the text of the answer; "HTTP <status>" if it has none. At most GRAPH_MAX_MESSAGE bytes. */
int graph_error_message(long http_status, const char *body, size_t len, char **ret);
