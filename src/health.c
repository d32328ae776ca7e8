/* health.c: OK, WARNING or CRITICAL for one instance, from facts gathered by `status`. */
#include "health.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

typedef struct Reasons {
        char *buf;
        size_t size, len;
        HealthLevel level;
} Reasons;

/* Appends what fits of s, never half a UTF-8 character. */
static void append(Reasons *r, const char *s, size_t n) {
        n = utf8_prefix(s, n, r->size - 1 - r->len);
        memcpy(r->buf + r->len, s, n);
        r->len += n;
        r->buf[r->len] = 0;
}

/* Adds one reason; one that no longer fits is cut, and its level counts all the same. */
__attribute__((format(printf, 3, 4)))
static void reason(Reasons *r, HealthLevel level, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL;
        va_list ap;
        int n;

        if (level > r->level)
                r->level = level;
        va_start(ap, fmt);
        n = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (n < 0) {
                text = NULL;   /* undefined after a failure */
                return;
        }
        if (r->len > 0)
                append(r, "; ", 2);
        append(r, text, (size_t) n);
}

/* Monitoring reads one line, and "|" starts its performance data: server messages and roster
 * errors may hold either. */
static void one_line(Reasons *r) {
        for (char *p = r->buf; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = ' ';
                else if (*p == '|')
                        *p = '/';
}

static bool auth_refused(const char *state) {
        return state && (strcmp(state, "failed") == 0 || strcmp(state, "paused") == 0);
}

/* A daemon should run when the instance's unit is enabled, or when one ran and vanished without
 * stopping (killed, crashed): a daemon that stopped cleanly forgot its pid. */
static void assess_daemon(const HealthFacts *f, Reasons *r) {
        if (f->daemon_running)
                return;
        if (f->daemon_gone_pid > 0)
                reason(r, HEALTH_CRITICAL, "daemon not running (pid %ld ended without stopping)",
                       f->daemon_gone_pid);
        else if (f->unit_enabled)
                reason(r, HEALTH_CRITICAL, "daemon not running (its unit is enabled)");
}

static void assess_critical(const HealthFacts *f, Reasons *r) {
        if (f->config_error) {
                reason(r, HEALTH_CRITICAL, "config invalid: %s", f->config_error);
                return;   /* nothing else is known without a config */
        }
        if (f->shares_state_with)
                reason(r, HEALTH_CRITICAL, "same state_dir as %s", f->shares_state_with);
        if (f->store_error)
                reason(r, HEALTH_CRITICAL, "state store unreadable: %s", f->store_error);
        if (auth_refused(f->auth_state))
                reason(r, HEALTH_CRITICAL, "credentials refused, tenant paused: %s",
                       f->auth_error ? f->auth_error : "no reason given");
        if (f->roster_error)
                reason(r, HEALTH_CRITICAL, "roster rejected: %s", f->roster_error);
        assess_daemon(f, r);
}

static void assess_warning(const HealthFacts *f, Reasons *r) {
        if (!f->has_state && !f->store_error)
                reason(r, HEALTH_WARNING, "no state yet: nimbus-sync has not run");
        if (f->held > 0)
                reason(r, HEALTH_WARNING, "%zu %s held", f->held, f->held == 1 ? "delete" : "deletes");
        if (f->failed > 0)
                reason(r, HEALTH_WARNING, "%zu failed", f->failed);
        if (f->quarantined > 0)
                reason(r, HEALTH_WARNING, "%zu quarantined", f->quarantined);
        if (f->sources_failed > 0)
                reason(r, HEALTH_WARNING, "%zu Entra %s not read (%s last complete list in force)",
                       f->sources_failed, f->sources_failed == 1 ? "group" : "groups",
                       f->sources_failed == 1 ? "its" : "their");
}

HealthLevel health_assess(const HealthFacts *f, char *buf, size_t size) {
        Reasons r = { .buf = buf, .size = size };

        if (size == 0)
                return HEALTH_CRITICAL;   /* no room even for the reasons: a caller's bug */
        buf[0] = 0;
        assess_critical(f, &r);
        if (!f->config_error)
                assess_warning(f, &r);
        one_line(&r);
        return r.level;
}

const char *health_level_name(HealthLevel level) {
        return level == HEALTH_OK ? "OK" : level == HEALTH_WARNING ? "WARNING" : "CRITICAL";
}
