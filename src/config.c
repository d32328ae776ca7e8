/* config.c: reads /etc/nimbus-sync/config.yaml (nimbus-sync.yaml(5)) into an immutable Config.
 *
 * The whole file is validated before anything uses it, and every problem found is reported with
 * file:line:col, not only the first: an admin fixing a config wants the full list at once.
 * Parsing is table driven: each key has a Field that says how its value is read and where it goes.
 *
 * Defaults (also the documented numbers, nimbus-sync.yaml(5)):
 *   roster_dir /var/lib/nimbus-sync/roster.d     state_dir /var/lib/nimbus-sync
 *   scan_interval 60s    settle_time 2s          rate_limit {operations: 60, window: 60s}
 *   deletes {enabled: true, max_per_run: 25, max_percent: 10, include_adopted: false,
 *            allow_empty: false, protected: []}
 *   retry {base: 2s, cap: 15m, attempts: 8, quarantine: 1h, failed_retry: 6h, timeout: 30s}
 *   verify {interval: 24h}   log {target: auto, level: info}
 *   api_url  https://admin.{cluster}.luware.cloud   (API_PATH is appended)
 *   scope    https://admin.{cluster}.luware.cloud/.default
 *   token_url https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token
 */
#include "config.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>
#include <yaml.h>

#include "util.h"
#include "yaml_problem.h"

#define DEFAULT_ROSTER_DIR "/var/lib/nimbus-sync/roster.d"
#define DEFAULT_STATE_DIR "/var/lib/nimbus-sync"
#define QUOTE_MAX 80        /* at most this much of a bad value is quoted back */
#define OU_NAME_MAX 64
#define SCOPE_MAX 1024
#define MAX_DEPTH 64        /* YAML nesting; the config itself needs three levels */

#define SEC USEC_PER_SEC
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static const char *const clusters[] = {
        "ch-01", "ch-02", "dewe-01", "dewe-02", "ukso-01", "aue-01", "euwe-01", "use-01",
};

typedef struct Ctx {
        const char *path;       /* for diagnostics */
        const char *buf;        /* the text, to turn a reader error's offset into line:col */
        size_t len;
        Diag *diag;
        yaml_document_t *doc;
        yaml_node_t *root;
        char *dir;              /* absolute directory of the config: base of relative paths */
        size_t errors_before;   /* diag->n_errors when parsing began */
        Config *c;
} Ctx;

typedef struct Field Field;
typedef int (*FieldFn)(Ctx *x, const Field *f, yaml_node_t *v, void *dest);

struct Field {
        const char *key;        /* in its mapping */
        const char *name;       /* dotted, for messages */
        FieldFn parse;
        size_t offset;          /* of the destination in Config */
        uint64_t min, max;      /* numbers and durations */
        const Field *sub;       /* nested mappings */
        size_t n_sub;
};

static int qlen(const char *s) {
        size_t n = strlen(s);

        return (int) (n < QUOTE_MAX ? n : QUOTE_MAX);
}

