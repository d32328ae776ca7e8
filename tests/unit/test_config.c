/* test_config: the configuration file (nimbus-sync.yaml(5)): every key, the defaults, each class
 * of error with its exact file:line:col, the derived URLs and their overrides, relative paths, and the
 * checks of the client secret and of the certificate credential. Also parse_duration() and
 * read_file_bounded(), which config relies on. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "credential.h"
#include "util.h"

#define TENANT "9fce70af-a632-49ca-bc0d-53db5a21c5b3"
#define CLIENT "0b5b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
#define OU_SUPPORT "3f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10"
#define BASE "tenant_id: " TENANT "\nclient_id: " CLIENT "\nclient_secret_file: /etc/nimbus-sync/secret\n"
#define MINIMAL BASE "cluster: ch-01\n" /* four lines */
#define SECRET "Sup3r-S3cret~value.that/never+leaks"

/* ---- helpers ----------------------------------------------------------------------------- */

typedef struct Fixture {
        char dir[512];
        char cwd[PATH_MAX];
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_non_null(f);
        snprintf(f->dir, sizeof f->dir, "%s/test_config.XXXXXX", getenv("TMPDIR") ?: P_tmpdir);
        assert_non_null(mkdtemp(f->dir));
        assert_non_null(getcwd(f->cwd, sizeof f->cwd));
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        unsetenv("CREDENTIALS_DIRECTORY");
        free(f);
        return 0;
}

static void write_file(const char *path, const char *text, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static Config *parse_ok(const char *yaml) {
        Diag d = DIAG_INIT;
        Config *c = NULL;
        int r = config_parse("config.yaml", yaml, strlen(yaml), &c, &d);

        for (size_t i = 0; i < d.n; i++)
                print_error("unexpected: %s:%u:%u: %s\n", d.entries[i].file, d.entries[i].line,
                            d.entries[i].col, d.entries[i].msg);
        assert_int_equal(r, 0);
        assert_int_equal(d.n_errors, 0);
        assert_non_null(c);
        diag_clear(&d);
        return c;
}

static bool diag_has(const Diag *d, const char *expected) {
        for (size_t i = 0; i < d->n; i++) {
                char *s = NULL;
                bool same;

                assert_int_equal(diag_entry_format(&d->entries[i], &s), 0);
                same = streq(s, expected);
                free(s);
                if (same)
                        return true;
        }
        return false;
}

static void print_diag(const Diag *d) {
        for (size_t i = 0; i < d->n; i++) {
                char *s = NULL;

                assert_int_equal(diag_entry_format(&d->entries[i], &s), 0);
                print_error("  got: %s\n", s);
                free(s);
        }
}

/* The config must be refused, and one diagnostic must read exactly `expected`. */
static void expect_error(const char *yaml, const char *expected) {
        Diag d = DIAG_INIT;
        Config *c = NULL;
        int r = config_parse("config.yaml", yaml, strlen(yaml), &c, &d);

        assert_int_equal(r, -EINVAL);
        assert_null(c);
        assert_true(d.n_errors >= 1);
        if (!diag_has(&d, expected)) {
                print_error("expected: %s\n", expected);
                print_diag(&d);
                fail();
        }
        diag_clear(&d);
}

/* One error at line:col whose message contains `part` (for messages partly written by a library). */
static void expect_error_containing(const char *yaml, unsigned line, unsigned col, const char *part) {
        Diag d = DIAG_INIT;
        Config *c = NULL;

        assert_int_equal(config_parse("config.yaml", yaml, strlen(yaml), &c, &d), -EINVAL);
        assert_null(c);
        assert_int_equal(d.n_errors, 1);
        assert_int_equal(d.entries[0].line, line);
        assert_int_equal(d.entries[0].col, col);
        assert_non_null(strstr(d.entries[0].msg, part));
        diag_clear(&d);
}

/* ---- parse_duration and read_file_bounded ------------------------------------------------ */

/* Cutting text to a byte limit never leaves half a UTF-8 sequence behind. */
static void test_utf8_prefix(void **state) {
        const char *s = "a\xc3\xa9\xe2\x82\xac";   /* "a", e-acute (2 bytes), euro sign (3 bytes) */

        assert_int_equal(utf8_prefix(s, 6, 10), 6);     /* fits whole */
        assert_int_equal(utf8_prefix(s, 6, 6), 6);
        assert_int_equal(utf8_prefix(s, 6, 5), 3);      /* would split the euro sign */
        assert_int_equal(utf8_prefix(s, 6, 4), 3);
        assert_int_equal(utf8_prefix(s, 6, 3), 3);      /* "a" + e-acute */
        assert_int_equal(utf8_prefix(s, 6, 2), 1);      /* would split e-acute */
        assert_int_equal(utf8_prefix(s, 6, 0), 0);
        assert_int_equal(utf8_prefix("abc", 3, 2), 2);  /* ASCII cuts anywhere */
}

static void test_parse_duration(void **state) {
        static const struct {
                const char *s;
                uint64_t usec;
        } good[] = {
                { "500ms", 500 * USEC_PER_MSEC },    { "2s", 2 * USEC_PER_SEC },
                { "5m", 300 * USEC_PER_SEC },        { "24h", 86400 * USEC_PER_SEC },
                { "1d", 86400 * USEC_PER_SEC },      { "90", 90 * USEC_PER_SEC },
                { "1.5", 1500 * USEC_PER_MSEC },     { "0", 0 },
                { "0.25h", 900 * USEC_PER_SEC },     { "1.5ms", 1500 },
                { "0.0000001s", 0 },                 { "007s", 7 * USEC_PER_SEC },
        };
        static const char *const bad[] = {
                "", "s", "ms", "-1", "+1", " 1", "1 ", "1x", "1sec", "1.", ".5", "1..5", "1S", "2ss", "1e3",
        };
        uint64_t v;

        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
                v = 12345;
                if (parse_duration(good[i].s, &v) != 0 || v != good[i].usec)
                        fail_msg("\"%s\" gave %llu", good[i].s, (unsigned long long) v);
        }
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                if (parse_duration(bad[i], &v) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i]);

        assert_int_equal(parse_duration("18446744073709551615", &v), -ERANGE);
        assert_int_equal(parse_duration("99999999999999999999999", &v), -ERANGE);
        assert_int_equal(parse_duration("213503982336d", &v), -ERANGE);
        assert_int_equal(parse_duration("18446744073709ms", &v), 0);
        assert_int_equal(v, UINT64_C(18446744073709) * 1000);
}

static void test_read_file_bounded(void **state) {
        Fixture *f = *state;
        char path[PATH_MAX], *buf = NULL;
        size_t len = 0;

        snprintf(path, sizeof path, "%s/ten", f->dir);
        write_file(path, "0123456789", 0600);
        assert_int_equal(read_file_bounded(path, 10, &buf, &len), 0);
        assert_int_equal(len, 10);
        assert_string_equal(buf, "0123456789");
        free(buf);
        buf = NULL;
        assert_int_equal(read_file_bounded(path, 9, &buf, &len), -EFBIG);
        assert_null(buf);
        assert_int_equal(read_file_bounded(f->dir, 100, &buf, &len), -EISDIR);
        snprintf(path, sizeof path, "%s/missing", f->dir);
        assert_int_equal(read_file_bounded(path, 100, &buf, &len), -ENOENT);
        assert_int_equal(read_file_bounded("/dev/null", 100, &buf, &len), -EBADFD);

        snprintf(path, sizeof path, "%s/empty", f->dir);
        write_file(path, "", 0600);
        assert_int_equal(read_file_bounded(path, 0, &buf, &len), 0);
        assert_int_equal(len, 0);
        assert_string_equal(buf, "");
        free(buf);
}

/* ---- valid configs ----------------------------------------------------------------------- */

