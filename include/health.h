/* health.h: the verdict of `status --check` and of each line of `status --all`, as monitoring
 * systems (Nagios and its kin) read it: OK, WARNING (held deletes, failed or quarantined users,
 * Entra groups that could not be read, nothing run yet) or CRITICAL (an instance that cannot work: bad config, unreadable store,
 * credentials refused, roster rejected, daemon not running though one is expected). A pure
 * function of facts the caller gathered from the config, the state store and the host; see
 * nimbus-sync(8), MONITORING. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef enum HealthLevel {
        HEALTH_OK = 0,          /* the exit codes of monitoring plugins */
        HEALTH_WARNING = 1,
        HEALTH_CRITICAL = 2,
} HealthLevel;

typedef struct HealthFacts {
        const char *config_error;      /* the config could not be loaded: why; NULL if it was */
        const char *store_error;       /* the state store could not be read: why */
        bool has_state;                /* a state store exists: the instance has run */
        const char *auth_state;        /* as the store says: "ok", "failed"; NULL unknown */
        const char *auth_error;        /* the server's reason, when refused */
        const char *roster_error;      /* the roster was rejected: its first error; NULL if valid */
        bool daemon_running;
        long daemon_gone_pid;          /* a daemon recorded this pid and is gone without stopping */
        bool unit_enabled;             /* the instance's systemd unit is enabled */
        const char *shares_state_with; /* another instance whose state_dir is the same */
        size_t held, failed, quarantined;
        size_t sources_failed;         /* Entra groups whose last read failed (their last list stands) */
} HealthFacts;

/* The level, and in buf (always terminated, cut to size) its reasons, the critical ones first,
 * separated by "; "; empty when all is well. */
HealthLevel health_assess(const HealthFacts *f, char *buf, size_t size);

/* "OK", "WARNING", "CRITICAL". */
const char *health_level_name(HealthLevel level);