static int error_at(Ctx *x, const yaml_node_t *n, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int error_at(Ctx *x, const yaml_node_t *n, const char *fmt, ...) {
        unsigned line = n ? (unsigned) n->start_mark.line + 1 : 1;
        unsigned col = n ? (unsigned) n->start_mark.column + 1 : 1;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = diag_addv(x->diag, DIAG_ERROR, x->path, line, col, fmt, ap);
        va_end(ap);
        return r;
}

/* ---- scalar readers ---------------------------------------------------------------------- */

static const char *node_kind(const yaml_node_t *n) {
        switch (n->type) {
        case YAML_MAPPING_NODE:
                return "a mapping";
        case YAML_SEQUENCE_NODE:
                return "a list";
        default:
                return "a scalar";
        }
}

static bool node_is_null(const yaml_node_t *n) {
        const char *v;

        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        v = (const char *) n->data.scalar.value;
        return v[0] == '\0' || streq(v, "~") || streq(v, "null") || streq(v, "Null") ||
               streq(v, "NULL");
}

/* The value of a scalar node that must hold text: not a collection, not empty, no NUL byte. */
static int node_text(Ctx *x, const Field *f, const yaml_node_t *n, const char *what,
                     const char **ret) {
        const char *v;

        if (n->type != YAML_SCALAR_NODE)
                return error_at(x, n, "%s: expected %s, got %s", f->name, what, node_kind(n));
        v = (const char *) n->data.scalar.value;
        if (node_is_null(n) || v[0] == '\0')
                return error_at(x, n, "%s: expected %s, got an empty value", f->name, what);
        if (strlen(v) != n->data.scalar.length)
                return error_at(x, n, "%s: value contains a NUL byte", f->name);
        *ret = v;
        return 0;
}

/* Numbers and booleans must be plain scalars: "60" in quotes is a string in YAML. */
static int node_plain(Ctx *x, const Field *f, const yaml_node_t *n, const char *what,
                      const char **ret) {
        int r = node_text(x, f, n, what, ret);

        if (r < 0)
                return r;
        if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return error_at(x, n, "%s: expected %s, got a quoted string", f->name, what);
        return 0;
}

/* asprintf() into *dest, leaving it NULL on failure (asprintf leaves it undefined). */
static int format_into(char **dest, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int format_into(char **dest, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(dest, fmt, ap);
        va_end(ap);
        if (r < 0) {
                *dest = NULL;
                return -ENOMEM;
        }
        return 0;
}

static void *dest_of(Ctx *x, const Field *f) {
        return (char *) x->c + f->offset;
}

static int parse_uint_value(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!*s)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                if (v > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret = v;
        return 0;
}

static int field_unsigned(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        const char *s;
        uint64_t n;
        int r;

        r = node_plain(x, f, v, "an integer", &s);
        if (r < 0)
                return r;
        r = parse_uint_value(s, &n);
        if (r == -EINVAL && s[0] == '-' && parse_uint_value(s + 1, &n) == 0)
                r = -ERANGE; /* a negative number: say it is out of range, not "not a number" */
        if (r == -EINVAL)
                return error_at(x, v, "%s: expected an integer, got \"%.*s\"", f->name, qlen(s), s);
        if (r < 0 || n < f->min || n > f->max)
                return error_at(x, v, "%s: %.*s is out of range (%" PRIu64 "..%" PRIu64 ")",
                                f->name, qlen(s), s, f->min, f->max);
        *(unsigned *) dest = (unsigned) n;
        return 0;
}

/* A bound as the admin would write it: "90s" rather than "90000000". */
static void format_duration(uint64_t usec, char buf[32]) {
        if (usec % DAY == 0 && usec > 0)
                snprintf(buf, 32, "%" PRIu64 "d", usec / DAY);
        else if (usec % HOUR == 0 && usec > 0)
                snprintf(buf, 32, "%" PRIu64 "h", usec / HOUR);
        else if (usec % MIN == 0 && usec > 0)
                snprintf(buf, 32, "%" PRIu64 "m", usec / MIN);
        else if (usec % SEC == 0)
                snprintf(buf, 32, "%" PRIu64 "s", usec / SEC);
        else
                snprintf(buf, 32, "%" PRIu64 "ms", usec / USEC_PER_MSEC);
}

static int field_duration(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        char lo[32], hi[32];
        const char *s;
        uint64_t usec;
        int r;

        r = node_text(x, f, v, "a duration", &s);
        if (r < 0)
                return r;
        r = parse_duration(s, &usec);
        if (r == -EINVAL)
                return error_at(x, v, "%s: invalid duration \"%.*s\" (use e.g. 500ms, 2s, 5m, 24h, 1d)",
                                f->name, qlen(s), s);
        if (r < 0 || usec < f->min || usec > f->max) {
                format_duration(f->min, lo);
                format_duration(f->max, hi);
                return error_at(x, v, "%s: %.*s is out of range (%s..%s)", f->name, qlen(s), s, lo, hi);
        }
        *(uint64_t *) dest = usec;
        return 0;
}

static int field_bool(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        static const char *const yes[] = { "true", "yes", "on" }, *const no[] = { "false", "no", "off" };
        const char *s;
        int r;

        r = node_plain(x, f, v, "true or false", &s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *(bool *) dest = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *(bool *) dest = false;
                        return 0;
                }
        }
        return error_at(x, v, "%s: expected true or false, got \"%.*s\"", f->name, qlen(s), s);
}

static int field_guid_string(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        char buf[GUID_STRING_MAX];
        const char *s;
        Guid g;
        int r;

        r = node_text(x, f, v, "a GUID", &s);
        if (r < 0)
                return r;
        if (guid_parse(s, strlen(s), &g) < 0)
                return error_at(x, v, "%s: invalid GUID \"%.*s\"", f->name, qlen(s), s);
        /* The shipped example has all-zero ids: left unedited, every token request would fail. */
        if (guid_is_null(&g))
                return error_at(x, v, "%s: %s is still the example's placeholder; set %s", f->name, s,
                                streq(f->key, "tenant_id") ? "your Entra tenant id" :
                                                             "the app registration's client id");
        return strdup_checked(guid_format(&g, buf), (char **) dest);
}

/* The tenant is needed both as bytes and as text (for the token URL). */
static int field_tenant(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        char **str = dest;
        int r = field_guid_string(x, f, v, dest);

        if (r < 0 || !*str)
                return r;
        return guid_parse(*str, strlen(*str), &x->c->tenant_id);
}

/* Relative paths are taken from the config file's directory, not from wherever the daemon
 * happens to run, so a config and its secret can be moved together. */
static int field_path(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        const char *s;
        int r;

        r = node_text(x, f, v, "a path", &s);
        if (r < 0)
                return r;
        if (strlen(s) >= PATH_MAX)
                return error_at(x, v, "%s: path is too long", f->name);
        if (s[0] == '/')
                return strdup_checked(s, (char **) dest);
        while (s[0] == '.' && s[1] == '/')
                s += 2;
        return format_into((char **) dest, "%s%s%s", x->dir, streq(x->dir, "/") ? "" : "/", s);
}

/* node_exporter's textfile collector reads only *.prom files: any other name would be written
 * and never scraped. */
static int field_metrics_file(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        const char *s;
        size_t n;
        int r;

        r = node_text(x, f, v, "a path", &s);
        if (r < 0)
                return r;
        n = strlen(s);
        if (n < 6 || !streq(s + n - 5, ".prom") || s[n - 6] == '/')
                return error_at(x, v, "%s: \"%.*s\" must end in .prom (node_exporter's textfile "
                                "collector reads only those)", f->name, qlen(s), s);
        return field_path(x, f, v, dest);
}

/* ---- the credential: a secret or a certificate ------------------------------------------- */

/* Each credential has two ways of naming its private part: a path or a systemd credential. */
static int check_one(Ctx *x, const Field *f, yaml_node_t *v, bool taken, const char *keys) {
        if (taken)
                return error_at(x, v, "%s: set only one of %s", f->name, keys);
        return 0;
}

static bool secret_taken(const Config *c) {
        return c->client_secret_file || c->client_secret_credential;
}

static bool key_taken(const Config *c) {
        return c->client_key_file || c->client_key_credential;
}

/* A name inside $CREDENTIALS_DIRECTORY, as systemd's LoadCredential= gives it. */
static int field_credential_name(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        const char *s;
        int r;

        r = node_text(x, f, v, "a credential name", &s);
        if (r < 0)
                return r;
        if (strchr(s, '/') || streq(s, ".") || streq(s, "..") || strlen(s) > NAME_MAX)
                return error_at(x, v, "%s: \"%.*s\" is not a credential name (a file name inside "
                                "$CREDENTIALS_DIRECTORY, without '/')", f->name, qlen(s), s);
        return strdup_checked(s, (char **) dest);
}

static int field_secret_file(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        int r = check_one(x, f, v, secret_taken(x->c), "client_secret_file and client_secret_credential");

        return r < 0 ? r : field_path(x, f, v, dest);
}

static int field_secret_credential(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        int r = check_one(x, f, v, secret_taken(x->c), "client_secret_file and client_secret_credential");

        return r < 0 ? r : field_credential_name(x, f, v, dest);
}

static int field_key_file(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        int r = check_one(x, f, v, key_taken(x->c), "client_key_file and client_key_credential");

        return r < 0 ? r : field_path(x, f, v, dest);
}

static int field_key_credential(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        int r = check_one(x, f, v, key_taken(x->c), "client_key_file and client_key_credential");

        return r < 0 ? r : field_credential_name(x, f, v, dest);
}

/* ---- enumerations ------------------------------------------------------------------------ */

static int field_cluster(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        const char *s;
        int r;

        r = node_text(x, f, v, "a cluster name", &s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(clusters); i++)
                if (streq(s, clusters[i]))
                        return strdup_checked(s, (char **) dest);
        return error_at(x, v, "%s: unknown cluster \"%.*s\" (expected one of: ch-01 ch-02 dewe-01 "
                        "dewe-02 ukso-01 aue-01 euwe-01 use-01)", f->name, qlen(s), s);
}

static int field_log_target(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        static const char *const names[] = {
                [LOG_TARGET_AUTO] = "auto", [LOG_TARGET_JOURNAL] = "journal", [LOG_TARGET_STDERR] = "stderr",
        };
        const char *s;
        int r;

        r = node_text(x, f, v, "a log target", &s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i])) {
                        *(LogTarget *) dest = (LogTarget) i;
                        return 0;
                }
        return error_at(x, v, "%s: unknown value \"%.*s\" (expected one of: auto journal stderr)",
                        f->name, qlen(s), s);
}