static void test_defaults(void **state) {
        Config *c = parse_ok(MINIMAL);
        char cwd[PATH_MAX];

        assert_string_equal(c->path, "config.yaml");
        assert_string_equal(c->tenant_id_str, TENANT);
        assert_string_equal(c->client_id, CLIENT);
        assert_string_equal(c->client_secret_file, "/etc/nimbus-sync/secret");
        assert_null(c->client_secret_credential);
        assert_string_equal(c->cluster, "ch-01");
        assert_string_equal(c->api_base, "https://admin.ch-01.luware.cloud/api/public-api-next/");
        assert_string_equal(c->scope, "https://admin.ch-01.luware.cloud/.default");
        assert_string_equal(c->token_url, "https://login.microsoftonline.com/" TENANT "/oauth2/v2.0/token");
        assert_null(c->ca_file);
        assert_string_equal(c->roster_dir, "/var/lib/nimbus-sync/roster.d");
        assert_string_equal(c->state_dir, "/var/lib/nimbus-sync");
        assert_int_equal(c->scan_interval_usec, 60 * USEC_PER_SEC);
        assert_int_equal(c->settle_time_usec, 2 * USEC_PER_SEC);
        assert_int_equal(c->n_ous, 0);
        assert_int_equal(c->rate_operations, 60);
        assert_int_equal(c->rate_window_usec, 60 * USEC_PER_SEC);
        assert_true(c->deletes.enabled);
        assert_int_equal(c->deletes.max_per_run, 25);
        assert_int_equal(c->deletes.max_percent, 10);
        assert_false(c->deletes.include_adopted);
        assert_false(c->deletes.allow_empty);
        assert_int_equal(c->deletes.n_protected, 0);
        assert_int_equal(c->retry.base_usec, 2 * USEC_PER_SEC);
        assert_int_equal(c->retry.cap_usec, 15 * 60 * USEC_PER_SEC);
        assert_int_equal(c->retry.attempts, 8);
        assert_int_equal(c->retry.quarantine_usec, 3600 * USEC_PER_SEC);
        assert_int_equal(c->retry.failed_retry_usec, 6 * 3600 * USEC_PER_SEC);
        assert_int_equal(c->retry.timeout_usec, 30 * USEC_PER_SEC);
        assert_int_equal(c->verify_interval_usec, 24 * 3600 * USEC_PER_SEC);
        assert_int_equal(c->log_target, LOG_TARGET_AUTO);
        assert_int_equal(c->log_level, LOG_INFO);
        config_free(c);

        /* With no directory in the path, relative paths are taken from the working directory. */
        c = parse_ok("tenant_id: " TENANT "\nclient_id: " CLIENT "\nclient_secret_file: s\ncluster: ch-01\n");
        assert_non_null(getcwd(cwd, sizeof cwd));
        assert_int_equal(strncmp(c->client_secret_file, cwd, strlen(cwd)), 0);
        assert_string_equal(c->client_secret_file + strlen(cwd), streq(cwd, "/") ? "s" : "/s");
        config_free(c);
}

static const char full_config[] =
        "# every key\n"
        "tenant_id: 9FCE70AF-A632-49CA-BC0D-53DB5A21C5B3\n"
        "client_id: \"{0B5B1C2D-3E4F-4A5B-8C6D-7E8F9A0B1C2D}\"\n"
        "client_secret_file: secrets/client-secret\n"
        "cluster: dewe-02\n"
        "ca_file: ./ca/extra.pem\n"
        "roster_dir: roster.d\n"
        "state_dir: /srv/nimbus/state\n"
        "scan_interval: 5m\n"
        "settle_time: 500ms\n"
        "organization_units:\n"
        "  support: " OU_SUPPORT "\n"
        "  sales.emea-2_x: 4f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10\n"
        "  Alpha: 5f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10\n"
        "rate_limit: {operations: 120, window: 90}\n"
        "deletes:\n"
        "  enabled: false\n"
        "  max_per_run: 3\n"
        "  max_percent: 50\n"
        "  include_adopted: yes\n"
        "  allow_empty: true\n"
        "  protected:\n"
        "    - 6f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10\n"
        "    - 6F2A7C4E-0C1D-4A8B-9E61-2D5F8B7A9C10\n"
        "    - \"{1f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10}\"\n"
        "retry: {base: 1s, cap: 10m, attempts: 5, quarantine: 2h, failed_retry: 1d, timeout: 1.5}\n"
        "verify: {interval: 0}\n"
        "log: {target: journal, level: debug}\n";

static void test_full_config(void **state) {
        Fixture *f = *state;
        char path[PATH_MAX], expect[3 * PATH_MAX];
        Diag d = DIAG_INIT;
        Config *c = NULL;
        Guid g, p;

        snprintf(path, sizeof path, "%s/config.yaml", f->dir);
        write_file(path, full_config, 0644);
        assert_int_equal(config_load(path, &c, &d), 0);
        assert_int_equal(d.n, 0);

        assert_string_equal(c->path, path);
        assert_string_equal(c->tenant_id_str, TENANT);
        assert_int_equal(guid_parse(TENANT, 36, &g), 0);
        assert_true(guid_eq(&c->tenant_id, &g));
        assert_string_equal(c->client_id, CLIENT);
        snprintf(expect, sizeof expect, "%s/secrets/client-secret", f->dir);
        assert_string_equal(c->client_secret_file, expect);
        assert_string_equal(c->cluster, "dewe-02");
        assert_string_equal(c->api_base, "https://admin.dewe-02.luware.cloud/api/public-api-next/");
        assert_string_equal(c->scope, "https://admin.dewe-02.luware.cloud/.default");
        assert_string_equal(c->token_url, "https://login.microsoftonline.com/" TENANT "/oauth2/v2.0/token");
        snprintf(expect, sizeof expect, "%s/ca/extra.pem", f->dir);
        assert_string_equal(c->ca_file, expect);
        snprintf(expect, sizeof expect, "%s/roster.d", f->dir);
        assert_string_equal(c->roster_dir, expect);
        assert_string_equal(c->state_dir, "/srv/nimbus/state");
        assert_int_equal(c->scan_interval_usec, 300 * USEC_PER_SEC);
        assert_int_equal(c->settle_time_usec, 500 * USEC_PER_MSEC);

        assert_int_equal(c->n_ous, 3);
        assert_int_equal(config_resolve_ou(c, "support", 7, &g), 0);
        assert_int_equal(guid_parse(OU_SUPPORT, 36, &p), 0);
        assert_true(guid_eq(&g, &p));
        assert_int_equal(config_resolve_ou(c, "sales.emea-2_x", 14, &g), 0);
        assert_int_equal(config_resolve_ou(c, "Alpha", 5, &g), 0);
        assert_int_equal(guid_parse("5f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10", 36, &p), 0);
        assert_true(guid_eq(&g, &p));

        assert_int_equal(c->rate_operations, 120);
        assert_int_equal(c->rate_window_usec, 90 * USEC_PER_SEC);
        assert_false(c->deletes.enabled);
        assert_int_equal(c->deletes.max_per_run, 3);
        assert_int_equal(c->deletes.max_percent, 50);
        assert_true(c->deletes.include_adopted);
        assert_true(c->deletes.allow_empty);
        assert_int_equal(c->deletes.n_protected, 2); /* the same id twice counts once */
        assert_int_equal(guid_parse("6f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10", 36, &p), 0);
        assert_true(config_is_protected(c, &p));
        assert_int_equal(guid_parse("1f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10", 36, &p), 0);
        assert_true(config_is_protected(c, &p));
        assert_int_equal(guid_parse("2f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10", 36, &p), 0);
        assert_false(config_is_protected(c, &p));

        assert_int_equal(c->retry.base_usec, USEC_PER_SEC);
        assert_int_equal(c->retry.cap_usec, 600 * USEC_PER_SEC);
        assert_int_equal(c->retry.attempts, 5);
        assert_int_equal(c->retry.quarantine_usec, 7200 * USEC_PER_SEC);
        assert_int_equal(c->retry.failed_retry_usec, 86400 * USEC_PER_SEC);
        assert_int_equal(c->retry.timeout_usec, 1500 * USEC_PER_MSEC);
        assert_int_equal(c->verify_interval_usec, 0);
        assert_int_equal(c->log_target, LOG_TARGET_JOURNAL);
        assert_int_equal(c->log_level, LOG_DEBUG);
        config_free(c);
}

