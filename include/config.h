/* config.h: the daemon's configuration (/etc/nimbus-sync/config.yaml), parsed with libyaml and
 * validated completely before anything uses it. A Config is immutable once loaded: a reload builds
 * a new one and swaps it in, so nothing ever sees a half-applied configuration. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "guid.h"
#include "jwt.h"
#include "util.h"

#define CONFIG_DEFAULT_PATH "/etc/nimbus-sync/config.yaml"
#define CONFIG_MAX_SIZE (1024 * 1024)   /* a config larger than this is refused */
#define SECRET_MAX_SIZE (64 * 1024)  /* also the limit of a private key file */
#define CERT_MAX_SIZE (64 * 1024)
#define API_PATH "/api/public-api-next/"

typedef enum LogTarget {
        LOG_TARGET_AUTO,
        LOG_TARGET_JOURNAL,
        LOG_TARGET_STDERR,
} LogTarget;

typedef struct OuAlias {
        char *name;
        Guid id;
} OuAlias;

/* ---- directory sources: nimbus-sync.yaml(5), SOURCES ------------------------------------ */
#define GRAPH_DEFAULT_URL "https://graph.microsoft.com"
#define CONFIG_MAX_SOURCES 100
#define CONFIG_MAX_ROSTER_DEFAULTS 100

/* Where a user goes: an organization unit (create) or a template user (copy). */
typedef struct ConfigTarget {
        Guid id;
        bool is_template;
} ConfigTarget;

/* One entry of `sources:`: the user members of an Entra ID group, nested groups included. */
typedef struct SourceConfig {
        Guid group;                     /* entra_group */
        ConfigTarget target;            /* ou: or template: */
        bool include_disabled;          /* default false: disabled accounts are left out */
} SourceConfig;

/* One entry of `roster_defaults:`: the target of roster entries that name none, in the roster
 * files whose name matches glob (fnmatch). */
typedef struct RosterDefault {
        char *glob;
        ConfigTarget target;
} RosterDefault;
/* ---- end of directory sources ------------------------------------------------------------ */

typedef struct Config {
        char *path;                     /* file it was read from */

        Guid tenant_id;
        char *tenant_id_str;            /* canonical form, for URLs */
        char *client_id;                /* canonical GUID form */
        /* The credential: a client secret (one of the first two), or a certificate and its
         * private key (the third and one of the last two); never both. */
        char *client_secret_file;
        char *client_secret_credential; /* file name inside $CREDENTIALS_DIRECTORY */
        char *client_certificate_file;  /* PEM certificate, may be world-readable */
        char *client_key_file;          /* PEM RSA private key */
        char *client_key_credential;    /* file name inside $CREDENTIALS_DIRECTORY */
        JwtAlg client_assertion_alg;    /* signature of the certificate's assertions, default PS256 */
        char *cluster;                  /* may be NULL when api_url and scope are given */

        char *api_base;                 /* scheme://host[:port] + API_PATH, always ends in '/' */
        char *token_url;
        char *scope;
        char *ca_file;                  /* extra trust anchor, or NULL */

        char *roster_dir;
        char *state_dir;
        char *metrics_file;             /* Prometheus textfile (*.prom), or NULL: none */
        uint64_t scan_interval_usec;    /* default 60 s */
        uint64_t settle_time_usec;      /* default 2 s */

        OuAlias *ous;                   /* organization_units: name → GUID */
        size_t n_ous;

        unsigned rate_operations;       /* default 60 */
        uint64_t rate_window_usec;      /* default 60 s */

        struct {
                bool enabled;           /* default true */
                unsigned max_per_run;   /* default 25 */
                unsigned max_percent;   /* default 10 */
                bool include_adopted;   /* default false */
                bool allow_empty;       /* default false */
                Guid *protected_ids;
                size_t n_protected;
        } deletes;

        /* retry: tuning of nimbus-sync.yaml(5), RETRIES; defaults as documented. */
        struct {
                uint64_t base_usec;         /* default 2 s */
                uint64_t cap_usec;          /* default 15 min */
                unsigned attempts;          /* default 8, then quarantine */
                uint64_t quarantine_usec;   /* default 1 h */
                uint64_t failed_retry_usec; /* default 6 h */
                uint64_t timeout_usec;      /* default 30 s: one request's limit */
        } retry;

        uint64_t verify_interval_usec;  /* default 24 h; 0 = off */

        LogTarget log_target;           /* default auto */
        int log_level;                  /* syslog priority, default LOG_INFO */

        /* Directory sources (see above). */
        char *graph_url;                /* scheme://host[:port], no trailing '/'; GRAPH_DEFAULT_URL */
        SourceConfig *sources;          /* in config order, each group once */
        size_t n_sources;
        uint64_t source_interval_usec;  /* default 5 min */
        RosterDefault *roster_defaults; /* in config order: the first match wins */
        size_t n_roster_defaults;
} Config;

/* Parse and validate. On error returns -EINVAL (or another negative errno) and has added at least
 * one DIAG_ERROR entry with file:line:col. *ret is only set on success. */
int config_load(const char *path, Config **ret, Diag *diag);
/* The same from a buffer, for tests and fuzzing; path is only used in diagnostics. */
int config_parse(const char *path, const char *buf, size_t len, Config **ret, Diag *diag);
Config *config_free(Config *c);
DEFINE_CLEANUP(Config *, config_free)

/* Resolve a roster's `ou:` value: a GUID, or a name from organization_units. -ENOENT if neither. */
int config_resolve_ou(const Config *c, const char *s, size_t len, Guid *ret);
bool config_is_protected(const Config *c, const Guid *id);
/* The roster_defaults entry for a roster file (its base name is matched), or NULL. */
const RosterDefault *config_roster_default(const Config *c, const char *path);