static int field_assertion_alg(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        static const JwtAlg algs[] = { JWT_ALG_PS256, JWT_ALG_RS256 };
        const char *s;
        int r;

        r = node_text(x, f, v, "a signature algorithm", &s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(algs); i++)
                if (streq(s, jwt_alg_name(algs[i]))) {
                        *(JwtAlg *) dest = algs[i];
                        return 0;
                }
        return error_at(x, v, "%s: unknown value \"%.*s\" (expected PS256 or RS256)", f->name,
                        qlen(s), s);
}

static int field_log_level(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        static const struct {
                const char *name;
                int level;
        } levels[] = {
                { "emerg", LOG_EMERG },     { "alert", LOG_ALERT },   { "crit", LOG_CRIT },
                { "err", LOG_ERR },         { "error", LOG_ERR },     { "warning", LOG_WARNING },
                { "warn", LOG_WARNING },    { "notice", LOG_NOTICE }, { "info", LOG_INFO },
                { "debug", LOG_DEBUG },
        };
        const char *s;
        int r;

        r = node_text(x, f, v, "a log level", &s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(levels); i++)
                if (streq(s, levels[i].name)) {
                        *(int *) dest = levels[i].level;
                        return 0;
                }
        return error_at(x, v, "%s: unknown value \"%.*s\" (expected one of: emerg alert crit err "
                        "warning notice info debug)", f->name, qlen(s), s);
}

/* ---- URLs: checked with libcurl's parser, the one that will use them --------------------- */

