/* store.h: the local state store, one SQLite database in state_dir (WAL mode, synchronous=FULL).
 * It is what nimbus-sync knows of Nimbus: which users it created, copied or adopted, whether they
 * are present, the call in flight for each (recorded before the call is sent, so a crash can be
 * settled), failures and retry times, held and approved deletes, the rate window shared by every
 * process (one row per request sent), the `apply --user` requests handed to a running daemon,
 * and the history of runs. Every write is its own durable transaction unless the caller wraps
 * several in store_begin()/store_commit(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guid.h"
#include "util.h"

#define STORE_FILE_NAME "state.db"
#define STORE_FILE_MODE 0640    /* readable by the group nimbus-sync: `status` and `plan` */

/* Test only: while the file named by this variable exists (read once, at store_open), every
 * statement fails with the errno named in it (EIO, EBUSY, EBADMSG, ENOSPC; EIO when empty), so
 * tests can break and mend the store of a running process at a moment of their choosing. */
#define STORE_FAULT_ENV "NIMBUS_SYNC_TEST_STORE_FAULT"

/* store_meta keys shared by several modules. */
#define STORE_META_RATE_PAUSE "rate_paused_until"       /* usec: a 429 paused every process */
#define STORE_META_APPROVALS "approvals"                /* counts approve-deletes that released some */
#define STORE_META_ROSTER_FILES "roster_files"          /* the files of the last roster load (roster_diff.h) */

typedef struct Store Store;

typedef enum Origin {
        ORIGIN_NONE = 0,      /* never created, copied or adopted by us: never touched */
        ORIGIN_CREATED = 1,
        ORIGIN_COPIED = 2,
        ORIGIN_ADOPTED = 3,   /* existed before we listed it ("already exists" with no earlier
                               * attempt of ours that could have made it, or seen by GET) */
        ORIGIN_UNCERTAIN = 4, /* "already exists" after an attempt of ours whose outcome is unknown:
                               * present, never deleted without approve-deletes */
} Origin;

typedef enum Presence {
        PRESENCE_UNKNOWN = 0, /* never confirmed either way */
        PRESENCE_PRESENT = 1,
        PRESENCE_ABSENT = 2,  /* deleted by us, or GET/DELETE answered 404 */
} Presence;

typedef enum Intent {
        INTENT_NONE = 0,
        INTENT_CREATE = 1,    /* a create was sent and its answer not yet recorded */
        INTENT_COPY = 2,
        INTENT_DELETE = 3,
} Intent;

typedef enum UserStatus {
        STATUS_OK = 0,
        STATUS_RETRY = 1,       /* transient failure, next_attempt_usec says when */
        STATUS_FAILED = 2,      /* permanent failure for this target; retried when the entry changes or after 6 h */
        STATUS_QUARANTINED = 3, /* too many transient failures; retried hourly */
} UserStatus;

typedef enum Hold {
        HOLD_NONE = 0,
        HOLD_HELD = 1,        /* delete held by the safety rules, waiting for approve-deletes */
        HOLD_APPROVED = 2,    /* approved by approve-deletes; carried out on the next run */
        HOLD_KEPT = 3,        /* held, and left out when approve-deletes --only/--except approved
                               * part of the held set: stays held until approved or back in the
                               * roster, whatever the thresholds then say */
} Hold;

typedef struct StoreUser {
        Guid id;
        Guid target;            /* the roster target of the last action (OU or template) */
        Guid ou;                /* the OU Nimbus holds the user in, when known; null otherwise */
        uint64_t next_attempt_usec;
        uint64_t updated_usec;
        char *error;            /* last server message, or NULL (owned) */
        uint16_t http_status;   /* of the last answer, 0 = none */
        uint16_t attempts;      /* consecutive failed attempts */
        uint8_t target_kind;    /* TargetKind of `target`, 0 = none */
        uint8_t origin;         /* Origin */
        uint8_t presence;       /* Presence */
        uint8_t intent;         /* Intent */
        uint8_t status;         /* UserStatus */
        uint8_t hold;           /* Hold */
} StoreUser;

typedef struct StoreRun {
        int64_t id;
        char run_id[33];        /* 128-bit random, hex */
        uint64_t started_usec, finished_usec; /* finished 0 = still running or died */
        unsigned created, copied, deleted, adopted, failed, held;
        int result;             /* exit status of the run */
} StoreRun;

/* Opens (creating if needed) state_dir/state.db. read_only opens without creating or migrating;
 * it fails with -ENOENT when there is no store yet. */
int store_open(const char *state_dir, bool read_only, Store **ret);
Store *store_close(Store *s);
DEFINE_CLEANUP(Store *, store_close)