/* metrics_file: none by default; a *.prom path (relative to the config, as every path); any
 * other name is refused, since node_exporter would never read it. */
static void test_metrics_file(void **state) {
        Config *c = parse_ok(MINIMAL);

        assert_null(c->metrics_file);
        config_free(c);
        c = parse_ok(MINIMAL "metrics_file: /var/lib/prometheus/node-exporter/nimbus_sync.prom\n");
        assert_string_equal(c->metrics_file, "/var/lib/prometheus/node-exporter/nimbus_sync.prom");
        config_free(c);
        expect_error(MINIMAL "metrics_file: /var/lib/prometheus/node-exporter/nimbus_sync.txt\n",
                     "config.yaml:5:15: error: metrics_file: \"/var/lib/prometheus/node-exporter/nimbus_sync.txt\" "
                     "must end in .prom (node_exporter's textfile collector reads only those)");
        expect_error(MINIMAL "metrics_file: /var/lib/prometheus/.prom\n",
                     "config.yaml:5:15: error: metrics_file: \"/var/lib/prometheus/.prom\" must end in .prom "
                     "(node_exporter's textfile collector reads only those)");
        expect_error(MINIMAL "metrics_file:\n",
                     "config.yaml:5:14: error: metrics_file: expected a path, got an empty value");
}

static void test_relative_config_path(void **state) {
        Fixture *f = *state;
        char expect[3 * PATH_MAX];
        Config *c = NULL;
        Diag d = DIAG_INIT;
        const char *yaml = BASE "cluster: ch-01\nstate_dir: state\nroster_dir: ../rosters\n";

        /* "etc/config.yaml" seen from the fixture directory. */
        assert_int_equal(chdir(f->dir), 0);
        assert_int_equal(config_parse("etc/config.yaml", yaml, strlen(yaml), &c, &d), 0);
        assert_int_equal(chdir(f->cwd), 0);
        snprintf(expect, sizeof expect, "%s/etc/state", f->dir);
        assert_string_equal(c->state_dir, expect);
        snprintf(expect, sizeof expect, "%s/etc/../rosters", f->dir);
        assert_string_equal(c->roster_dir, expect);
        config_free(c);
}

static void test_log_levels_and_targets(void **state) {
        static const struct {
                const char *name;
                int level;
        } levels[] = {
                { "emerg", LOG_EMERG }, { "alert", LOG_ALERT },   { "crit", LOG_CRIT },
                { "err", LOG_ERR },     { "error", LOG_ERR },     { "warning", LOG_WARNING },
                { "warn", LOG_WARNING }, { "notice", LOG_NOTICE }, { "info", LOG_INFO },
                { "debug", LOG_DEBUG },
        };
        char yaml[512];
        Config *c;

        for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
                snprintf(yaml, sizeof yaml, MINIMAL "log:\n  level: %s\n  target: stderr\n", levels[i].name);
                c = parse_ok(yaml);
                assert_int_equal(c->log_level, levels[i].level);
                assert_int_equal(c->log_target, LOG_TARGET_STDERR);
                config_free(c);
        }
        /* Empty sections are all defaults. */
        c = parse_ok(MINIMAL "log:\ndeletes:\norganization_units:\n");
        assert_int_equal(c->log_level, LOG_INFO);
        assert_true(c->deletes.enabled);
        config_free(c);
}

static void test_clusters(void **state) {
        static const char *const clusters[] = {
                "ch-01", "ch-02", "dewe-01", "dewe-02", "ukso-01", "aue-01", "euwe-01", "use-01",
        };
        char yaml[512], url[128];

        for (size_t i = 0; i < sizeof clusters / sizeof clusters[0]; i++) {
                Config *c;

                snprintf(yaml, sizeof yaml, BASE "cluster: %s\n", clusters[i]);
                c = parse_ok(yaml);
                snprintf(url, sizeof url, "https://admin.%s.luware.cloud/api/public-api-next/", clusters[i]);
                assert_string_equal(c->api_base, url);
                snprintf(url, sizeof url, "https://admin.%s.luware.cloud/.default", clusters[i]);
                assert_string_equal(c->scope, url);
                config_free(c);
        }
        expect_error(BASE "cluster: ch-03\n",
                     "config.yaml:4:10: error: cluster: unknown cluster \"ch-03\" (expected one of: ch-01 "
                     "ch-02 dewe-01 dewe-02 ukso-01 aue-01 euwe-01 use-01)");
}

static void test_overrides(void **state) {
        Config *c;

        /* api_url and scope replace cluster entirely. */
        c = parse_ok(BASE "api_url: https://portal.ch-01.luware.cloud\n"
                     "scope: https://portal.ch-01.luware.cloud/.default\n"
                     "token_url: https://login.example.net/tenant/token?x=1\n");
        assert_null(c->cluster);
        assert_string_equal(c->api_base, "https://portal.ch-01.luware.cloud/api/public-api-next/");
        assert_string_equal(c->scope, "https://portal.ch-01.luware.cloud/.default");
        assert_string_equal(c->token_url, "https://login.example.net/tenant/token?x=1");
        config_free(c);

        /* With a cluster, each override replaces only its own value. */
        c = parse_ok(MINIMAL "api_url: https://proxy.example.com:8443\n");
        assert_string_equal(c->api_base, "https://proxy.example.com:8443/api/public-api-next/");
        assert_string_equal(c->scope, "https://admin.ch-01.luware.cloud/.default");
        config_free(c);

        c = parse_ok(MINIMAL "scope: api://nimbus/.default\n");
        assert_string_equal(c->api_base, "https://admin.ch-01.luware.cloud/api/public-api-next/");
        assert_string_equal(c->scope, "api://nimbus/.default");
        config_free(c);
}

static void test_http_only_on_loopback(void **state) {
        static const char *const loopback[] = {
                "http://127.0.0.1:8080", "http://127.12.0.3", "http://localhost:9000", "http://LOCALHOST",
                "http://[::1]:8443", "http://admin.localhost:8080", "http://portal.LOCALHOST",
        };
        static const char *const not_loopback[] = {
                "http://example.com", "http://10.0.0.1:8080", "http://128.0.0.1", "http://[::2]",
                "http://localhost.example.com", "http://xlocalhost", "http://localhost.",
        };
        char yaml[512], expect[3 * PATH_MAX];

        for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
                Config *c;

                snprintf(yaml, sizeof yaml, MINIMAL "api_url: %s\ntoken_url: %s/token\n", loopback[i],
                         loopback[i]);
                c = parse_ok(yaml);
                assert_non_null(strstr(c->api_base, "/api/public-api-next/"));
                assert_int_equal(strncmp(c->api_base, "http://", 7), 0);
                assert_int_equal(strncmp(c->token_url, "http://", 7), 0);
                config_free(c);
        }
        for (size_t i = 0; i < sizeof not_loopback / sizeof not_loopback[0]; i++) {
                snprintf(yaml, sizeof yaml, MINIMAL "api_url: %s\n", not_loopback[i]);
                expect_error(yaml, "config.yaml:5:10: error: api_url: plain http:// is accepted only for "
                             "loopback hosts");
                snprintf(yaml, sizeof yaml, MINIMAL "token_url: %s/token\n", not_loopback[i]);
                snprintf(expect, sizeof expect, "config.yaml:5:12: error: token_url: plain http:// is "
                         "accepted only for loopback hosts");
                expect_error(yaml, expect);
        }
}

