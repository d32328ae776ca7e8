/* test_metrics: the Prometheus text nimbus-sync writes for node_exporter's textfile collector:
 * every sample under its HELP and TYPE lines and the nimbus_sync_ prefix, the figures where they
 * belong, label values escaped, and the file replaced atomically, directly and from the loop. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "util.h"

static const MetricsSource sources[] = {
        { .group = { { 0x11, 0x22 } }, .name = "Support \"Tier 1\"", .read_usec = 1700000000 * USEC_PER_SEC,
          .members = 42 },
        { .group = { { 0x33 } }, .name = NULL, .read_usec = 0, .members = 0, .error = true },
};

static MetricsFigures sample_figures(MetricsApiCounts *api) {
        memset(api, 0, sizeof(*api));
        metrics_count_answer(api, CALL_CREATE, 201);
        metrics_count_answer(api, CALL_CREATE, 201);
        metrics_count_answer(api, CALL_CREATE, 429);
        metrics_count_answer(api, CALL_DELETE, 0);      /* no answer */
        metrics_count_answer(api, CALL_DELETE, 1234);   /* not HTTP: counted as no answer */
        metrics_count_answer(api, CALL_GET_USER, 404);
        return (MetricsFigures) {
                .unit = "nimbus-sync",
                .now_usec = 1700000100 * USEC_PER_SEC,
                .users = { [METRICS_USERS_CREATED] = 10, [METRICS_USERS_COPIED] = 2,
                           [METRICS_USERS_ADOPTED] = 3, [METRICS_USERS_UNCERTAIN] = 1,
                           [METRICS_USERS_DELETED] = 7, [METRICS_USERS_UNCONFIRMED] = 4 },
                .pending = { [METRICS_PENDING_CREATE] = 5000, [METRICS_PENDING_COPY] = 12,
                             [METRICS_PENDING_DELETE] = 0 },
                .held = 131, .approved = 2, .failed = 3, .quarantined = 1, .retrying = 6, .drift = 8,
                .api = api,
                .rate_used = 59, .rate_limit = 60, .rate_window_usec = 60 * USEC_PER_SEC,
                .auth = METRICS_AUTH_FAILED,
                .roster_ok = false, .roster_users = 5002, .roster_files = 2,
                .roster_newest_usec = 1700000040 * USEC_PER_SEC,
                .last_success_usec = 1699990000 * USEC_PER_SEC + 999999,
                .running = true, .run_done = 120, .run_total = 5012,
                .sources = sources, .n_sources = 2,
        };
}

static char *render(const MetricsFigures *f) {
        char *text = NULL;
        size_t len = 0;

        assert_int_equal(metrics_render(f, &text, &len), 0);
        assert_non_null(text);
        assert_int_equal(strlen(text), len);
        return text;
}

static void assert_line(const char *text, const char *line) {
        char *want = NULL;

        assert_true(asprintf(&want, "\n%s\n", line) > 0);
        if (!strstr(text, want) && strncmp(text, want + 1, strlen(want + 1)) != 0)
                fail_msg("missing line: %s\n--- in ---\n%s", line, text);
        free(want);
}

static void assert_no_line_starting(const char *text, const char *prefix) {
        char *want = NULL;

        assert_true(asprintf(&want, "\n%s", prefix) > 0);
        assert_null(strstr(text, want));
        free(want);
}