int store_begin(Store *s);
int store_commit(Store *s);
int store_rollback(Store *s);

/* All users, sorted by id. Free with store_users_free(). */
int store_load_users(Store *s, StoreUser **ret, size_t *ret_n);
void store_users_free(StoreUser *u, size_t n);
void store_user_clear(StoreUser *u); /* frees u->error */
/* How many users share each combination of the small fields: counts by state without loading
 * every user (for metrics). Free *ret with free(). */
typedef struct StoreUserKind {
        uint8_t origin, presence, intent, status, hold;
        size_t n;
} StoreUserKind;
int store_user_kinds(Store *s, StoreUserKind **ret, size_t *ret_n);
/* -ENOENT when unknown; on success the caller owns ret->error. */
int store_get_user(Store *s, const Guid *id, StoreUser *ret);
/* Insert or replace the whole record. */
int store_put_user(Store *s, const StoreUser *u);

/* Held deletes, mark-and-sweep: every user in held[] that has hold NONE becomes HELD; every user
 * with a hold (HELD, APPROVED or KEPT) that is in neither held[] nor keep[] is reset to NONE. */
int store_sync_holds(Store *s, const Guid *held, size_t n_held, const Guid *keep, size_t n_keep);
/* approve-deletes: HELD or KEPT → APPROVED for exactly the held set. *ret_n = how many. When there were
 * any, the meta key STORE_META_APPROVALS counts up, so a daemon notices the approval among the
 * other processes' writes. */
int store_approve_holds(Store *s, size_t *ret_n);
/* The users with a hold (HELD or APPROVED), sorted by id. Free with store_users_free(). */
int store_load_holds(Store *s, StoreUser **ret, size_t *ret_n);
/* approve-deletes --only/--except: HELD or KEPT → APPROVED for those of ids that are held, in one
 * transaction (or the caller's). *ret_n = how many changed. */
int store_approve_ids(Store *s, const Guid *ids, size_t n, size_t *ret_n);
/* The held deletes a partial approval left out: HELD → KEPT. */
int store_keep_ids(Store *s, const Guid *ids, size_t n);

/* What the audit trail names a user by (nimbus-sync(8), LOGS AND AUDIT): the informational name
 * and UPN, and the roster file or directory source that last listed the user. Written when we
 * act on the user (a create or copy is sent) and when the daemon sees the user leave the roster,
 * never for every user of every plan. Each string may be NULL; long ones are cut. */
typedef struct StoreUserInfo {
        char *name;
        char *upn;
        char *source;           /* a roster file's path, or a directory source's label */
        bool directory;         /* source is a directory source (an Entra group), not a file */
} StoreUserInfo;

int store_put_user_info(Store *s, const Guid *id, const StoreUserInfo *info);
/* -ENOENT when nothing is known; free with store_user_info_clear(). */
int store_get_user_info(Store *s, const Guid *id, StoreUserInfo *ret);
void store_user_info_clear(StoreUserInfo *info);

/* The rate window across processes (see ratelimit.h). One row per request: t is its send time
 * while it is in flight, the arrival time of its answer afterwards. A row holds its slot until
 * min(t, now) + hold (answered) or + hold_in_flight (in flight; a process that died in flight
 * leaves its rows so). Wall-clock microseconds throughout. Call these inside store_begin() so
 * that looking for room and taking it are one atomic step for all processes. */
typedef struct StoreSlot {
        uint64_t release_usec;  /* when the slot frees */
        bool in_flight;
} StoreSlot;

/* Looks for room at now: rows with a t later than now (the clock was set back) are moved to
 * now, rows that can no longer hold a slot are deleted, and the limit-th latest (by release) of
 * the slots held at now is returned in *ret; -ENOENT when fewer than `limit` are held. */
int store_rate_slot(Store *s, uint64_t now, uint64_t hold, uint64_t hold_in_flight, unsigned limit,
                    StoreSlot *ret);
/* How many slots are held at now (read only: for status). */
int store_rate_used(Store *s, uint64_t now, uint64_t hold, uint64_t hold_in_flight, unsigned *ret);
int store_send_begin(Store *s, uint64_t t, int64_t *ret_id); /* a request sent at t, in flight */
int store_send_answered(Store *s, int64_t id, uint64_t t);   /* its answer arrived at t */
/* A 429: nothing starts before `until`, in any process (a later pause extends, an earlier one
 * does not shorten). *ret 0 = no pause. */
int store_rate_pause(Store *s, uint64_t until);
int store_rate_paused_until(Store *s, uint64_t *ret);

/* `apply --user ID` beside a running daemon: the request is handed to the daemon through the
 * store, the daemon provisions the user at once and records the outcome, `apply` follows it. */