static bool host_is_loopback(const char *host) {
        char buf[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        struct in_addr a4;
        size_t n = strlen(host);

        /* libcurl resolves "localhost" and every "*.localhost" to loopback itself, never by
         * DNS (RFC 6761 §6.3). */
        if (strcasecmp(host, "localhost") == 0 ||
            (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0))
                return true;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (n > 2 && n - 2 < sizeof buf && host[0] == '[' && host[n - 1] == ']') {
                memcpy(buf, host + 1, n - 2);
                buf[n - 2] = '\0';
                return inet_pton(AF_INET6, buf, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
        }
        return false;
}

static bool url_has(CURLU *u, CURLUPart part) {
        char *s = NULL;
        bool has = curl_url_get(u, part, &s, 0) == CURLUE_OK && s && *s;

        curl_free(s);
        return has;
}

/* Parse s into u and check what every URL we call must satisfy: https, or http to loopback. */
static int url_check_common(Ctx *x, const Field *f, yaml_node_t *v, const char *s, CURLU *u) {
        char *scheme = NULL, *host = NULL;
        CURLUcode rc;
        int r = 0;

        rc = curl_url_set(u, CURLUPART_URL, s, 0);
        if (rc != CURLUE_OK)
                return error_at(x, v, "%s: invalid URL \"%.*s\": %s", f->name, qlen(s), s,
                                curl_url_strerror(rc));
        if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                r = error_at(x, v, "%s: URL \"%.*s\" has no scheme or host", f->name, qlen(s), s);
        else if (!streq(scheme, "https") && !streq(scheme, "http"))
                r = error_at(x, v, "%s: URL must start with https://", f->name);
        else if (streq(scheme, "http") && !host_is_loopback(host))
                r = error_at(x, v, "%s: plain http:// is accepted only for loopback hosts", f->name);
        else if (url_has(u, CURLUPART_USER) || url_has(u, CURLUPART_PASSWORD))
                r = error_at(x, v, "%s: URL must not contain a user name or password", f->name);
        else if (url_has(u, CURLUPART_FRAGMENT))
                r = error_at(x, v, "%s: URL must not contain a #fragment", f->name);
        curl_free(scheme);
        curl_free(host);
        return r;
}

static int url_to_string(CURLU *u, char **dest) {
        char *out = NULL;
        int r;

        if (curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
                return -ENOMEM;
        r = strdup_checked(out, dest);
        curl_free(out);
        return r;
}

/* Scheme, host and port only. curl reports the path of both "https://h" and "https://h/" as
 * "/"; a trailing slash still means the admin expected to give a prefix, which we do not take. */
static bool url_only_origin(CURLU *u, const char *s) {
        char *path = NULL;
        bool only = curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && streq(path, "/") &&
                    s[strlen(s) - 1] != '/' && !url_has(u, CURLUPART_QUERY);

        curl_free(path);
        return only;
}

typedef enum UrlForm {
        URL_ANY,        /* token_url: any checked URL */
        URL_API,        /* api_url: scheme and host; the API path is appended */
        URL_ORIGIN,     /* graph_url: scheme and host, kept without a trailing slash */
} UrlForm;

/* The checks every URL key shares, then the form this key wants. */
static int url_field(Ctx *x, const Field *f, yaml_node_t *v, char **out, UrlForm form) {
        const char *s;
        CURLU *u;
        int r;

        r = node_text(x, f, v, "a URL", &s);
        if (r < 0)
                return r;
        u = curl_url();
        if (!u)
                return -ENOMEM;
        r = url_check_common(x, f, v, s, u);
        if (r == 0 && form != URL_ANY && !url_only_origin(u, s))
                r = error_at(x, v, form == URL_API ? "%s: api_url takes scheme and host only; "
                             API_PATH " is appended" : "%s: graph_url takes scheme and host only "
                             "(and a port)", f->name);
        else if (r == 0 && form == URL_API && curl_url_set(u, CURLUPART_PATH, API_PATH, 0) != CURLUE_OK)
                r = -ENOMEM;
        if (r == 0)
                r = url_to_string(u, out);
        if (r == 0 && form == URL_ORIGIN && (*out)[strlen(*out) - 1] == '/')
                (*out)[strlen(*out) - 1] = '\0';
        curl_url_cleanup(u);
        return r;
}

static int field_api_url(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        return url_field(x, f, v, dest, URL_API);
}

static int field_token_url(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        return url_field(x, f, v, dest, URL_ANY);
}

static int field_scope(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        const char *s;
        int r;

        r = node_text(x, f, v, "a scope", &s);
        if (r < 0)
                return r;
        if (strlen(s) > SCOPE_MAX)
                return error_at(x, v, "%s: scope is too long", f->name);
        /* OAuth scopes are printable ASCII, space separated (RFC 6749 §3.3). */
        for (const char *p = s; *p; p++)
                if (*p < 0x20 || *p > 0x7e)
                        return error_at(x, v, "%s: scope may contain only printable ASCII", f->name);
        return strdup_checked(s, (char **) dest);
}

/* ---- organization_units and deletes.protected -------------------------------------------- */

static bool ou_name_valid(const char *s) {
        size_t n = strlen(s);
        Guid g;

        if (n == 0 || n > OU_NAME_MAX || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                               "0123456789._-") != n)
                return false;
        /* A name that parses as a GUID could never be used: GUIDs are tried first. */
        return guid_parse(s, n, &g) < 0;
}

static int ou_cmp(const void *a, const void *b) {
        return strcmp(((const OuAlias *) a)->name, ((const OuAlias *) b)->name);
}

static int ou_add(Ctx *x, const Field *f, yaml_node_t *k, yaml_node_t *v) {
        Config *c = x->c;
        const char *name, *id;
        OuAlias *n;
        Guid g;
        int r;

        r = node_text(x, f, k, "an organization unit name", &name);
        if (r < 0)
                return r;
        if (!ou_name_valid(name))
                return error_at(x, k, "%s: invalid name \"%.*s\" (1-%d characters of A-Z a-z 0-9 . _ -, "
                                "not a GUID)", f->name, qlen(name), name, OU_NAME_MAX);
        r = node_text(x, f, v, "a GUID", &id);
        if (r < 0)
                return r;
        if (guid_parse(id, strlen(id), &g) < 0)
                return error_at(x, v, "%s.%s: invalid GUID \"%.*s\"", f->name, name, qlen(id), id);
        for (size_t i = 0; i < c->n_ous; i++)
                if (streq(c->ous[i].name, name))
                        return error_at(x, k, "%s: duplicate name \"%s\"", f->name, name);

        n = reallocarray(c->ous, c->n_ous + 1, sizeof(OuAlias));
        if (!n)
                return -ENOMEM;
        c->ous = n;
        r = strdup_checked(name, &c->ous[c->n_ous].name);
        if (r < 0)
                return r;
        c->ous[c->n_ous++].id = g;
        return 0;
}

static int field_ous(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        if (node_is_null(v))
                return 0;
        if (v->type != YAML_MAPPING_NODE)
                return error_at(x, v, "%s: expected a mapping of name: GUID, got %s", f->name, node_kind(v));

        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
                int r = ou_add(x, f, yaml_document_get_node(x->doc, p->key),
                               yaml_document_get_node(x->doc, p->value));
                if (r == -ENOMEM)
                        return r;
        }
        /* Sorted by name, so rosters resolve a million `ou: name` values by binary search. */
        if (x->c->n_ous > 0)
                qsort(x->c->ous, x->c->n_ous, sizeof(OuAlias), ou_cmp);
        return 0;
}

static int protected_add(Ctx *x, const Field *f, yaml_node_t *item) {
        Config *c = x->c;
        const char *s;
        Guid g, *n;
        int r;

        r = node_text(x, f, item, "a GUID", &s);
        if (r < 0)
                return r;
        if (guid_parse(s, strlen(s), &g) < 0)
                return error_at(x, item, "%s: invalid GUID \"%.*s\"", f->name, qlen(s), s);
        n = reallocarray(c->deletes.protected_ids, c->deletes.n_protected + 1, sizeof(Guid));
        if (!n)
                return -ENOMEM;
        c->deletes.protected_ids = n;
        n[c->deletes.n_protected++] = g;
        return 0;
}

static int guid_qsort_cmp(const void *a, const void *b) {
        return guid_cmp(a, b);
}

static int field_protected(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        Config *c = x->c;
        size_t k = 0;

        if (node_is_null(v))
                return 0;
        if (v->type != YAML_SEQUENCE_NODE)
                return error_at(x, v, "%s: expected a list of GUIDs, got %s", f->name, node_kind(v));

        for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top; i++)
                if (protected_add(x, f, yaml_document_get_node(x->doc, *i)) == -ENOMEM)
                        return -ENOMEM;

        /* Sorted and unique for config_is_protected()'s binary search; listing an id twice is
         * harmless, so it is not worth an error. */
        if (c->deletes.n_protected == 0)
                return 0;
        qsort(c->deletes.protected_ids, c->deletes.n_protected, sizeof(Guid), guid_qsort_cmp);
        for (size_t i = 1; i < c->deletes.n_protected; i++)
                if (!guid_eq(&c->deletes.protected_ids[k], &c->deletes.protected_ids[i]))
                        c->deletes.protected_ids[++k] = c->deletes.protected_ids[i];
        c->deletes.n_protected = k + 1;
        return 0;
}

/* ---- directory sources: graph_url, sources:, roster_defaults: ------------------------------
 * sources: and roster_defaults: may name organization units defined further down the file, so
 * their table entries only reserve the key; parse_directory_sources() reads them once the whole
 * mapping (organization_units included) has been parsed. */

#define GLOB_MAX 255

static yaml_node_t *lookup(Ctx *x, yaml_node_t *map, const char *key);

/* Kept without the trailing '/', so "{graph_url}/v1.0/..." is the request URL. */
static int field_graph_url(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        return url_field(x, f, v, dest, URL_ORIGIN);
}

static int field_later(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        return 0;
}

/* The values of the allowed keys of a small mapping (NULL when absent); unknown and repeated
 * keys are errors. */
static int collect_keys(Ctx *x, yaml_node_t *map, const char *where, const char *const *keys,
                        size_t n, yaml_node_t **ret) {
        int r = 0;

        if (map->type != YAML_MAPPING_NODE)
                return error_at(x, map, "%s: expected a mapping, got %s", where, node_kind(map));
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
                const char *key = k->type == YAML_SCALAR_NODE ? (const char *) k->data.scalar.value : "";
                size_t i = 0;

                while (i < n && !streq(keys[i], key))
                        i++;
                if (i == n)
                        r = error_at(x, k, "%s: unknown key \"%.*s\"", where, qlen(key), key);
                else if (ret[i])
                        r = error_at(x, k, "%s: duplicate key \"%s\"", where, key);
                else
                        ret[i] = yaml_document_get_node(x->doc, p->value);
        }
        return r;
}