static void test_figures_where_they_belong(void **state) {
        MetricsApiCounts api;
        MetricsFigures f = sample_figures(&api);
        char *text = render(&f);
        static const char *const lines[] = {
                "nimbus_sync_users{unit=\"nimbus-sync\",state=\"created\"} 10",
                "nimbus_sync_users{unit=\"nimbus-sync\",state=\"copied\"} 2",
                "nimbus_sync_users{unit=\"nimbus-sync\",state=\"adopted\"} 3",
                "nimbus_sync_users{unit=\"nimbus-sync\",state=\"uncertain\"} 1",
                "nimbus_sync_users{unit=\"nimbus-sync\",state=\"deleted\"} 7",
                "nimbus_sync_users{unit=\"nimbus-sync\",state=\"unconfirmed\"} 4",
                "nimbus_sync_pending{unit=\"nimbus-sync\",kind=\"create\"} 5000",
                "nimbus_sync_pending{unit=\"nimbus-sync\",kind=\"copy\"} 12",
                "nimbus_sync_pending{unit=\"nimbus-sync\",kind=\"delete\"} 0",
                "nimbus_sync_held_deletes{unit=\"nimbus-sync\"} 131",
                "nimbus_sync_approved_deletes{unit=\"nimbus-sync\"} 2",
                "nimbus_sync_failed_users{unit=\"nimbus-sync\"} 3",
                "nimbus_sync_quarantined_users{unit=\"nimbus-sync\"} 1",
                "nimbus_sync_retrying_users{unit=\"nimbus-sync\"} 6",
                "nimbus_sync_drift_users{unit=\"nimbus-sync\"} 8",
                "nimbus_sync_api_requests_total{unit=\"nimbus-sync\",call=\"create\",status=\"201\"} 2",
                "nimbus_sync_api_requests_total{unit=\"nimbus-sync\",call=\"create\",status=\"429\"} 1",
                "nimbus_sync_api_requests_total{unit=\"nimbus-sync\",call=\"delete\",status=\"none\"} 2",
                "nimbus_sync_api_requests_total{unit=\"nimbus-sync\",call=\"verify\",status=\"404\"} 1",
                "nimbus_sync_rate_window_used{unit=\"nimbus-sync\"} 59",
                "nimbus_sync_rate_window_limit{unit=\"nimbus-sync\"} 60",
                "nimbus_sync_rate_window_seconds{unit=\"nimbus-sync\"} 60",
                "nimbus_sync_auth_state{unit=\"nimbus-sync\",state=\"unknown\"} 0",
                "nimbus_sync_auth_state{unit=\"nimbus-sync\",state=\"ok\"} 0",
                "nimbus_sync_auth_state{unit=\"nimbus-sync\",state=\"failed\"} 1",
                "nimbus_sync_roster_ok{unit=\"nimbus-sync\"} 0",
                "nimbus_sync_roster_users{unit=\"nimbus-sync\"} 5002",
                "nimbus_sync_roster_files{unit=\"nimbus-sync\"} 2",
                "nimbus_sync_roster_newest_file_age_seconds{unit=\"nimbus-sync\"} 60",
                "nimbus_sync_last_success_timestamp_seconds{unit=\"nimbus-sync\"} 1699990000",
                "nimbus_sync_run_in_progress{unit=\"nimbus-sync\"} 1",
                "nimbus_sync_run_jobs_done{unit=\"nimbus-sync\"} 120",
                "nimbus_sync_run_jobs_total{unit=\"nimbus-sync\"} 5012",
                "nimbus_sync_source_last_read_timestamp_seconds{unit=\"nimbus-sync\","
                "group=\"11220000-0000-0000-0000-000000000000\",name=\"Support \\\"Tier 1\\\"\"} 1700000000",
                "nimbus_sync_source_members{unit=\"nimbus-sync\",group=\"11220000-0000-0000-0000-000000000000\","
                "name=\"Support \\\"Tier 1\\\"\"} 42",
                "nimbus_sync_source_error{unit=\"nimbus-sync\",group=\"11220000-0000-0000-0000-000000000000\","
                "name=\"Support \\\"Tier 1\\\"\"} 0",
                "nimbus_sync_source_error{unit=\"nimbus-sync\",group=\"33000000-0000-0000-0000-000000000000\","
                "name=\"\"} 1",
        };

        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                assert_line(text, lines[i]);
        assert_line(text, "# TYPE nimbus_sync_api_requests_total counter");
        assert_line(text, "# TYPE nimbus_sync_users gauge");
        /* Statuses never answered have no sample. */
        assert_null(strstr(text, "status=\"200\""));
        free(text);
}

/* The exposition format: every sample follows the HELP and TYPE lines of its own family, each
 * family is described once, and every name has the prefix. */
static void assert_well_formed(const char *text) {
        char family[128] = "", name[128];
        const char *p = text;
        size_t families = 0;

        assert_true(*text != 0 && text[strlen(text) - 1] == '\n');
        while (*p) {
                const char *end = strchr(p, '\n');
                size_t n = (size_t) (end - p);

                if (strncmp(p, "# HELP ", 7) == 0) {
                        assert_int_equal(sscanf(p + 7, "%127s", family), 1);
                        assert_true(strncmp(family, "nimbus_sync_", 12) == 0);
                        snprintf(name, sizeof(name), "\n# HELP %s ", family);
                        assert_null(strstr(end, name));   /* described once */
                        snprintf(name, sizeof(name), "# TYPE %s ", family);
                        assert_true(strncmp(end + 1, name, strlen(name)) == 0);
                        end = strchr(end + 1, '\n');
                        families++;
                } else {
                        assert_true(n > strlen(family) && strncmp(p, family, strlen(family)) == 0);
                        assert_true(p[strlen(family)] == '{');
                        assert_true(strncmp(p + strlen(family), "{unit=\"", 7) == 0);
                        assert_non_null(memchr(p, '}', n));
                }
                p = end + 1;
        }
        assert_true(families >= 20);
}