static void test_bad_urls(void **state) {
        static const char path_msg[] =
                "config.yaml:5:10: error: api_url: api_url takes scheme and host only; "
                "/api/public-api-next/ is appended";

        expect_error(MINIMAL "api_url: https://admin.ch-01.luware.cloud/\n", path_msg);
        expect_error(MINIMAL "api_url: https://admin.ch-01.luware.cloud/api/public-api-next/\n", path_msg);
        expect_error(MINIMAL "api_url: https://admin.ch-01.luware.cloud/x\n", path_msg);
        expect_error(MINIMAL "api_url: https://admin.ch-01.luware.cloud?q=1\n", path_msg);
        expect_error(MINIMAL "api_url: ftp://example.com\n",
                     "config.yaml:5:10: error: api_url: URL must start with https://");
        expect_error(MINIMAL "api_url: https://user:pw@example.com\n",
                     "config.yaml:5:10: error: api_url: URL must not contain a user name or password");
        expect_error(MINIMAL "token_url: https://example.com/token#frag\n",
                     "config.yaml:5:12: error: token_url: URL must not contain a #fragment");
        expect_error(MINIMAL "scope: \"a\\tb\"\n",
                     "config.yaml:5:8: error: scope: scope may contain only printable ASCII");

        /* Not a URL at all: the message is curl's. */
        expect_error_containing(MINIMAL "api_url: admin.ch-01.luware.cloud\n", 5, 10,
                                "api_url: invalid URL \"admin.ch-01.luware.cloud\"");
}

/* ---- errors ------------------------------------------------------------------------------ */

static void test_unknown_keys(void **state) {
        expect_error(MINIMAL "rate_limt: {operations: 5}\n",
                     "config.yaml:5:1: error: unknown key \"rate_limt\"");
        expect_error(MINIMAL "rate_limit:\n  operatons: 5\n",
                     "config.yaml:6:3: error: unknown key \"operatons\" in rate_limit");
        expect_error(MINIMAL "deletes:\n  enabled: true\n  protect: []\n",
                     "config.yaml:7:3: error: unknown key \"protect\" in deletes");
        expect_error(MINIMAL "? [a, b]\n: c\n", "config.yaml:5:3: error: keys must be plain names, not a list");
}

static void test_wrong_types(void **state) {
        expect_error(BASE "cluster:\n  name: ch-01\n",
                     "config.yaml:5:3: error: cluster: expected a cluster name, got a mapping");
        expect_error(MINIMAL "scan_interval: [1s]\n",
                     "config.yaml:5:16: error: scan_interval: expected a duration, got a list");
        expect_error(MINIMAL "rate_limit: 60\n",
                     "config.yaml:5:13: error: rate_limit: expected a mapping, got a scalar");
        expect_error(MINIMAL "rate_limit: {operations: ten}\n",
                     "config.yaml:5:26: error: rate_limit.operations: expected an integer, got \"ten\"");
        expect_error(MINIMAL "rate_limit: {operations: 1.5}\n",
                     "config.yaml:5:26: error: rate_limit.operations: expected an integer, got \"1.5\"");
        expect_error(MINIMAL "rate_limit: {operations: \"60\"}\n",
                     "config.yaml:5:26: error: rate_limit.operations: expected an integer, got a quoted string");
        expect_error(MINIMAL "deletes:\n  enabled: maybe\n",
                     "config.yaml:6:12: error: deletes.enabled: expected true or false, got \"maybe\"");
        expect_error(MINIMAL "deletes:\n  allow_empty: 1\n",
                     "config.yaml:6:16: error: deletes.allow_empty: expected true or false, got \"1\"");
        expect_error(MINIMAL "deletes:\n  protected: " OU_SUPPORT "\n",
                     "config.yaml:6:14: error: deletes.protected: expected a list of GUIDs, got a scalar");
        expect_error(MINIMAL "organization_units: [a]\n",
                     "config.yaml:5:21: error: organization_units: expected a mapping of name: GUID, got a list");
        expect_error(MINIMAL "roster_dir:\n",
                     "config.yaml:5:12: error: roster_dir: expected a path, got an empty value");
        expect_error(MINIMAL "roster_dir: \"\"\n",
                     "config.yaml:5:13: error: roster_dir: expected a path, got an empty value");
        expect_error(MINIMAL "state_dir: \"a\\0b\"\n",
                     "config.yaml:5:12: error: state_dir: value contains a NUL byte");
        expect_error("- tenant_id: " TENANT "\n",
                     "config.yaml:1:1: error: config: expected a mapping, got a list");
}

static void test_bad_values(void **state) {
        expect_error("tenant_id: 9fce70af-a632-49ca-bc0d-53db5a21c5b\nclient_id: " CLIENT
                     "\nclient_secret_file: /s\ncluster: ch-01\n",
                     "config.yaml:1:12: error: tenant_id: invalid GUID \"9fce70af-a632-49ca-bc0d-53db5a21c5b\"");
        expect_error("tenant_id: " TENANT "\nclient_id: contoso\nclient_secret_file: /s\ncluster: ch-01\n",
                     "config.yaml:2:12: error: client_id: invalid GUID \"contoso\"");
        expect_error(MINIMAL "scan_interval: 5x\n",
                     "config.yaml:5:16: error: scan_interval: invalid duration \"5x\" (use e.g. 500ms, 2s, 5m, "
                     "24h, 1d)");
        expect_error(MINIMAL "settle_time: -2s\n",
                     "config.yaml:5:14: error: settle_time: invalid duration \"-2s\" (use e.g. 500ms, 2s, 5m, "
                     "24h, 1d)");
        expect_error(MINIMAL "log: {target: syslog}\n",
                     "config.yaml:5:15: error: log.target: unknown value \"syslog\" (expected one of: auto "
                     "journal stderr)");
        expect_error(MINIMAL "log: {level: verbose}\n",
                     "config.yaml:5:14: error: log.level: unknown value \"verbose\" (expected one of: emerg "
                     "alert crit err warning notice info debug)");
        expect_error(MINIMAL "deletes:\n  protected:\n    - " OU_SUPPORT "\n    - nope\n",
                     "config.yaml:8:7: error: deletes.protected: invalid GUID \"nope\"");
        /* The shipped example's ids, left unedited. */
        expect_error("tenant_id: 00000000-0000-0000-0000-000000000000\nclient_id: " CLIENT
                     "\nclient_secret_file: /s\ncluster: ch-01\n",
                     "config.yaml:1:12: error: tenant_id: 00000000-0000-0000-0000-000000000000 is still the "
                     "example's placeholder; set your Entra tenant id");
        expect_error("tenant_id: " TENANT "\nclient_id: '{00000000-0000-0000-0000-000000000000}'\n"
                     "client_secret_file: /s\ncluster: ch-01\n",
                     "config.yaml:2:12: error: client_id: {00000000-0000-0000-0000-000000000000} is still the "
                     "example's placeholder; set the app registration's client id");
        expect_error(MINIMAL "client_secret_credential: ../x\n",
                     "config.yaml:5:27: error: client_secret_credential: set only one of client_secret_file "
                     "and client_secret_credential");
}

static void test_number_ranges(void **state) {
        expect_error(MINIMAL "rate_limit: {operations: 0}\n",
                     "config.yaml:5:26: error: rate_limit.operations: 0 is out of range (1..100000)");
        expect_error(MINIMAL "rate_limit: {operations: 100001}\n",
                     "config.yaml:5:26: error: rate_limit.operations: 100001 is out of range (1..100000)");
        expect_error(MINIMAL "rate_limit: {operations: -5}\n",
                     "config.yaml:5:26: error: rate_limit.operations: -5 is out of range (1..100000)");
        expect_error(MINIMAL "rate_limit: {operations: 99999999999999999999999}\n",
                     "config.yaml:5:26: error: rate_limit.operations: 99999999999999999999999 is out of range "
                     "(1..100000)");
        expect_error(MINIMAL "rate_limit: {window: 0}\n",
                     "config.yaml:5:22: error: rate_limit.window: 0 is out of range (1s..1d)");
        expect_error(MINIMAL "deletes: {max_percent: 101}\n",
                     "config.yaml:5:24: error: deletes.max_percent: 101 is out of range (0..100)");
        expect_error(MINIMAL "deletes: {max_per_run: 10000001}\n",
                     "config.yaml:5:24: error: deletes.max_per_run: 10000001 is out of range (0..10000000)");
        expect_error(MINIMAL "retry: {attempts: 0}\n",
                     "config.yaml:5:19: error: retry.attempts: 0 is out of range (1..1000)");
        expect_error(MINIMAL "retry: {timeout: 1h}\n",
                     "config.yaml:5:18: error: retry.timeout: 1h is out of range (1s..10m)");
        expect_error(MINIMAL "scan_interval: 99999999999999999999d\n",
                     "config.yaml:5:16: error: scan_interval: 99999999999999999999d is out of range (1s..1d)");
        expect_error(MINIMAL "retry: {base: 10m, cap: 5m}\n",
                     "config.yaml:5:25: error: retry.cap: must not be less than retry.base");
        expect_error(MINIMAL "retry: {base: 1h}\n",
                     "config.yaml:5:15: error: retry.cap: must not be less than retry.base");

        /* The bounds themselves are accepted. */
        Config *c = parse_ok(MINIMAL "rate_limit: {operations: 100000}\ndeletes: {max_percent: 0, max_per_run: 0}\n");
        assert_int_equal(c->rate_operations, 100000);
        assert_int_equal(c->deletes.max_percent, 0);
        assert_int_equal(c->deletes.max_per_run, 0);
        config_free(c);
}

