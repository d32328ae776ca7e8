/* log.h: the one place where events leave the process. Under systemd each event is a journald entry
 * with the structured NIMBUS_* fields of nimbus-sync(8), LOGS AND AUDIT, and a MESSAGE_ID per kind
 * of event; on a terminal it is one human line on stderr. Library modules never log: their callers
 * describe what happened in a LogEvent and call log_event() once. Secrets never reach this module.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

#include "config.h"
#include "guid.h"

/* MESSAGE_IDs, one per kind of event; explained in systemd/nimbus-sync.catalog. */
#define MID_USER_ACTION   "f544dbdcf1e6475eae3322a09282b80c" /* create/copy/delete/verify succeeded */
#define MID_USER_RETRY    "4185dbd337f74b85b2138c7b2685eb7d" /* transient failure, will retry */
#define MID_USER_FAILED   "858b3c08ae104dd490eaad9b3afbd5eb" /* permanent failure for one user */
#define MID_USER_QUARANT  "aea2222b8bfc41db940a37d85f3c2460" /* too many transient failures */
#define MID_DELETES_HELD  "a3635efec21348e3982b8c0a7b3fde21" /* deletes held by the safety rules */
#define MID_AUTH_FAILED   "cdae17968b2f4bf8bae47289dd64b678" /* token or permission refused: tenant paused */
#define MID_NO_LICENSES   "7bae8f862e3645fe93fe1f6249a89167" /* tenant out of licenses: creates paused */
#define MID_ROSTER_ERROR  "f15da30fa1d049fdbb7bdac9eb1eafdc" /* roster rejected, last valid state kept */
#define MID_ROSTER_LOADED "cef34580482e41c89aa558df4bbacb71" /* roster read */
#define MID_RUN_STARTED   "914859d3190748be91815195bada901c"
#define MID_RUN_FINISHED  "4f8a30073d4448e3898bf13fde25d141"
#define MID_DRIFT         "501a0228e0034a15b6925d70488b48fb" /* user in another OU than the roster says */
#define MID_DELETE_HELD   "0a85c132a5e14ab888f3e04d4c7f1490" /* one user's delete held or skipped */
#define MID_DELETE_APPROVED "54905d0976db4295850b054d043e89ba" /* one held delete approved, and by whom */

typedef struct Logger {
        bool journal;  /* resolved target: journald fields, or stderr lines */
        bool tee;      /* stderr lines, and journald entries as well (see log_tee_journal()) */
        int level;     /* highest syslog priority that is written */
        bool *line_shown; /* a progress line stands on the terminal (apply): a line written to
                           * stderr erases it first, and clears this; NULL: none */
} Logger;

/* Who runs this process, for the audit trail of commands run by hand (approve-deletes). */
typedef struct LogActor {
        char login_uid[16];      /* /proc/self/loginuid: "unset" when never set, "" when unknown */
        const char *sudo_user;   /* $SUDO_USER, or NULL */
        unsigned uid;            /* the real uid running it */
} LogActor;

#define LOG_EXTRA_MAX 100

/* The fields of one event; every pointer may be NULL and every number 0 for "not applicable". */
typedef struct LogEvent {
        const char *message_id;
        const char *action;       /* create copy delete verify licenses token roster run */
        const char *result;       /* ok exists gone retry failed held skipped quarantined */
        const Guid *o365_id;
        const Guid *ou;
        const Guid *template_id;
        const char *roster_file;  /* the roster file of the event or of the user's entry */
        const char *source;       /* a directory source (not a file) that listed the user */
        const char *user_name;    /* the user's informational name and UPN, when known */
        const char *user_upn;
        const LogActor *actor;    /* an approval: who ran it */
        char *const *extra;       /* more "FIELD=value" strings, sent as they are (a field may
                                   * repeat); at most LOG_EXTRA_MAX are sent */
        size_t n_extra;
        const char *run_id;
        long http_status;
        unsigned attempt;
} LogEvent;

/* auto means journald when stderr is the journal stream ($JOURNAL_STREAM matches stderr). */
void log_init(Logger *l, LogTarget target, int level);
/* For commands run by hand that change something (apply, approve-deletes): with target auto and
 * stderr not the journal, every event goes to the journal as well, when a journal listens; the
 * terminal lines stay as they are. */
void log_tee_journal(Logger *l, LogTarget target);
void log_actor_current(LogActor *ret);
void log_event(const Logger *l, int priority, const LogEvent *ev, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* An event with no fields. */
void log_msg(const Logger *l, int priority, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Print every diagnostic of d at its level: compiler-style lines on stderr, journald entries with
 * NIMBUS_ACTION=roster when under systemd. */
struct Diag;
void log_diag(const Logger *l, const struct Diag *d, const char *message_id);