typedef enum RequestState {
        REQUEST_PENDING = 0,    /* not seen by the daemon yet */
        REQUEST_ACCEPTED = 1,   /* the daemon has seen it: next in line, or in progress */
        REQUEST_DONE = 2,       /* result and message are final */
} RequestState;

#define STORE_REQUEST_MESSAGE_MAX 256

typedef struct StoreRequest {
        int64_t id;
        Guid user;
        uint64_t requested_usec;
        uint8_t state;          /* RequestState */
        int result;             /* REQUEST_DONE: apply's exit status for this user */
        char message[STORE_REQUEST_MESSAGE_MAX]; /* REQUEST_DONE: one line, what happened */
} StoreRequest;

/* Adds a pending request (and forgets finished ones older than a day). */
int store_request_add(Store *s, const Guid *user, uint64_t now, int64_t *ret_id);
int store_request_get(Store *s, int64_t id, StoreRequest *ret);  /* -ENOENT when unknown */
/* The daemon has seen every pending request: they become ACCEPTED. *ret_n = how many. */
int store_requests_accept(Store *s, size_t *ret_n);
/* The oldest accepted request not done yet (a restarted daemon resumes it). -ENOENT when none. */
int store_request_next(Store *s, StoreRequest *ret);
int store_request_update(Store *s, const StoreRequest *req);     /* state, result, message */
int store_request_remove(Store *s, int64_t id);                  /* withdrawn by apply */

/* Small key/value facts: auth state, last roster error, the rate pause. */
int store_meta_set(Store *s, const char *key, const char *value); /* value NULL deletes */
int store_meta_get(Store *s, const char *key, char **ret);        /* -ENOENT when absent */

int store_run_begin(Store *s, StoreRun *run); /* fills run->id; run_id and started set by caller */
int store_run_finish(Store *s, const StoreRun *run);
int store_last_run(Store *s, StoreRun *ret); /* -ENOENT when none */

/* Changes whenever another connection (another nimbus-sync process, e.g. approve-deletes)
 * commits: lets the daemon notice approvals without re-reading the store. */
int store_data_version(Store *s, uint64_t *ret);

/* PRAGMA integrity_check: 0 if "ok", -EIO otherwise. */
int store_check_integrity(Store *s);
/* Can a process that met this error (from any store_* call) go on, retrying later? No when the
 * store is damaged (-EBADMSG), gone or replaced (-ESTALE, see store_check_health()), no longer writable where it
 * was (-EROFS: SQLite refuses to write a moved file), or I/O failed `consecutive` >= 3 times in a
 * row (-EIO). A busy, full or out-of-memory store may recover. */
bool store_error_is_fatal(int error, unsigned consecutive);
/* Cheap enough for every watchdog tick: the file is still the one we opened (-ESTALE when it was
 * removed or replaced) and a read through the connection answers. */
int store_check_health(Store *s);

/* ---- directory sources (source.c): each group's last complete member list -------------------
 * Kept in two tables of their own, created on the first write; a store that has none knows no
 * group. A list is replaced whole, in one transaction, or not at all. */
typedef struct StoreSourceMember {
        Guid id;
        const char *name;       /* displayName, or NULL */
        const char *upn;        /* userPrincipalName, or NULL */
        bool enabled;
} StoreSourceMember;

typedef struct StoreSource {
        char *name;             /* the group's displayName at the last complete read, or NULL */
        uint64_t members;       /* members in that list */
        uint64_t read_usec;     /* when it was read; 0 = never */
        char *error;            /* why the last attempt failed, or NULL when it succeeded */
        uint64_t error_usec;
} StoreSource;

typedef int (*StoreSourceMemberFn)(void *userdata, const StoreSourceMember *m);

/* Replace a group's last complete list and clear its error. */
int store_source_save(Store *s, const Guid *group, const char *name, const StoreSourceMember *m, size_t n,
                      uint64_t read_usec);
/* Record why reading a group failed; its last list stays. */
int store_source_failed(Store *s, const Guid *group, const char *error, uint64_t when);
/* What is known of a group (-ENOENT: nothing); each member of its list goes to fn unless fn is NULL.
 * A negative return of fn stops the walk and is returned. Free ret with store_source_clear(). */
int store_source_load(Store *s, const Guid *group, StoreSource *ret, StoreSourceMemberFn fn, void *userdata);
void store_source_clear(StoreSource *src);
/* How the directory last named a user (also after they left every group), and the group that
 * listed them; each may be NULL. -ENOENT if unknown. */
int store_directory_name(Store *s, const Guid *id, char **ret_name, char **ret_upn, char **ret_group);
