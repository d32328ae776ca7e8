/* nimbus_api.h: the Nimbus Public API as data (the Entra token endpoint is in oauth.h): request
 * URLs and bodies, and tolerant parsing and classification of answers (nimbus-sync.yaml(5),
 * ENDPOINTS and RETRIES; nimbus-sync(8), OWNERSHIP). No I/O here; nimbus_client.c moves the bytes.
 * Unknown fields are ignored, a missing field means "unknown", and nothing an answer contains can
 * crash us or make us allocate without bound. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guid.h"

#define NIMBUS_MAX_BODY (1024 * 1024) /* larger answers are refused by the transport */
#define NIMBUS_MAX_MESSAGE 300        /* server messages are cut to this for logs and the store */

typedef enum NimbusCall {
        CALL_CREATE,      /* POST user */
        CALL_COPY,        /* POST user/copy */
        CALL_DELETE,      /* DELETE user/{id} */
        CALL_GET_USER,    /* GET user/{id} */
        CALL_LICENSES,    /* GET user/license-usage */
} NimbusCall;
#define NIMBUS_CALLS (CALL_LICENSES + 1)

typedef enum Outcome {
        OUTCOME_OK,          /* 2xx carrying what the call promises (JSON, or nothing for a mutation) */
        OUTCOME_EXISTS,      /* create/copy: 409, or 400 about duplication; confirmed by a GET before use */
        OUTCOME_GONE,        /* 404 on delete or get: not a Nimbus user */
        OUTCOME_TRANSIENT,   /* network error, timeout, 408, 429, 500, 502, 503, 504, other 5xx */
        OUTCOME_AUTH,        /* 401, or 403 "No authenticated user": token or permission */
        OUTCOME_NO_LICENSES, /* 403 whose message mentions licenses */
        OUTCOME_FORBIDDEN,   /* create/copy: another 403 ("Organization Unit not allowed"), which the
                              * docs also use for "no licenses": license usage decides */
        OUTCOME_NOT_API,     /* 2xx whose body is not a Nimbus answer (an HTML login or proxy page):
                              * the request may or may not have reached Nimbus */
        OUTCOME_REDIRECT,    /* 3xx: the wrong host or cluster, a configuration error */
        OUTCOME_PERMANENT,   /* 400, 403 OU not allowed (license usage permitting), 404 template
                              * missing, delete rejected, other 4xx */
} Outcome;

/* Whether an answer's field name k names the field key: equal ignoring case and '_' ("o365Id",
 * "O365Id" and "o365_id" name the same field). How every answer is read, and how `doctor`
 * tells expected fields from unexpected ones. */
bool nimbus_key_matches(const char *k, const char *key);

const char *nimbus_call_name(NimbusCall call);   /* "create", "copy", "delete", "verify", "licenses" */
const char *outcome_name(Outcome o);

/* URL (api_base ends in '/'), method and JSON body (NULL for none) of a call. id is the user
 * (create, copy: the new user; delete, get), target the OU (create) or template (copy). */
int nimbus_request_build(NimbusCall call, const char *api_base, const Guid *id, const Guid *target,
                         char **ret_url, const char **ret_method, char **ret_body);

/* http_status 0 means the transport failed (transport_error < 0); that is transient. The body
 * decides between an answer and a look-alike: a 2xx must hold JSON (or nothing, for a mutation). */
Outcome nimbus_classify(NimbusCall call, long http_status, int transport_error,
                        const char *body, size_t len);

/* The message an admin needs to see: "message" (or "error_description", "error", "title",
 * "detail") of a JSON body, else the plain text; control characters replaced, one line, at most
 * NIMBUS_MAX_MESSAGE bytes. Never fails for content reasons: an empty body gives "HTTP <status>". */
int nimbus_error_message(long http_status, const char *body, size_t len, char **ret);
/* Whether a body is a web page (its first non-blank character is '<'): never an API answer. A
 * 400, 404 or 409 carrying one is OUTCOME_NOT_API, as is a 2xx. */
bool nimbus_body_is_html(const char *body, size_t len);
/* Whether a 400 answer to create or copy says the user exists ("already exists", "duplicate"). */
bool nimbus_says_duplicate(const char *body, size_t len);

typedef struct NimbusUser {
        Guid o365_id;             /* null when missing */
        Guid ou;                  /* null when missing */
        char assignment_type[32]; /* "SkillBased", "MsTeams", or "" when unknown */
        char *licenses;           /* comma-separated license names, or NULL (owned) */
} NimbusUser;
int nimbus_parse_user(const char *body, size_t len, NimbusUser *ret); /* -EBADMSG if not a JSON object */
void nimbus_user_clear(NimbusUser *u);
/* Whether a user answer names another user than the one asked for (a cache or proxy in the way):
 * no proof of anything about the one asked for. An answer naming no user is not "another". */
bool nimbus_user_is_another(const Guid *asked, const char *body, size_t len);

typedef struct NimbusLicense {
        char *name;
        int64_t total, used, available; /* -1 when missing */
} NimbusLicense;
/* {"licenses": [...]} or a bare array; at most 1000 entries are kept. */
int nimbus_parse_licenses(const char *body, size_t len, NimbusLicense **ret, size_t *ret_n);
void nimbus_licenses_free(NimbusLicense *l, size_t n);
/* A pool with nothing left (available 0, or used >= total when available is missing): the name
 * of the first such pool, or NULL when every pool has licenses (or none says). */
const char *nimbus_licenses_exhausted(const NimbusLicense *l, size_t n);