static void test_missing_required(void **state) {
        expect_error("client_id: " CLIENT "\nclient_secret_file: /s\ncluster: ch-01\n",
                     "config.yaml:1:1: error: missing required key \"tenant_id\"");
        expect_error("tenant_id: " TENANT "\nclient_secret_file: /s\ncluster: ch-01\n",
                     "config.yaml:1:1: error: missing required key \"client_id\"");
        expect_error("tenant_id: " TENANT "\nclient_id: " CLIENT "\ncluster: ch-01\n",
                     "config.yaml:1:1: error: missing required key: one of \"client_secret_file\", "
                     "\"client_secret_credential\" or \"client_certificate_file\" (with \"client_key_file\")");
        expect_error(BASE,
                     "config.yaml:1:1: error: missing required key \"cluster\" (needed unless both api_url and "
                     "scope are given)");
        expect_error(BASE "api_url: https://x.example\n",
                     "config.yaml:1:1: error: missing required key \"cluster\" (needed unless both api_url and "
                     "scope are given)");
        expect_error(BASE "scope: x/.default\n",
                     "config.yaml:1:1: error: missing required key \"cluster\" (needed unless both api_url and "
                     "scope are given)");
        expect_error("", "config.yaml:1:1: error: missing required key \"tenant_id\"");
        expect_error("# only a comment\n", "config.yaml:1:1: error: missing required key \"client_id\"");
}

static void test_duplicates(void **state) {
        expect_error(MINIMAL "cluster: ch-02\n", "config.yaml:5:1: error: duplicate key \"cluster\"");
        expect_error(MINIMAL "log:\n  level: info\n  level: debug\n",
                     "config.yaml:7:3: error: duplicate key \"log.level\"");
        expect_error(MINIMAL "organization_units:\n  a: " OU_SUPPORT "\n  a: " OU_SUPPORT "\n",
                     "config.yaml:7:3: error: organization_units: duplicate name \"a\"");
}

static void test_ou_names(void **state) {
        expect_error(MINIMAL "organization_units:\n  \"two words\": " OU_SUPPORT "\n",
                     "config.yaml:6:3: error: organization_units: invalid name \"two words\" (1-64 characters "
                     "of A-Z a-z 0-9 . _ -, not a GUID)");
        expect_error(MINIMAL "organization_units:\n  " OU_SUPPORT ": " OU_SUPPORT "\n",
                     "config.yaml:6:3: error: organization_units: invalid name \"" OU_SUPPORT "\" (1-64 "
                     "characters of A-Z a-z 0-9 . _ -, not a GUID)");
        expect_error(MINIMAL "organization_units:\n  "
                     "a234567890123456789012345678901234567890123456789012345678901234x: " OU_SUPPORT "\n",
                     "config.yaml:6:3: error: organization_units: invalid name "
                     "\"a234567890123456789012345678901234567890123456789012345678901234x\" (1-64 characters "
                     "of A-Z a-z 0-9 . _ -, not a GUID)");
        expect_error(MINIMAL "organization_units:\n  support: 12\n",
                     "config.yaml:6:12: error: organization_units.support: invalid GUID \"12\"");
}

static void test_resolve_ou(void **state) {
        Config *c = parse_ok(MINIMAL "organization_units:\n  support: " OU_SUPPORT "\n  sales: "
                             "4f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10\n");
        Guid g, want;

        assert_int_equal(guid_parse(OU_SUPPORT, 36, &want), 0);
        assert_int_equal(config_resolve_ou(c, "support", 7, &g), 0);
        assert_true(guid_eq(&g, &want));
        /* Only len bytes count: "supportX" cut to 7 is "support". */
        assert_int_equal(config_resolve_ou(c, "supportX", 7, &g), 0);
        assert_int_equal(config_resolve_ou(c, "{3F2A7C4E-0C1D-4A8B-9E61-2D5F8B7A9C10}", 38, &g), 0);
        assert_true(guid_eq(&g, &want));
        assert_int_equal(config_resolve_ou(c, "Support", 7, &g), -ENOENT);
        assert_int_equal(config_resolve_ou(c, "supp", 4, &g), -ENOENT);
        assert_int_equal(config_resolve_ou(c, "supports", 8, &g), -ENOENT);
        assert_int_equal(config_resolve_ou(c, "", 0, &g), -ENOENT);
        assert_int_equal(config_resolve_ou(NULL, "support", 7, &g), -ENOENT);
        assert_int_equal(config_resolve_ou(NULL, OU_SUPPORT, 36, &g), 0);
        config_free(c);
}

static void test_yaml_syntax(void **state) {
        expect_error(BASE "cluster: ch-01: x\n",
                     "config.yaml:4:15: error: YAML syntax: mapping values are not allowed in this context");
        expect_error(MINIMAL "---\ncluster: ch-02\n",
                     "config.yaml:6:1: error: config must be one YAML document");

        /* Invalid UTF-8 is reported where it is. */
        expect_error_containing(MINIMAL "scope: ab\xff\n", 5, 10, "YAML syntax");
}

static void test_several_errors_at_once(void **state) {
        Diag d = DIAG_INIT;
        Config *c = NULL;
        const char *yaml = MINIMAL "rate_limt: 1\nlog: {level: loud}\nverify: {interval: soon}\n";

        assert_int_equal(config_parse("config.yaml", yaml, strlen(yaml), &c, &d), -EINVAL);
        assert_null(c);
        assert_int_equal(d.n_errors, 3);
        assert_int_equal(d.entries[0].line, 5);
        assert_int_equal(d.entries[1].line, 6);
        assert_int_equal(d.entries[2].line, 7);
        diag_clear(&d);
}

static void test_config_load_errors(void **state) {
        Fixture *f = *state;
        char path[PATH_MAX], expect[3 * PATH_MAX];
        char *big;
        Diag d = DIAG_INIT;
        Config *c = NULL;

        snprintf(path, sizeof path, "%s/none.yaml", f->dir);
        assert_int_equal(config_load(path, &c, &d), -ENOENT);
        snprintf(expect, sizeof expect, "%s: error: cannot read config: No such file or directory", path);
        assert_true(diag_has(&d, expect));
        diag_clear(&d);

        big = malloc(CONFIG_MAX_SIZE + 2);
        assert_non_null(big);
        memset(big, '#', CONFIG_MAX_SIZE + 1);
        big[CONFIG_MAX_SIZE + 1] = '\0';
        snprintf(path, sizeof path, "%s/big.yaml", f->dir);
        write_file(path, big, 0644);
        free(big);
        assert_int_equal(config_load(path, &c, &d), -EFBIG);
        assert_null(c);
        assert_int_equal(d.n_errors, 1);
        diag_clear(&d);

        /* A FIFO with no writer is refused at once; opening it used to wait for ever. */
        snprintf(path, sizeof path, "%s/fifo.yaml", f->dir);
        assert_int_equal(mkfifo(path, 0600), 0);
        assert_int_equal(config_load(path, &c, &d), -EBADFD);
        assert_null(c);
        snprintf(expect, sizeof expect, "%s: error: cannot read config: not a regular file", path);
        assert_true(diag_has(&d, expect));
        diag_clear(&d);
}

/* ---- the secret -------------------------------------------------------------------------- */