/* Exactly one of `ou:` (a GUID or an organization_units name) and `template:` (an O365 ID). */
static int target_parse(Ctx *x, yaml_node_t *at, const char *where, yaml_node_t *ou,
                        yaml_node_t *template_id, ConfigTarget *ret) {
        const Field f = { .name = where };
        const char *s;
        int r;

        if (ou && template_id)
                return error_at(x, template_id, "%s: set either ou or template, not both", where);
        if (!ou && !template_id)
                return error_at(x, at, "%s: needs ou (a GUID or an organization_units name) or "
                                "template (an O365 ID)", where);
        r = node_text(x, &f, ou ?: template_id, ou ? "an organization unit" : "an O365 ID", &s);
        if (r < 0)
                return r;
        ret->is_template = !ou;
        if (template_id && guid_parse(s, strlen(s), &ret->id) < 0)
                return error_at(x, template_id, "%s: invalid template \"%.*s\" (must be an O365 ID)",
                                where, qlen(s), s);
        if (ou && config_resolve_ou(x->c, s, strlen(s), &ret->id) < 0)
                return error_at(x, ou, "%s: unknown organization unit \"%.*s\" (neither a GUID nor a "
                                "name from organization_units)", where, qlen(s), s);
        return 0;
}

static int source_group(Ctx *x, const char *where, yaml_node_t *v, Guid *ret) {
        const Field f = { .name = where };
        char id[GUID_STRING_MAX];
        const char *s;
        int r;

        r = node_text(x, &f, v, "the object ID of an Entra ID group", &s);
        if (r < 0)
                return r;
        if (guid_parse(s, strlen(s), ret) < 0)
                return error_at(x, v, "%s: invalid GUID \"%.*s\" (the group's object ID)", where, qlen(s), s);
        for (size_t i = 0; i < x->c->n_sources; i++)
                if (guid_eq(&x->c->sources[i].group, ret))
                        return error_at(x, v, "%s: entra group %s is listed twice (also sources[%zu])",
                                        where, guid_format(ret, id), i + 1);
        return 0;
}

static int source_add(Ctx *x, yaml_node_t *item, size_t index) {
        static const char *const keys[] = { "entra_group", "ou", "template", "include_disabled" };
        yaml_node_t *v[ELEMENTSOF(keys)] = { 0 };
        char where[64], name[96];
        SourceConfig sc = { 0 }, *n;
        int r;

        snprintf(where, sizeof(where), "sources[%zu]", index + 1);
        r = collect_keys(x, item, where, keys, ELEMENTSOF(keys), v);
        if (r == 0 && !v[0])
                r = error_at(x, item, "%s: missing entra_group (the group's object ID)", where);
        if (r == 0)
                r = source_group(x, (snprintf(name, sizeof(name), "%s.entra_group", where), name), v[0], &sc.group);
        if (r == 0)
                r = target_parse(x, item, where, v[1], v[2], &sc.target);
        if (r == 0 && v[3])
                r = field_bool(x, &(const Field) { .name = (snprintf(name, sizeof(name), "%s.include_disabled",
                               where), name) }, v[3], &sc.include_disabled);
        if (r < 0)
                return r;
        n = reallocarray(x->c->sources, x->c->n_sources + 1, sizeof(SourceConfig));
        if (!n)
                return -ENOMEM;
        x->c->sources = n;
        n[x->c->n_sources++] = sc;
        return 0;
}

static int parse_sources(Ctx *x, yaml_node_t *v) {
        size_t i = 0;

        if (node_is_null(v))
                return 0;
        if (v->type != YAML_SEQUENCE_NODE)
                return error_at(x, v, "sources: expected a list of {entra_group, ou | template}, got %s",
                                node_kind(v));
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++, i++) {
                if (i == CONFIG_MAX_SOURCES)
                        return error_at(x, yaml_document_get_node(x->doc, *it), "sources: more than %d "
                                        "entries", CONFIG_MAX_SOURCES);
                if (source_add(x, yaml_document_get_node(x->doc, *it), i) == -ENOMEM)
                        return -ENOMEM;
        }
        return 0;
}

static int roster_default_add(Ctx *x, yaml_node_t *k, yaml_node_t *v) {
        static const char *const keys[] = { "ou", "template" };
        yaml_node_t *t[ELEMENTSOF(keys)] = { 0 };
        const Field f = { .name = "roster_defaults" };
        RosterDefault d = { 0 }, *n;
        char where[GLOB_MAX + 32];
        const char *glob;
        int r;

        r = node_text(x, &f, k, "a file name pattern", &glob);
        if (r < 0)
                return r;
        if (strlen(glob) > GLOB_MAX || strchr(glob, '/'))
                return error_at(x, k, "roster_defaults: \"%.*s\" is not a file name pattern (at most %d "
                                "characters, no '/')", qlen(glob), glob, GLOB_MAX);
        snprintf(where, sizeof(where), "roster_defaults.\"%s\"", glob);
        r = collect_keys(x, v, where, keys, ELEMENTSOF(keys), t);
        if (r == 0)
                r = target_parse(x, v, where, t[0], t[1], &d.target);
        if (r < 0)
                return r;
        n = reallocarray(x->c->roster_defaults, x->c->n_roster_defaults + 1, sizeof(RosterDefault));
        if (!n)
                return -ENOMEM;
        x->c->roster_defaults = n;
        r = strdup_checked(glob, &d.glob);
        if (r < 0)
                return r;
        n[x->c->n_roster_defaults++] = d;
        return 0;
}

static int parse_roster_defaults(Ctx *x, yaml_node_t *v) {
        if (node_is_null(v))
                return 0;
        if (v->type != YAML_MAPPING_NODE)
                return error_at(x, v, "roster_defaults: expected a mapping of file name pattern: "
                                "{ou | template}, got %s", node_kind(v));
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
                if (x->c->n_roster_defaults == CONFIG_MAX_ROSTER_DEFAULTS)
                        return error_at(x, yaml_document_get_node(x->doc, p->key), "roster_defaults: "
                                        "more than %d entries", CONFIG_MAX_ROSTER_DEFAULTS);
                if (roster_default_add(x, yaml_document_get_node(x->doc, p->key),
                                       yaml_document_get_node(x->doc, p->value)) == -ENOMEM)
                        return -ENOMEM;
        }
        return 0;
}

static int parse_directory_sources(Ctx *x) {
        yaml_node_t *v;
        int r = 0;

        if ((v = lookup(x, x->root, "sources")))
                r = parse_sources(x, v);
        if (r >= 0 && (v = lookup(x, x->root, "roster_defaults")))
                r = parse_roster_defaults(x, v);
        return r == -ENOMEM ? r : 0;
}
/* ---- end of directory sources ---------------------------------------------------------- */

/* ---- mappings ---------------------------------------------------------------------------- */

static int parse_mapping(Ctx *x, yaml_node_t *map, const char *where, const Field *fields, size_t n);