static void test_well_formed(void **state) {
        MetricsApiCounts api;
        MetricsFigures f = sample_figures(&api);
        char *text = render(&f);

        assert_well_formed(text);
        free(text);
}

/* Nothing known yet: no request made, no roster file, never a success, no sources. */
static void test_nothing_yet(void **state) {
        MetricsFigures f = { .unit = "nimbus-sync@customer-a", .roster_ok = true };
        char *text = render(&f);

        assert_well_formed(text);
        assert_line(text, "# TYPE nimbus_sync_api_requests_total counter");
        assert_no_line_starting(text, "nimbus_sync_api_requests_total{");
        assert_no_line_starting(text, "# HELP nimbus_sync_roster_newest_file_age_seconds");
        assert_no_line_starting(text, "# HELP nimbus_sync_source_");
        assert_line(text, "nimbus_sync_last_success_timestamp_seconds{unit=\"nimbus-sync@customer-a\"} 0");
        assert_line(text, "nimbus_sync_auth_state{unit=\"nimbus-sync@customer-a\",state=\"unknown\"} 1");
        assert_line(text, "nimbus_sync_roster_ok{unit=\"nimbus-sync@customer-a\"} 1");
        free(text);
}

/* Label values: backslash, quote and newline escaped; bytes that are not UTF-8 replaced, UTF-8
 * kept; a roster file newer than now (clock set back) is 0 seconds old. */
static void test_escaping(void **state) {
        MetricsSource s = { .name = "a\\b\nc\xff\xfe Zürich" };
        MetricsFigures f = { .unit = "odd \"unit\"", .sources = &s, .n_sources = 1,
                             .now_usec = 10 * USEC_PER_SEC, .roster_newest_usec = 20 * USEC_PER_SEC };
        char *text = render(&f);

        assert_well_formed(text);
        assert_line(text, "nimbus_sync_source_members{unit=\"odd \\\"unit\\\"\","
                    "group=\"00000000-0000-0000-0000-000000000000\",name=\"a\\\\b\\nc?? Zürich\"} 0");
        assert_line(text, "nimbus_sync_roster_newest_file_age_seconds{unit=\"odd \\\"unit\\\"\"} 0");
        free(text);
}

/* Each user counts in one state; holds and failures beside it. */
static void test_user_kinds(void **state) {
        static const StoreUserKind kinds[] = {
                { .origin = ORIGIN_CREATED, .presence = PRESENCE_PRESENT, .n = 10 },
                { .origin = ORIGIN_CREATED, .presence = PRESENCE_PRESENT, .hold = HOLD_HELD, .n = 2 },
                { .origin = ORIGIN_COPIED, .presence = PRESENCE_PRESENT, .hold = HOLD_APPROVED, .n = 3 },
                { .origin = ORIGIN_ADOPTED, .presence = PRESENCE_PRESENT, .n = 4 },
                { .origin = ORIGIN_UNCERTAIN, .presence = PRESENCE_PRESENT, .hold = HOLD_HELD, .n = 1 },
                { .origin = ORIGIN_UNCERTAIN, .presence = PRESENCE_UNKNOWN, .intent = INTENT_CREATE, .n = 1 },
                { .origin = ORIGIN_CREATED, .presence = PRESENCE_ABSENT, .n = 7 },
                { .origin = ORIGIN_UNCERTAIN, .presence = PRESENCE_ABSENT, .n = 1 },
                { .origin = ORIGIN_NONE, .presence = PRESENCE_UNKNOWN, .status = STATUS_FAILED, .n = 5 },
                { .origin = ORIGIN_NONE, .presence = PRESENCE_UNKNOWN, .status = STATUS_QUARANTINED, .n = 6 },
                { .origin = ORIGIN_NONE, .presence = PRESENCE_UNKNOWN, .status = STATUS_RETRY, .n = 8 },
                { .origin = ORIGIN_NONE, .presence = PRESENCE_PRESENT, .n = 9 },   /* seen, not ours */
        };
        MetricsFigures f = { 0 };
        size_t total = 0;

        metrics_add_user_kinds(&f, kinds, ELEMENTSOF(kinds));
        assert_int_equal(f.users[METRICS_USERS_CREATED], 12);
        assert_int_equal(f.users[METRICS_USERS_COPIED], 3);
        assert_int_equal(f.users[METRICS_USERS_ADOPTED], 4);
        assert_int_equal(f.users[METRICS_USERS_UNCERTAIN], 2);
        assert_int_equal(f.users[METRICS_USERS_DELETED], 8);
        assert_int_equal(f.users[METRICS_USERS_UNCONFIRMED], 28);
        for (size_t i = 0; i < _METRICS_USERS_MAX; i++)
                total += f.users[i];
        assert_int_equal(total, 57);
        assert_int_equal(f.held, 3);
        assert_int_equal(f.approved, 3);
        assert_int_equal(f.failed, 5);
        assert_int_equal(f.quarantined, 6);
        assert_int_equal(f.retrying, 8);
}