static Config *config_with_secret_file(const char *path) {
        char yaml[PATH_MAX + 256];

        snprintf(yaml, sizeof yaml, "tenant_id: " TENANT "\nclient_id: " CLIENT "\nclient_secret_file: %s\n"
                 "cluster: ch-01\n", path);
        return parse_ok(yaml);
}

static void assert_no_secret(const Diag *d) {
        for (size_t i = 0; i < d->n; i++) {
                assert_null(strstr(d->entries[i].msg, SECRET));
                assert_null(strstr(d->entries[i].msg, "Sup3r"));
        }
}


typedef int (*ReadPrivateFn)(const Config *c, Diag *d);

/* The secret alone; nothing is handed out on failure. */
static int read_secret_only(const Config *c, Diag *d) {
        char *secret = NULL;
        int r = credential_read_secret(c, &secret, d);

        if (r < 0)
                assert_null(secret);
        free(secret);
        return r;
}

/* Certificate and key; neither is handed out on failure. */
static int read_credential_only(const Config *c, Diag *d) {
        ClientCredential cred = { 0 };
        int r = credential_read(c, &cred, d);

        if (r < 0) {
                assert_null(cred.key_pem);
                assert_null(cred.cert_pem);
        }
        client_credential_clear(&cred);
        return r;
}

/* A private file readable by group or others is refused with the chmod to run; an empty one
 * is refused too. Three errors go to d. */
static void check_refused_contents(const Config *c, Diag *d, ReadPrivateFn read, const char *path,
                                   const char *what, const char *content) {
        char expect[1024];

        write_file(path, content, 0644);
        assert_int_equal(read(c, d), -EPERM);
        snprintf(expect, sizeof expect, "%s: error: %s is readable by group or others (mode 0644); "
                 "run chmod 600 %s", path, what, path);
        assert_true(diag_has(d, expect));
        write_file(path, content, 0640);
        assert_int_equal(read(c, d), -EPERM);
        write_file(path, "\r\n", 0600);
        assert_int_equal(read(c, d), -EINVAL);
        snprintf(expect, sizeof expect, "%s: error: %s is empty", path, what);
        assert_true(diag_has(d, expect));
}

static void test_secret_file(void **state) {
        Fixture *f = *state;
        char path[PATH_MAX], expect[3 * PATH_MAX];
        Diag d = DIAG_INIT;
        char *secret = NULL;
        Config *c;

        snprintf(path, sizeof path, "%s/client-secret", f->dir);
        c = config_with_secret_file(path);

        write_file(path, SECRET "\r\n\n", 0600);
        assert_int_equal(credential_read_secret(c, &secret, &d), 0);
        assert_string_equal(secret, SECRET);
        assert_int_equal(d.n, 0);
        free(secret);
        secret = NULL;

        write_file(path, SECRET, 0400);
        assert_int_equal(credential_read_secret(c, &secret, &d), 0);
        assert_string_equal(secret, SECRET);
        free(secret);
        secret = NULL;

        check_refused_contents(c, &d, read_secret_only, path, "secret file", SECRET "\n");
        write_file(path, SECRET "\n", 0604);
        assert_int_equal(read_secret_only(c, &d), -EPERM);

        assert_int_equal(unlink(path), 0);
        assert_int_equal(credential_read_secret(c, &secret, &d), -ENOENT);
        assert_null(secret);

        /* A symlink to a private file is fine (credential stores use them). */
        snprintf(expect, sizeof expect, "%s/real-secret", f->dir);
        write_file(expect, SECRET, 0600);
        assert_int_equal(symlink(expect, path), 0);
        assert_int_equal(credential_read_secret(c, &secret, &d), 0);
        assert_string_equal(secret, SECRET);
        free(secret);

        /* Neither a FIFO (which would block the open) nor a directory. */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkfifo(path, 0600), 0);
        assert_int_equal(credential_read_secret(c, &secret, &d), -EBADFD);
        snprintf(expect, sizeof expect, "%s: error: secret file is not a regular file", path);
        assert_true(diag_has(&d, expect));
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkdir(path, 0700), 0);
        assert_int_equal(credential_read_secret(c, &secret, &d), -EBADFD);

        assert_int_equal(d.n_errors, 7);
        assert_no_secret(&d);
        diag_clear(&d);
        config_free(c);
}

static void test_secret_credential(void **state) {
        Fixture *f = *state;
        char path[PATH_MAX], expect[3 * PATH_MAX];
        const char *yaml = "tenant_id: " TENANT "\nclient_id: " CLIENT "\nclient_secret_credential: client-secret\n"
                           "cluster: ch-01\n";
        Diag d = DIAG_INIT;
        char *secret = NULL;
        Config *c = parse_ok(yaml);

        assert_null(c->client_secret_file);
        assert_string_equal(c->client_secret_credential, "client-secret");

        unsetenv("CREDENTIALS_DIRECTORY");
        assert_int_equal(credential_read_secret(c, &secret, &d), -EINVAL);
        assert_true(diag_has(&d, "config.yaml: error: client_secret_credential is set but "
                             "$CREDENTIALS_DIRECTORY is not (run under systemd with LoadCredential=)"));

        setenv("CREDENTIALS_DIRECTORY", f->dir, 1);
        snprintf(path, sizeof path, "%s/client-secret", f->dir);
        assert_int_equal(credential_read_secret(c, &secret, &d), -ENOENT);

        write_file(path, SECRET "\n", 0400); /* as systemd leaves it */
        assert_int_equal(credential_read_secret(c, &secret, &d), 0);
        assert_string_equal(secret, SECRET);
        free(secret);
        secret = NULL;

        write_file(path, SECRET "\n", 0444);
        assert_int_equal(credential_read_secret(c, &secret, &d), -EPERM);
        snprintf(expect, sizeof expect, "%s: error: secret file is readable by group or others (mode 0444); "
                 "run chmod 600 %s", path, path);
        assert_true(diag_has(&d, expect));
        assert_null(secret);

        assert_no_secret(&d);
        diag_clear(&d);
        config_free(c);

        expect_error("tenant_id: " TENANT "\nclient_id: " CLIENT "\nclient_secret_credential: a/b\ncluster: ch-01\n",
                     "config.yaml:3:27: error: client_secret_credential: \"a/b\" is not a credential name (a "
                     "file name inside $CREDENTIALS_DIRECTORY, without '/')");
}

/* ---- the certificate credential ---------------------------------------------------------- */

#define CERT_BASE "tenant_id: " TENANT "\nclient_id: " CLIENT "\ncluster: ch-01\n" /* three lines */
#define KEY_TEXT "-----BEGIN PRIVATE KEY-----\nK3yM4terial+never/leaks==\n-----END PRIVATE KEY-----"
#define CERT_TEXT "-----BEGIN CERTIFICATE-----\nQ2VydA==\n-----END CERTIFICATE-----\n"

static void test_certificate_keys(void **state) {
        Fixture *f = *state;
        char path[PATH_MAX], expect[3 * PATH_MAX];
        Diag d = DIAG_INIT;
        Config *c = NULL;

        /* Relative paths are taken from the config's folder, like the secret's. */
        snprintf(path, sizeof path, "%s/config.yaml", f->dir);
        write_file(path, CERT_BASE "client_certificate_file: certs/app.pem\nclient_key_file: ./certs/app.key\n",
                   0644);
        assert_int_equal(config_load(path, &c, &d), 0);
        assert_int_equal(d.n, 0);
        snprintf(expect, sizeof expect, "%s/certs/app.pem", f->dir);
        assert_string_equal(c->client_certificate_file, expect);
        snprintf(expect, sizeof expect, "%s/certs/app.key", f->dir);
        assert_string_equal(c->client_key_file, expect);
        assert_null(c->client_key_credential);
        assert_null(c->client_secret_file);
        assert_null(c->client_secret_credential);
        config_free(c);

        c = parse_ok(CERT_BASE "client_certificate_file: /etc/nimbus-sync/app.pem\nclient_key_credential: app-key\n");
        assert_string_equal(c->client_certificate_file, "/etc/nimbus-sync/app.pem");
        assert_string_equal(c->client_key_credential, "app-key");
        assert_null(c->client_key_file);
        config_free(c);
}