static int field_mapping(Ctx *x, const Field *f, yaml_node_t *v, void *dest) {
        return parse_mapping(x, v, f->name, f->sub, f->n_sub);
}

static const Field *field_find(const Field *fields, size_t n, const char *key) {
        for (size_t i = 0; i < n; i++)
                if (streq(fields[i].key, key))
                        return &fields[i];
        return NULL;
}

static int parse_pair(Ctx *x, yaml_node_pair_t *p, const char *where, const Field *fields, size_t n,
                      uint64_t *seen) {
        yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
        const Field *f;
        const char *key;
        size_t i;

        if (k->type != YAML_SCALAR_NODE)
                return error_at(x, k, "keys must be plain names, not %s", node_kind(k));
        key = (const char *) k->data.scalar.value;
        f = field_find(fields, n, key);
        if (!f)
                return error_at(x, k, "unknown key \"%.*s\"%s%s", qlen(key), key, where ? " in " : "",
                                where ?: "");
        i = (size_t) (f - fields);
        if (*seen & (UINT64_C(1) << i))
                return error_at(x, k, "duplicate key \"%s\"", f->name);
        *seen |= UINT64_C(1) << i;
        return f->parse(x, f, v, dest_of(x, f));
}

static int parse_mapping(Ctx *x, yaml_node_t *map, const char *where, const Field *fields, size_t n) {
        uint64_t seen = 0;

        if (node_is_null(map))
                return 0; /* "log:" with nothing under it: all defaults */
        if (map->type != YAML_MAPPING_NODE)
                return error_at(x, map, "%s: expected a mapping, got %s", where ?: "config", node_kind(map));

        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
                if (parse_pair(x, p, where, fields, n, &seen) == -ENOMEM)
                        return -ENOMEM;
        return 0;
}

#define FIELD(k, fn, member, lo, hi) \
        { .key = k, .name = k, .parse = fn, .offset = offsetof(Config, member), .min = lo, .max = hi }
#define SUBFIELD(parent, k, fn, member, lo, hi) \
        { .key = k, .name = parent "." k, .parse = fn, .offset = offsetof(Config, member), .min = lo, .max = hi }
#define SECTION(k, table) \
        { .key = k, .name = k, .parse = field_mapping, .sub = table, .n_sub = ELEMENTSOF(table) }

static const Field rate_fields[] = {
        SUBFIELD("rate_limit", "operations", field_unsigned, rate_operations, 1, 100000),
        SUBFIELD("rate_limit", "window", field_duration, rate_window_usec, SEC, DAY),
};

static const Field delete_fields[] = {
        SUBFIELD("deletes", "enabled", field_bool, deletes.enabled, 0, 0),
        SUBFIELD("deletes", "max_per_run", field_unsigned, deletes.max_per_run, 0, 10000000),
        SUBFIELD("deletes", "max_percent", field_unsigned, deletes.max_percent, 0, 100),
        SUBFIELD("deletes", "include_adopted", field_bool, deletes.include_adopted, 0, 0),
        SUBFIELD("deletes", "allow_empty", field_bool, deletes.allow_empty, 0, 0),
        SUBFIELD("deletes", "protected", field_protected, deletes.protected_ids, 0, 0),
};

static const Field retry_fields[] = {
        SUBFIELD("retry", "base", field_duration, retry.base_usec, USEC_PER_MSEC, HOUR),
        SUBFIELD("retry", "cap", field_duration, retry.cap_usec, USEC_PER_MSEC, 7 * DAY),
        SUBFIELD("retry", "attempts", field_unsigned, retry.attempts, 1, 1000),
        SUBFIELD("retry", "quarantine", field_duration, retry.quarantine_usec, SEC, 30 * DAY),
        SUBFIELD("retry", "failed_retry", field_duration, retry.failed_retry_usec, SEC, 30 * DAY),
        SUBFIELD("retry", "timeout", field_duration, retry.timeout_usec, SEC, 10 * MIN),
};

static const Field verify_fields[] = {
        SUBFIELD("verify", "interval", field_duration, verify_interval_usec, 0, 365 * DAY),
};

static const Field log_fields[] = {
        SUBFIELD("log", "target", field_log_target, log_target, 0, 0),
        SUBFIELD("log", "level", field_log_level, log_level, 0, 0),
};

static const Field top_fields[] = {
        FIELD("tenant_id", field_tenant, tenant_id_str, 0, 0),
        FIELD("client_id", field_guid_string, client_id, 0, 0),
        FIELD("client_secret_file", field_secret_file, client_secret_file, 0, 0),
        FIELD("client_secret_credential", field_secret_credential, client_secret_credential, 0, 0),
        FIELD("client_certificate_file", field_path, client_certificate_file, 0, 0),
        FIELD("client_key_file", field_key_file, client_key_file, 0, 0),
        FIELD("client_key_credential", field_key_credential, client_key_credential, 0, 0),
        FIELD("client_assertion_alg", field_assertion_alg, client_assertion_alg, 0, 0),
        FIELD("cluster", field_cluster, cluster, 0, 0),
        FIELD("api_url", field_api_url, api_base, 0, 0),
        FIELD("token_url", field_token_url, token_url, 0, 0),
        FIELD("scope", field_scope, scope, 0, 0),
        FIELD("ca_file", field_path, ca_file, 0, 0),
        FIELD("roster_dir", field_path, roster_dir, 0, 0),
        FIELD("state_dir", field_path, state_dir, 0, 0),
        FIELD("metrics_file", field_metrics_file, metrics_file, 0, 0),
        FIELD("scan_interval", field_duration, scan_interval_usec, SEC, DAY),
        FIELD("settle_time", field_duration, settle_time_usec, 0, HOUR),
        FIELD("organization_units", field_ous, ous, 0, 0),
        SECTION("rate_limit", rate_fields),
        SECTION("deletes", delete_fields),
        SECTION("retry", retry_fields),
        SECTION("verify", verify_fields),
        SECTION("log", log_fields),
        FIELD("graph_url", field_graph_url, graph_url, 0, 0),
        FIELD("sources", field_later, sources, 0, 0),
        FIELD("source_interval", field_duration, source_interval_usec, SEC, 7 * DAY),
        FIELD("roster_defaults", field_later, roster_defaults, 0, 0),
};

/* ---- whole-config checks and derived values ---------------------------------------------- */

