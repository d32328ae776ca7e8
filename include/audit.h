/* audit.h: who a user is, for the audit trail (nimbus-sync(8), LOGS AND AUDIT): the name, the
 * UPN, the OU, and the roster file or directory source that last listed the user. A user in the
 * roster is described by its entry; one that left it (a delete, held or not) by what the state
 * store remembered when we last acted on it or saw it leave (store_put_user_info()), and failing
 * that by the names the directory last gave (Entra group members). */
#pragma once

#include <limits.h>
#include <stdbool.h>

#include "log.h"
#include "roster.h"
#include "store.h"

#define AUDIT_NAME_MAX (ROSTER_MAX_NAME + 1)
/* Users named one by one in the journal per event (held, skipped, approved); more are counted:
 * journald's default rate limit is 10,000 entries in 30 s per service. */
#define AUDIT_USERS_MAX 1000

typedef struct AuditUser {
        Guid id;
        Guid ou;                         /* null when unknown */
        char name[AUDIT_NAME_MAX];       /* "" when unknown */
        char upn[AUDIT_NAME_MAX];
        char source[PATH_MAX];           /* roster file path or directory source label; "" unknown */
        bool directory;                  /* source is a directory source, not a file */
} AuditUser;

/* From the roster entry e (may be NULL), else from the store (may be NULL). ou may be NULL. */
void audit_user_describe(Store *s, const Roster *r, const RosterEntry *e, const Guid *id, const Guid *ou,
                         AuditUser *ret);
/* Remember the entry's name, UPN and file (or source) for the user: when we act on it. */
int audit_user_record(Store *s, const Roster *r, const RosterEntry *e);
/* "Name (upn)", whichever of the two is known, or "" when neither. */
const char *audit_user_label(const AuditUser *u, char *buf, size_t size);
/* The event's user fields: name, UPN, OU (unless set), and NIMBUS_ROSTER_FILE or NIMBUS_SOURCE.
 * The strings stay u's: u must outlive the event. */
void audit_user_event(const AuditUser *u, LogEvent *ev);
/* Where the user was last listed, for a message: "team.yaml" (relative to roster_dir when in it),
 * entra group "Support", or "an unknown source". */
const char *audit_user_source(const AuditUser *u, const char *roster_dir);
/* path relative to dir when it lies in dir, else path itself. */
const char *audit_relative_path(const char *dir, const char *path);
/* An OU for a message: "sales (3f2a7c4e-...)" when organization_units names it, the GUID
 * otherwise, "an unknown OU" when null. */
const char *audit_ou_text(const Config *c, const Guid *ou, char *buf, size_t size);
