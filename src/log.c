/* log.c: writes events as journald entries with structured fields, or as human lines on stderr.
 * See log.h for why this is the only module that writes anything to the log. */
#include "log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
/* Without this every entry would carry CODE_FILE=log.c, CODE_FUNC=log_emit: true, and useless. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "diag.h"
#include "util.h"

/* systemd sets $JOURNAL_STREAM to "dev:ino" of the stream it connected to stderr. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

#define JOURNAL_SOCKET "/run/systemd/journal/socket"

void log_init(Logger *l, LogTarget target, int level) {
        l->level = level;
        l->tee = false;
        switch (target) {
        case LOG_TARGET_JOURNAL:
                l->journal = true;
                break;
        case LOG_TARGET_STDERR:
                l->journal = false;
                break;
        default:
                l->journal = stderr_is_journal();
                break;
        }
}

/* sd_journal_send() works whenever journald's socket is there, whoever we are. */
void log_tee_journal(Logger *l, LogTarget target) {
        l->tee = target == LOG_TARGET_AUTO && !l->journal && access(JOURNAL_SOCKET, F_OK) >= 0;
}

/* The kernel's audit login uid survives su and sudo, so it names the person behind a root shell;
 * (uint32_t) -1 means the process descends from no login (a service, a container). */
void log_actor_current(LogActor *ret) {
        char buf[16] = "";
        int fd = open("/proc/self/loginuid", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        const char *sudo = getenv("SUDO_USER");

        *ret = (LogActor) { .uid = (unsigned) getuid(), .sudo_user = sudo && *sudo ? sudo : NULL };
        if (fd >= 0) {
                ssize_t n = read(fd, buf, sizeof(buf) - 1);

                close(fd);
                buf[n > 0 ? n : 0] = 0;
                buf[strspn(buf, "0123456789")] = 0;
        }
        snprintf(ret->login_uid, sizeof(ret->login_uid), "%s", streq(buf, "4294967295") ? "unset" : buf);
}

static const char *prio_prefix(int priority) {
        if (priority <= LOG_CRIT)
                return "critical: ";
        if (priority == LOG_ERR)
                return "error: ";
        if (priority == LOG_WARNING)
                return "warning: ";
        return "";
}

/* sd_journal_sendv() takes "FIELD=value" strings; we build at most this many. */
#define MAX_FIELDS 24
#define FIELD_MAX 512

typedef struct Fields {
        struct iovec iov[MAX_FIELDS + LOG_EXTRA_MAX];
        char buf[MAX_FIELDS][FIELD_MAX];
        int n;
} Fields;

static void __attribute__((format(printf, 2, 3))) field_add(Fields *f, const char *fmt, ...) {
        va_list ap;
        int k;

        if (f->n >= MAX_FIELDS)
                return;
        va_start(ap, fmt);
        k = vsnprintf(f->buf[f->n], FIELD_MAX, fmt, ap);
        va_end(ap);
        if (k < 0)
                return;
        f->iov[f->n].iov_base = f->buf[f->n];
        f->iov[f->n].iov_len = (size_t) k < FIELD_MAX ? (size_t) k : FIELD_MAX - 1;
        f->n++;
}

static void field_guid(Fields *f, const char *name, const Guid *g) {
        char s[GUID_STRING_MAX];

        if (g && !guid_is_null(g))
                field_add(f, "%s=%s", name, guid_format(g, s));
}

static void fields_from_event(Fields *f, const LogEvent *ev) {
        if (!ev)
                return;
        if (ev->message_id)
                field_add(f, "MESSAGE_ID=%s", ev->message_id);
        if (ev->action)
                field_add(f, "NIMBUS_ACTION=%s", ev->action);
        if (ev->result)
                field_add(f, "NIMBUS_RESULT=%s", ev->result);
        field_guid(f, "NIMBUS_O365_ID", ev->o365_id);
        field_guid(f, "NIMBUS_OU_ID", ev->ou);
        field_guid(f, "NIMBUS_TEMPLATE_ID", ev->template_id);
        if (ev->http_status > 0)
                field_add(f, "NIMBUS_HTTP_STATUS=%ld", ev->http_status);
        if (ev->attempt > 0)
                field_add(f, "NIMBUS_ATTEMPT=%u", ev->attempt);
        if (ev->roster_file)
                field_add(f, "NIMBUS_ROSTER_FILE=%s", ev->roster_file);
        if (ev->source)
                field_add(f, "NIMBUS_SOURCE=%s", ev->source);
        if (ev->user_name && *ev->user_name)
                field_add(f, "NIMBUS_USER_NAME=%s", ev->user_name);
        if (ev->user_upn && *ev->user_upn)
                field_add(f, "NIMBUS_USER_UPN=%s", ev->user_upn);
        if (ev->run_id)
                field_add(f, "NIMBUS_RUN_ID=%s", ev->run_id);
        if (ev->actor) {
                field_add(f, "NIMBUS_UID=%u", ev->actor->uid);
                if (*ev->actor->login_uid)
                        field_add(f, "NIMBUS_LOGIN_UID=%s", ev->actor->login_uid);
                if (ev->actor->sudo_user)
                        field_add(f, "NIMBUS_SUDO_USER=%s", ev->actor->sudo_user);
        }
}

/* apply's progress line goes before a log line takes its place; it is drawn again later. */
static void erase_progress_line(const Logger *l) {
        if (l->line_shown && *l->line_shown) {
                fputs("\r\033[K", stderr);
                *l->line_shown = false;
        }
}

static void log_emit(const Logger *l, int priority, const LogEvent *ev, const char *text) {
        Fields f = { .n = 0 };

        if (!l->journal) {
                erase_progress_line(l);
                fprintf(stderr, "%s%s\n", prio_prefix(priority), text);
        }
        if (!l->journal && !l->tee)
                return;
        field_add(&f, "MESSAGE=%s", text);
        field_add(&f, "PRIORITY=%d", priority);
        field_add(&f, "SYSLOG_IDENTIFIER=nimbus-sync");
        fields_from_event(&f, ev);
        for (size_t i = 0; ev && i < ev->n_extra && i < LOG_EXTRA_MAX; i++)
                f.iov[f.n++] = (struct iovec) { .iov_base = ev->extra[i], .iov_len = strlen(ev->extra[i]) };
        (void) sd_journal_sendv(f.iov, f.n);
}

static void __attribute__((format(printf, 4, 0)))
log_eventv(const Logger *l, int priority, const LogEvent *ev, const char *fmt, va_list ap) {
        char text[1024];

        if (priority > l->level)
                return;
        vsnprintf(text, sizeof(text), fmt, ap);
        log_emit(l, priority, ev, text);
}

void log_event(const Logger *l, int priority, const LogEvent *ev, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_eventv(l, priority, ev, fmt, ap);
        va_end(ap);
}

void log_msg(const Logger *l, int priority, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_eventv(l, priority, NULL, fmt, ap);
        va_end(ap);
}

void log_diag(const Logger *l, const Diag *d, const char *message_id) {
        for (size_t i = 0; i < d->n; i++) {
                const DiagEntry *e = &d->entries[i];
                int prio = e->level == DIAG_ERROR ? LOG_ERR : LOG_WARNING;
                LogEvent ev = { .message_id = message_id, .action = "roster",
                                .result = e->level == DIAG_ERROR ? "failed" : NULL,
                                .roster_file = e->file };
                _cleanup_free_ char *line = NULL;

                if (prio > l->level || diag_entry_format(e, &line) < 0)
                        continue;
                /* The formatted line already says "error:"; no prefix on stderr. */
                if (!l->journal) {
                        erase_progress_line(l);
                        fprintf(stderr, "%s\n", line);
                }
                if (l->journal || l->tee)
                        log_event(&(Logger) { .journal = true, .level = l->level }, prio, &ev, "%s", line);
        }
        if (d->dropped > 0)
                log_msg(l, LOG_WARNING, "%zu more diagnostics not shown", d->dropped);
}