static void set_defaults(Config *c) {
        c->scan_interval_usec = 60 * SEC;
        c->settle_time_usec = 2 * SEC;
        c->rate_operations = 60;
        c->rate_window_usec = 60 * SEC;
        c->deletes.enabled = true;
        c->deletes.max_per_run = 25;
        c->deletes.max_percent = 10;
        c->retry.base_usec = 2 * SEC;
        c->retry.cap_usec = 15 * MIN;
        c->retry.attempts = 8;
        c->retry.quarantine_usec = HOUR;
        c->retry.failed_retry_usec = 6 * HOUR;
        c->retry.timeout_usec = 30 * SEC;
        c->verify_interval_usec = DAY;
        c->log_target = LOG_TARGET_AUTO;
        c->log_level = LOG_INFO;
        c->client_assertion_alg = JWT_ALG_PS256;
        c->source_interval_usec = 5 * MIN;
}

/* The value node of a top-level key (or of key.sub), for pointing at it after parsing. */
static yaml_node_t *lookup(Ctx *x, yaml_node_t *map, const char *key) {
        if (!map || map->type != YAML_MAPPING_NODE)
                return NULL;
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(x->doc, p->key);

                if (k->type == YAML_SCALAR_NODE && streq((const char *) k->data.scalar.value, key))
                        return yaml_document_get_node(x->doc, p->value);
        }
        return NULL;
}

/* Exactly one credential: a client secret, or a certificate together with its private key. */
static void check_credential(Ctx *x) {
        const char *key_name = lookup(x, x->root, "client_key_file") ? "client_key_file" :
                                                                       "client_key_credential";
        yaml_node_t *secret = lookup(x, x->root, "client_secret_file") ?:
                              lookup(x, x->root, "client_secret_credential");
        yaml_node_t *cert = lookup(x, x->root, "client_certificate_file");
        yaml_node_t *key = lookup(x, x->root, key_name);

        if (secret && (cert || key))
                error_at(x, cert ?: key, "%s: set either a client secret or a certificate, not both",
                         cert ? "client_certificate_file" : key_name);
        else if (!secret && !cert && !key)
                error_at(x, x->root, "missing required key: one of \"client_secret_file\", "
                         "\"client_secret_credential\" or \"client_certificate_file\" (with "
                         "\"client_key_file\")");
        else if (cert && !key)
                error_at(x, cert, "client_certificate_file: needs its private key in client_key_file "
                         "(or client_key_credential)");
        else if (key && !cert)
                error_at(x, key, "%s: needs client_certificate_file, the certificate of the key", key_name);
        if (secret && lookup(x, x->root, "client_assertion_alg"))
                error_at(x, lookup(x, x->root, "client_assertion_alg"), "client_assertion_alg: only "
                         "applies to a certificate credential (client_certificate_file)");
}

static void check_required(Ctx *x) {
        Config *c = x->c;

        if (!lookup(x, x->root, "tenant_id"))
                error_at(x, x->root, "missing required key \"tenant_id\"");
        if (!lookup(x, x->root, "client_id"))
                error_at(x, x->root, "missing required key \"client_id\"");
        check_credential(x);
        if (!lookup(x, x->root, "cluster") &&
            (!lookup(x, x->root, "api_url") || !lookup(x, x->root, "scope")))
                error_at(x, x->root, "missing required key \"cluster\" (needed unless both api_url "
                         "and scope are given)");
        /* Compare values only once each parsed cleanly: a bad retry.base would otherwise leave
         * its default in place and add a second, misleading error. */
        if (x->diag->n_errors == x->errors_before && c->retry.cap_usec < c->retry.base_usec) {
                yaml_node_t *retry = lookup(x, x->root, "retry");

                error_at(x, lookup(x, retry, "cap") ?: lookup(x, retry, "base"),
                         "retry.cap: must not be less than retry.base");
        }
}

/* Only called on a config without errors, so cluster is set wherever it is needed. */
static int set_derived(Config *c) {
        if (!c->roster_dir && strdup_checked(DEFAULT_ROSTER_DIR, &c->roster_dir) < 0)
                return -ENOMEM;
        if (!c->state_dir && strdup_checked(DEFAULT_STATE_DIR, &c->state_dir) < 0)
                return -ENOMEM;
        if (!c->api_base &&
            format_into(&c->api_base, "https://admin.%s.luware.cloud%s", c->cluster, API_PATH) < 0)
                return -ENOMEM;
        if (!c->scope && format_into(&c->scope, "https://admin.%s.luware.cloud/.default", c->cluster) < 0)
                return -ENOMEM;
        if (!c->graph_url && strdup_checked(GRAPH_DEFAULT_URL, &c->graph_url) < 0)
                return -ENOMEM;
        if (!c->token_url && format_into(&c->token_url, "https://login.microsoftonline.com/%s/oauth2/v2.0/token",
                                         c->tenant_id_str) < 0)
                return -ENOMEM;
        return 0;
}

/* The absolute directory of the config file. */
static int config_dir(const char *path, char **ret) {
        const char *slash = strrchr(path, '/');
        char cwd[PATH_MAX];
        int n;

        if (slash == path)
                return strdup_checked("/", ret);
        n = slash ? (int) (slash - path) : 0;
        if (path[0] == '/')
                return format_into(ret, "%.*s", n, path);
        if (!getcwd(cwd, sizeof cwd))
                return -errno;
        if (n == 0)
                return strdup_checked(cwd, ret);
        return format_into(ret, "%s/%.*s", streq(cwd, "/") ? "" : cwd, n, path);
}

/* ---- YAML document loading --------------------------------------------------------------- */

static int report_yaml_error(Ctx *x, const yaml_parser_t *p) {
        YamlProblem pr;

        if (yaml_problem(p, x->buf, x->len, &pr) < 0)
                return -ENOMEM;
        return diag_add(x->diag, DIAG_ERROR, x->path, pr.line, pr.col, "%s", pr.text);
}

/* libyaml's scanner takes time quadratic in the nesting of flow collections ("[[[[..."), and
 * yaml_parser_load() reads the whole file before we see any of it: a first pass over the events
 * refuses deep nesting, so a hostile config costs milliseconds, not many minutes. Syntax errors
 * are left to the loader, which reports them. */
static int check_depth(Ctx *x) {
        yaml_parser_t parser;
        yaml_event_t ev;
        unsigned depth = 0;
        int r = 0;

        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *) x->buf, x->len);
        while (r == 0 && yaml_parser_parse(&parser, &ev)) {
                yaml_event_type_t t = ev.type;

                if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT)
                        depth++;
                else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT)
                        depth--;
                if (depth > MAX_DEPTH)
                        r = diag_add(x->diag, DIAG_ERROR, x->path, (unsigned) ev.start_mark.line + 1,
                                     (unsigned) ev.start_mark.column + 1, "YAML nested more than %d "
                                     "levels deep", MAX_DEPTH);
                yaml_event_delete(&ev);
                if (t == YAML_STREAM_END_EVENT)
                        break;
        }
        yaml_parser_delete(&parser);
        return r;
}