static void test_certificate_key_errors(void **state) {
        expect_error(MINIMAL "client_certificate_file: /c.pem\nclient_key_file: /k.pem\n",
                     "config.yaml:5:26: error: client_certificate_file: set either a client secret or a "
                     "certificate, not both");
        expect_error(MINIMAL "client_key_file: /k.pem\n",
                     "config.yaml:5:18: error: client_key_file: set either a client secret or a certificate, "
                     "not both");
        expect_error(CERT_BASE "client_certificate_file: /c.pem\n",
                     "config.yaml:4:26: error: client_certificate_file: needs its private key in "
                     "client_key_file (or client_key_credential)");
        expect_error(CERT_BASE "client_key_file: /k.pem\n",
                     "config.yaml:4:18: error: client_key_file: needs client_certificate_file, the "
                     "certificate of the key");
        expect_error(CERT_BASE "client_key_credential: k\n",
                     "config.yaml:4:24: error: client_key_credential: needs client_certificate_file, the "
                     "certificate of the key");
        expect_error(CERT_BASE "client_certificate_file: /c.pem\nclient_key_file: /k.pem\nclient_key_credential: k\n",
                     "config.yaml:6:24: error: client_key_credential: set only one of client_key_file and "
                     "client_key_credential");
        expect_error(CERT_BASE "client_certificate_file: /c.pem\nclient_key_credential: ../k\n",
                     "config.yaml:5:24: error: client_key_credential: \"../k\" is not a credential name (a "
                     "file name inside $CREDENTIALS_DIRECTORY, without '/')");
        expect_error(CERT_BASE "client_certificate_file: [a]\nclient_key_file: /k.pem\n",
                     "config.yaml:4:26: error: client_certificate_file: expected a path, got a list");
}

static void test_client_assertion_alg(void **state) {
        Config *c = parse_ok(CERT_BASE "client_certificate_file: /c.pem\nclient_key_file: /k.pem\n");
        assert_int_equal(c->client_assertion_alg, JWT_ALG_PS256);
        config_free(c);
        c = parse_ok(CERT_BASE "client_certificate_file: /c.pem\nclient_key_file: /k.pem\n"
                     "client_assertion_alg: RS256\n");
        assert_int_equal(c->client_assertion_alg, JWT_ALG_RS256);
        config_free(c);
        c = parse_ok(CERT_BASE "client_certificate_file: /c.pem\nclient_key_file: /k.pem\n"
                     "client_assertion_alg: PS256\n");
        assert_int_equal(c->client_assertion_alg, JWT_ALG_PS256);
        config_free(c);

        expect_error(CERT_BASE "client_certificate_file: /c.pem\nclient_key_file: /k.pem\n"
                     "client_assertion_alg: HS256\n",
                     "config.yaml:6:23: error: client_assertion_alg: unknown value \"HS256\" (expected "
                     "PS256 or RS256)");
        expect_error(CERT_BASE "client_certificate_file: /c.pem\nclient_key_file: /k.pem\n"
                     "client_assertion_alg: ps256\n",
                     "config.yaml:6:23: error: client_assertion_alg: unknown value \"ps256\" (expected "
                     "PS256 or RS256)");
        expect_error(MINIMAL "client_assertion_alg: RS256\n",
                     "config.yaml:5:23: error: client_assertion_alg: only applies to a certificate "
                     "credential (client_certificate_file)");
}

static void assert_no_key(const Diag *d) {
        for (size_t i = 0; i < d->n; i++)
                assert_null(strstr(d->entries[i].msg, "K3yM4terial"));
}

static Config *config_with_certificate(const char *cert, const char *key) {
        char yaml[3 * PATH_MAX];

        snprintf(yaml, sizeof yaml, CERT_BASE "client_certificate_file: %s\nclient_key_file: %s\n", cert, key);
        return parse_ok(yaml);
}

static void test_certificate_read(void **state) {
        Fixture *f = *state;
        char cert[PATH_MAX], key[PATH_MAX], expect[3 * PATH_MAX];
        ClientCredential cred = { 0 };
        Diag d = DIAG_INIT;
        Config *c;

        snprintf(cert, sizeof cert, "%s/app.pem", f->dir);
        snprintf(key, sizeof key, "%s/app.key", f->dir);
        c = config_with_certificate(cert, key);

        /* The certificate is public; the key as private as a secret. */
        write_file(cert, CERT_TEXT, 0644);
        write_file(key, KEY_TEXT "\n", 0600);
        assert_int_equal(credential_read(c, &cred, &d), 0);
        assert_int_equal(d.n, 0);
        assert_null(cred.secret);
        assert_string_equal(cred.cert_pem, CERT_TEXT);
        assert_string_equal(cred.cert_path, cert);
        assert_string_equal(cred.key_pem, KEY_TEXT);
        assert_string_equal(cred.key_path, key);
        client_credential_clear(&cred);
        assert_null(cred.key_pem);
        assert_null(cred.cert_pem);

        check_refused_contents(c, &d, read_credential_only, key, "key file", KEY_TEXT "\n");

        assert_int_equal(unlink(key), 0);
        assert_int_equal(credential_read(c, &cred, &d), -ENOENT);
        snprintf(expect, sizeof expect, "%s: error: cannot open key file: No such file or directory", key);
        assert_true(diag_has(&d, expect));

        write_file(key, KEY_TEXT, 0400);
        assert_int_equal(unlink(cert), 0);
        assert_int_equal(credential_read(c, &cred, &d), -ENOENT);
        assert_null(cred.key_pem);
        snprintf(expect, sizeof expect, "%s: error: cannot read certificate file: No such file or directory", cert);
        assert_true(diag_has(&d, expect));

        assert_int_equal(d.n_errors, 5);
        assert_no_key(&d);
        diag_clear(&d);
        config_free(c);
}

static void test_certificate_key_credential(void **state) {
        Fixture *f = *state;
        char cert[PATH_MAX], key[PATH_MAX], yaml[2 * PATH_MAX];
        ClientCredential cred = { 0 };
        Diag d = DIAG_INIT;
        Config *c;

        snprintf(cert, sizeof cert, "%s/app.pem", f->dir);
        snprintf(key, sizeof key, "%s/app-key", f->dir);
        snprintf(yaml, sizeof yaml, CERT_BASE "client_certificate_file: %s\nclient_key_credential: app-key\n", cert);
        c = parse_ok(yaml);
        write_file(cert, CERT_TEXT, 0444);
        write_file(key, KEY_TEXT, 0400);   /* as systemd leaves it */

        unsetenv("CREDENTIALS_DIRECTORY");
        assert_int_equal(credential_read(c, &cred, &d), -EINVAL);
        assert_true(diag_has(&d, "config.yaml: error: client_key_credential is set but $CREDENTIALS_DIRECTORY "
                             "is not (run under systemd with LoadCredential=)"));

        setenv("CREDENTIALS_DIRECTORY", f->dir, 1);
        assert_int_equal(credential_read(c, &cred, &d), 0);
        assert_string_equal(cred.key_pem, KEY_TEXT);
        assert_string_equal(cred.key_path, key);
        assert_string_equal(cred.cert_pem, CERT_TEXT);
        client_credential_clear(&cred);
        assert_no_key(&d);
        diag_clear(&d);
        config_free(c);

        /* A secret config reads the secret through the same call, and nothing else. */
        snprintf(key, sizeof key, "%s/client-secret", f->dir);
        write_file(key, SECRET "\n", 0600);
        c = config_with_secret_file(key);
        assert_int_equal(credential_read(c, &cred, &d), 0);
        assert_string_equal(cred.secret, SECRET);
        assert_null(cred.cert_pem);
        assert_null(cred.key_pem);
        client_credential_clear(&cred);
        assert_null(cred.secret);
        assert_int_equal(d.n, 0);
        config_free(c);
}

/* ---- what validate and doctor check ----------------------------------------------------- */