static char *temp_dir(void) {
        char *dir = strdup("/tmp/test_metrics.XXXXXX");

        assert_non_null(dir);
        assert_non_null(mkdtemp(dir));
        return dir;
}

static size_t count_entries(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *e;
        size_t n = 0;

        assert_non_null(d);
        while ((e = readdir(d)))
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

static void assert_file(const char *path, const char *want) {
        char *buf = NULL;
        size_t len = 0;
        struct stat st;

        assert_int_equal(read_file_bounded(path, 1 << 20, &buf, &len), 0);
        assert_string_equal(buf, want);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);   /* the collector runs as another user */
        free(buf);
}

static void test_write_file(void **state) {
        char *dir = temp_dir(), *path = NULL, *missing = NULL;
        mode_t old = umask(077);   /* as under the unit's UMask= */

        assert_true(asprintf(&path, "%s/nimbus_sync.prom", dir) > 0);
        assert_int_equal(metrics_write_file(path, "a 1\n", 4), 0);
        assert_file(path, "a 1\n");
        assert_int_equal(metrics_write_file(path, "b 2\n", 4), 0);
        assert_file(path, "b 2\n");
        assert_int_equal(count_entries(dir), 1);   /* no temporary file left behind */
        assert_true(asprintf(&missing, "%s/no/such/x.prom", dir) > 0);
        assert_int_equal(metrics_write_file(missing, "c 3\n", 4), -ENOENT);
        assert_file(path, "b 2\n");
        umask(old);
        unlink(path);
        rmdir(dir);
        free(missing);
        free(path);
        free(dir);
}

typedef struct Written {
        int calls, last;
} Written;

static void on_written(void *userdata, int error) {
        Written *w = userdata;

        w->calls++;
        w->last = error;
}

/* Texts submitted while a write is in progress: the newest waits, older waiting ones are
 * dropped, and the file ends with the newest. Freed with a write in progress, the writer goes
 * once it has ended, without a callback. */
static void test_writer(void **state) {
        char *dir = temp_dir(), *path = NULL;
        Written w = { 0 };
        MetricsWriter *mw = NULL;
        uv_loop_t loop;

        assert_true(asprintf(&path, "%s/nimbus_sync.prom", dir) > 0);
        assert_int_equal(uv_loop_init(&loop), 0);
        assert_int_equal(metrics_writer_new(&loop, path, on_written, &w, &mw), 0);
        metrics_writer_submit(mw, strdup("one 1\n"), 6);
        metrics_writer_submit(mw, strdup("two 2\n"), 6);
        metrics_writer_submit(mw, strdup("three 3\n"), 8);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(w.calls, 2);
        assert_int_equal(w.last, 0);
        assert_file(path, "three 3\n");

        metrics_writer_submit(mw, strdup("four 4\n"), 7);
        metrics_writer_free(mw);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(w.calls, 2);
        assert_file(path, "four 4\n");
        assert_int_equal(uv_loop_close(&loop), 0);
        unlink(path);
        rmdir(dir);
        free(path);
        free(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_figures_where_they_belong),
                cmocka_unit_test(test_well_formed), cmocka_unit_test(test_nothing_yet),
                cmocka_unit_test(test_escaping), cmocka_unit_test(test_user_kinds),
                cmocka_unit_test(test_write_file), cmocka_unit_test(test_writer),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