static void yaml_parser_deletep(yaml_parser_t *p) {
        yaml_parser_delete(p);
}

/* The document after the first: NULL root when there is none. */
static int load_extra(Ctx *x, yaml_parser_t *parser, yaml_document_t *doc) {
        yaml_document_t extra;
        yaml_node_t *n;
        int r = 0;

        if (!yaml_parser_load(parser, &extra))
                return report_yaml_error(x, parser);
        n = yaml_document_get_root_node(&extra);
        if (n)
                r = diag_add(x->diag, DIAG_ERROR, x->path, (unsigned) n->start_mark.line + 1,
                             (unsigned) n->start_mark.column + 1, "config must be one YAML document");
        yaml_document_delete(&extra);
        return r;
}

/* One document; a second one would be silently ignored by most tools, so it is an error. On
 * failure doc is left deleted. */
static int load_document(Ctx *x, yaml_document_t *doc) {
        /* Zeroed first: deleting a parser that was never initialised is then a no-op. */
        _cleanup_(yaml_parser_deletep) yaml_parser_t parser = { 0 };
        int r;

        r = check_depth(x);
        if (r < 0)
                return r;
        if (!yaml_parser_initialize(&parser)) {
                memset(&parser, 0, sizeof parser);
                return -ENOMEM;
        }
        yaml_parser_set_input_string(&parser, (const unsigned char *) x->buf, x->len);
        if (!yaml_parser_load(&parser, doc))
                return report_yaml_error(x, &parser);
        r = load_extra(x, &parser, doc);
        if (r < 0)
                yaml_document_delete(doc);
        return r;
}

static int parse_document(Ctx *x) {
        int r;

        x->root = yaml_document_get_root_node(x->doc);
        if (x->root) {
                r = parse_mapping(x, x->root, NULL, top_fields, ELEMENTSOF(top_fields));
                if (r >= 0)
                        r = parse_directory_sources(x);
                if (r < 0)
                        return r;
        }
        check_required(x);
        return 0;
}

static void yaml_document_deletep(yaml_document_t **d) {
        if (*d)
                yaml_document_delete(*d);
}

int config_parse(const char *path, const char *buf, size_t len, Config **ret, Diag *diag) {
        _cleanup_(yaml_document_deletep) yaml_document_t *loaded = NULL;
        _cleanup_(config_freep) Config *c = NULL;
        size_t errors = diag->n_errors;
        yaml_document_t doc;
        Ctx x = { .path = path, .buf = buf, .len = len, .diag = diag, .doc = &doc,
                  .errors_before = errors };
        int r;

        r = load_document(&x, &doc);
        if (r < 0)
                return r;
        loaded = &doc;
        r = config_dir(path, &x.dir);
        if (r < 0)
                return r;
        c = x.c = calloc(1, sizeof(Config));
        if (!c || strdup_checked(path, &c->path) < 0) {
                free(x.dir);
                return -ENOMEM;
        }
        set_defaults(c);
        r = parse_document(&x);
        if (r == 0 && diag->n_errors > errors)
                r = -EINVAL;
        if (r == 0)
                r = set_derived(c);
        free(x.dir);
        if (r == 0)
                *ret = TAKE_PTR(c);
        return r;
}

int config_load(const char *path, Config **ret, Diag *diag) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r;

        /* Opened without blocking: a FIFO is refused at once instead of waited on. */
        r = read_file_bounded(path, CONFIG_MAX_SIZE, &buf, &len);
        if (r == -EFBIG)
                diag_add(diag, DIAG_ERROR, path, 0, 0, "config file is larger than %d bytes", CONFIG_MAX_SIZE);
        else if (r == -EBADFD)
                diag_add(diag, DIAG_ERROR, path, 0, 0, "cannot read config: not a regular file");
        else if (r < 0)
                diag_add(diag, DIAG_ERROR, path, 0, 0, "cannot read config: %s", strerror(-r));
        if (r < 0)
                return r;
        return config_parse(path, buf, len, ret, diag);
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        free(c->path);
        free(c->tenant_id_str);
        free(c->client_id);
        free(c->client_secret_file);
        free(c->client_secret_credential);
        free(c->client_certificate_file);
        free(c->client_key_file);
        free(c->client_key_credential);
        free(c->cluster);
        free(c->api_base);
        free(c->token_url);
        free(c->scope);
        free(c->ca_file);
        free(c->metrics_file);
        free(c->roster_dir);
        free(c->state_dir);
        for (size_t i = 0; i < c->n_ous; i++)
                free(c->ous[i].name);
        free(c->ous);
        free(c->deletes.protected_ids);
        free(c->graph_url);
        free(c->sources);
        for (size_t i = 0; i < c->n_roster_defaults; i++)
                free(c->roster_defaults[i].glob);
        free(c->roster_defaults);
        free(c);
        return NULL;
}

/* ---- lookups ----------------------------------------------------------------------------- */

typedef struct NameKey {
        const char *s;
        size_t len;
} NameKey;

static int ou_key_cmp(const void *key, const void *elem) {
        const NameKey *k = key;
        const char *name = ((const OuAlias *) elem)->name;
        int r = strncmp(k->s, name, k->len);

        /* Equal over k->len bytes: the name is longer unless it ends right there. */
        if (r == 0 && name[k->len] != '\0')
                return -1;
        return r;
}

int config_resolve_ou(const Config *c, const char *s, size_t len, Guid *ret) {
        NameKey key = { s, len };
        const OuAlias *a;

        if (guid_parse(s, len, ret) == 0)
                return 0;
        if (!c || c->n_ous == 0 || memchr(s, '\0', len))
                return -ENOENT;
        a = bsearch(&key, c->ous, c->n_ous, sizeof(OuAlias), ou_key_cmp);
        if (!a)
                return -ENOENT;
        *ret = a->id;
        return 0;
}

static int guid_bsearch_cmp(const void *key, const void *elem) {
        return guid_cmp(key, elem);
}

const RosterDefault *config_roster_default(const Config *c, const char *path) {
        const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

        for (size_t i = 0; c && i < c->n_roster_defaults; i++)
                if (fnmatch(c->roster_defaults[i].glob, name, 0) == 0)
                        return &c->roster_defaults[i];
        return NULL;
}

bool config_is_protected(const Config *c, const Guid *id) {
        return c && c->deletes.n_protected > 0 &&
               bsearch(id, c->deletes.protected_ids, c->deletes.n_protected, sizeof(Guid),
                       guid_bsearch_cmp);
}