#define CA_PEM "-----BEGIN CERTIFICATE-----\n" \
        "MIIBlDCCATmgAwIBAgIUANwdhbowprug+2SlXZPjD7wSzRwwCgYIKoZIzj0EAwIw\n" \
        "HjEcMBoGA1UEAwwTbmltYnVzLXN5bmMgdGVzdCBDQTAgFw0yNjExMjkxOTA0NTla\n" \
        "GA8yMTI2MTEwNTE5MDQ1OVowHjEcMBoGA1UEAwwTbmltYnVzLXN5bmMgdGVzdCBD\n" \
        "QTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEw+qrSy+ujNgJgnqA0/Egg4Epjs\n" \
        "qmzhFmqbHdgUkDGSW1xjuQJq8hudnR1Vnj//bc2rwDm7CffYDr7ivlqjExujUzBR\n" \
        "MB0GA1UdDgQWBBShVGXOhiKJdUleguExlqcaBF60YjAfBgNVHSMEGDAWgBShVGXO\n" \
        "hiKJdUleguExlqcaBF60YjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kA\n" \
        "MEYCIQDWNyWwN/374l7PFE7Ie1Ro9UtsU1HsoL24pZdnjArGqAIhAKl/SxuQjg3U\n" \
        "tF2jKTR34J3SPon5GRRlMc5mkgjY9pcw\n" \
        "-----END CERTIFICATE-----\n"

/* credential_check() must say exactly `expected` (an error) and fail, or pass without a word. */
static void check_says(const Config *c, unsigned flags, const char *expected) {
        Diag d = DIAG_INIT;
        int r = credential_check(c, flags, &d);

        if (!expected) {
                print_diag(&d);
                assert_int_equal(r, 0);
                assert_int_equal(d.n, 0);
        } else {
                assert_int_equal(r, -EINVAL);
                if (!diag_has(&d, expected)) {
                        print_error("expected: %s\n", expected);
                        print_diag(&d);
                        fail();
                }
        }
        assert_no_secret(&d);
        diag_clear(&d);
}

static void test_check_secret_and_ca_file(void **state) {
        Fixture *f = *state;
        char secret[PATH_MAX], ca[PATH_MAX], yaml[3 * PATH_MAX], expect[3 * PATH_MAX];
        Config *c;

        snprintf(secret, sizeof secret, "%s/client-secret", f->dir);
        snprintf(ca, sizeof ca, "%s/ca.pem", f->dir);
        snprintf(yaml, sizeof yaml, "tenant_id: " TENANT "\nclient_id: " CLIENT "\ncluster: ch-01\n"
                 "client_secret_file: %s\nca_file: %s\n", secret, ca);
        c = parse_ok(yaml);

        write_file(secret, SECRET "\n", 0600);
        write_file(ca, "# our proxy\n" CA_PEM, 0644);
        check_says(c, CREDENTIAL_CHECK_STRICT, NULL);
        check_says(c, 0, NULL);

        write_file(secret, SECRET "\n", 0644);
        snprintf(expect, sizeof expect, "%s: error: secret file is readable by group or others (mode "
                 "0644); run chmod 600 %s", secret, secret);
        check_says(c, 0, expect);
        assert_int_equal(unlink(secret), 0);
        snprintf(expect, sizeof expect, "%s: error: cannot open secret file: No such file or directory", secret);
        check_says(c, 0, expect);
        write_file(secret, SECRET "\n", 0600);

        write_file(ca, "not a certificate\n", 0644);
        snprintf(expect, sizeof expect, "%s: error: ca_file holds no PEM certificate "
                 "(-----BEGIN CERTIFICATE-----)", ca);
        check_says(c, 0, expect);
        write_file(ca, KEY_TEXT "\n", 0644);
        check_says(c, 0, expect);
        assert_int_equal(unlink(ca), 0);
        snprintf(expect, sizeof expect, "%s: error: cannot read ca_file: No such file or directory", ca);
        check_says(c, 0, expect);
        assert_int_equal(mkfifo(ca, 0644), 0);
        snprintf(expect, sizeof expect, "%s: error: ca_file is not a regular file", ca);
        check_says(c, 0, expect);
        config_free(c);
}

static void test_check_systemd_credentials(void **state) {
        Fixture *f = *state;
        char path[PATH_MAX], yaml[2 * PATH_MAX];
        Diag d = DIAG_INIT;
        Config *c;

        c = parse_ok("tenant_id: " TENANT "\nclient_id: " CLIENT "\nclient_secret_credential: client-secret\n"
                     "cluster: ch-01\n");
        /* By hand without $CREDENTIALS_DIRECTORY: a warning for validate, an error for doctor. */
        unsetenv("CREDENTIALS_DIRECTORY");
        assert_int_equal(credential_check(c, 0, &d), 0);
        assert_int_equal(d.n_warnings, 1);
        assert_true(diag_has(&d, "config.yaml: warning: client_secret_credential not checked: "
                             "$CREDENTIALS_DIRECTORY is not set (by hand, as root: "
                             "CREDENTIALS_DIRECTORY=/etc/nimbus-sync)"));
        diag_clear(&d);
        check_says(c, CREDENTIAL_CHECK_STRICT, "config.yaml: error: client_secret_credential is set but "
                     "$CREDENTIALS_DIRECTORY is not (run under systemd with LoadCredential=)");
        /* The service user is not asked to read what systemd reads for it. */
        check_says(c, CREDENTIAL_CHECK_STRICT | CREDENTIAL_CHECK_FILES_ONLY, NULL);
        setenv("CREDENTIALS_DIRECTORY", f->dir, 1);
        snprintf(path, sizeof path, "%s/client-secret", f->dir);
        write_file(path, "\n", 0400);
        snprintf(yaml, sizeof yaml, "%s: error: secret file is empty", path);
        check_says(c, 0, yaml);
        config_free(c);

        /* A certificate whose key is a systemd credential: the certificate alone is checked. */
        snprintf(path, sizeof path, "%s/app.pem", f->dir);
        snprintf(yaml, sizeof yaml, CERT_BASE "client_certificate_file: %s\nclient_key_credential: k\n", path);
        c = parse_ok(yaml);
        write_file(path, CA_PEM, 0644);
        check_says(c, CREDENTIAL_CHECK_FILES_ONLY, NULL);
        write_file(path, CERT_TEXT, 0644);
        snprintf(yaml, sizeof yaml, "%s: error: not a PEM certificate", path);
        check_says(c, CREDENTIAL_CHECK_FILES_ONLY, yaml);
        config_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_utf8_prefix),
                cmocka_unit_test(test_parse_duration),
                cmocka_unit_test_setup_teardown(test_read_file_bounded, setup, teardown),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_metrics_file),
                cmocka_unit_test_setup_teardown(test_full_config, setup, teardown),
                cmocka_unit_test_setup_teardown(test_relative_config_path, setup, teardown),
                cmocka_unit_test(test_log_levels_and_targets),
                cmocka_unit_test(test_clusters),
                cmocka_unit_test(test_overrides),
                cmocka_unit_test(test_http_only_on_loopback),
                cmocka_unit_test(test_bad_urls),
                cmocka_unit_test(test_unknown_keys),
                cmocka_unit_test(test_wrong_types),
                cmocka_unit_test(test_bad_values),
                cmocka_unit_test(test_number_ranges),
                cmocka_unit_test(test_missing_required),
                cmocka_unit_test(test_duplicates),
                cmocka_unit_test(test_ou_names),
                cmocka_unit_test(test_resolve_ou),
                cmocka_unit_test(test_yaml_syntax),
                cmocka_unit_test(test_several_errors_at_once),
                cmocka_unit_test_setup_teardown(test_config_load_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_secret_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_secret_credential, setup, teardown),
                cmocka_unit_test_setup_teardown(test_certificate_keys, setup, teardown),
                cmocka_unit_test(test_certificate_key_errors),
                cmocka_unit_test(test_client_assertion_alg),
                cmocka_unit_test_setup_teardown(test_certificate_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_certificate_key_credential, setup, teardown),
                cmocka_unit_test_setup_teardown(test_check_secret_and_ca_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_check_systemd_credentials, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
