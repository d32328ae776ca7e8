/* test_runner.c: the job life cycle of runner.c, driven answer by answer. The tenant is replaced
 * at the link seam (tenant_call, tenant_cancel_queued are defined here, so tenant.o is never
 * linked): every call the runner hands over waits in `calls` until the test answers it, which
 * makes each interleaving deterministic. The store is a real one in a temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <unistd.h>

#include "planner.h"
#include "runner.h"
#include "util.h"

#define MAX_CALLS 64

typedef struct FakeCall {
        NimbusCall call;
        Guid id;
        TenantSendFn on_send;
        NimbusDoneFn done;
        void *userdata;
        bool answered;
} FakeCall;

typedef struct Fixture {
        char dir[256];
        uv_loop_t loop;
        Config config;
        Logger log;
        Tenant tenant;
        FakeCall calls[MAX_CALLS];
        size_t n_calls;
        bool finished;
} Fixture;

static Fixture *fx;   /* the fake tenant reaches its fixture through this */

int tenant_call(Tenant *t, CallPriority prio, NimbusCall call, const Guid *id, const Guid *target,
                TenantSendFn on_send, NimbusDoneFn done, void *userdata) {
        assert_true(fx->n_calls < MAX_CALLS);
        fx->calls[fx->n_calls++] = (FakeCall) { .call = call, .id = id ? *id : (Guid) { { 0 } },
                                                .on_send = on_send, .done = done, .userdata = userdata };
        return 0;
}

void tenant_cancel_queued(Tenant *t) {
        for (size_t i = 0; i < fx->n_calls; i++)
                if (!fx->calls[i].answered) {
                        NimbusResult res = { .call = fx->calls[i].call, .error = -ECANCELED,
                                             .outcome = OUTCOME_TRANSIENT, .message = "cancelled" };
                        fx->calls[i].answered = true;
                        fx->calls[i].done(fx->calls[i].userdata, &res);
                }
}

static Guid G(uint8_t n) {
        return (Guid) { { n, 0x11 } };
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        snprintf(f->dir, sizeof f->dir, "/tmp/test-runner-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(uv_loop_init(&f->loop), 0);
        f->config.retry.base_usec = 1000;
        f->config.retry.cap_usec = 2000;
        f->config.retry.attempts = 8;
        f->config.retry.quarantine_usec = 3600 * USEC_PER_SEC;
        f->config.retry.failed_retry_usec = 3600 * USEC_PER_SEC;
        f->log = (Logger) { .level = -1 };   /* silent */
        f->tenant = (Tenant) { .config = &f->config, .log = &f->log, .loop = &f->loop };
        assert_int_equal(store_open(f->dir, false, &f->tenant.store), 0);
        fx = f;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[300];

        store_close(f->tenant.store);
        assert_int_equal(uv_loop_close(&f->loop), 0);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

static void on_done(void *userdata, Runner *r) {
        ((Fixture *) userdata)->finished = true;
}

/* The tenant's part: record the send (on_send), then deliver the answer. */
static void answer(Fixture *f, size_t i, long status, const char *body) {
        FakeCall *c = &f->calls[i];
        NimbusResult res = { .call = c->call, .http_status = status, .message = body,
                             .body = body, .body_len = strlen(body) };
        int k = c->on_send ? c->on_send(c->userdata) : 0;

        assert_false(c->answered);
        c->answered = true;
        if (k < 0) {
                res = (NimbusResult) { .call = c->call, .error = k, .message = "" , .body = "" };
                c->done(c->userdata, &res);
                return;
        }
        res.outcome = nimbus_classify(c->call, status, 0, body, strlen(body));
        c->done(c->userdata, &res);
}

static void run_loop(Fixture *f) {
        (void) uv_run(&f->loop, UV_RUN_NOWAIT);
}

static Runner *start(Fixture *f, Plan *p, uint64_t max_wait) {
        Runner *r = NULL;

        assert_int_equal(runner_new(&f->tenant, p, NULL, "test", &r), 0);
        runner_set_max_wait(r, max_wait);
        assert_int_equal(runner_start(r, on_done, f), 0);
        return r;
}

static void finish(Fixture *f, Runner *r) {
        run_loop(f);
        assert_true(f->finished);
        runner_free(r);
        run_loop(f);
}

/* The stored record's fields (its error text is not kept: see stored_error()). */
static StoreUser stored(Fixture *f, uint8_t n) {
        StoreUser u;
        Guid id = G(n);

        assert_int_equal(store_get_user(f->tenant.store, &id, &u), 0);
        store_user_clear(&u);
        return u;
}

static bool stored_error_has(Fixture *f, uint8_t n, const char *needle) {
        StoreUser u;
        Guid id = G(n);
        bool found;

        assert_int_equal(store_get_user(f->tenant.store, &id, &u), 0);
        found = u.error && strstr(u.error, needle);
        store_user_clear(&u);
        return found;
}

/* A copy waits for its template's create, goes when it is done, and the run ends. */
static void test_copy_waits_for_template(void **state) {
        Fixture *f = *state;
        Action a[2] = {
                { .id = G(1), .target = G(9), .kind = ACTION_CREATE, .depends_on = PLAN_NO_DEP },
                { .id = G(2), .target = G(1), .kind = ACTION_COPY, .depends_on = 0 },
        };
        Plan p = { .actions = a, .n = 2, .n_create = 1, .n_copy = 1 };
        Runner *r = start(f, &p, UINT64_MAX);

        assert_int_equal(f->n_calls, 1);
        assert_int_equal(runner_count(r, JOB_WAIT_DEP), 1);
        /* The work left, by call: what status and the metrics show as pending. */
        assert_int_equal(runner_open(r, CALL_CREATE), 1);
        assert_int_equal(runner_open(r, CALL_COPY), 1);
        assert_int_equal(runner_open(r, CALL_DELETE), 0);
        answer(f, 0, 200, "");
        assert_int_equal(runner_count(r, JOB_QUEUED), 1);   /* released, fed on the next feed */
        assert_int_equal(runner_open(r, CALL_CREATE), 0);
        assert_int_equal(runner_open(r, CALL_COPY), 1);
        assert_int_equal(f->n_calls, 2);
        assert_int_equal(f->calls[1].call, CALL_COPY);
        answer(f, 1, 200, "{}");
        assert_int_equal(runner_count(r, JOB_DONE), 2);
        assert_int_equal(runner_open(r, CALL_COPY), 0);
        assert_int_equal(stored(f, 2).origin, ORIGIN_COPIED);
        finish(f, r);
}

/* A template that fails takes its whole chain of copies with it. */
static void test_failed_template_blocks_chain(void **state) {
        Fixture *f = *state;
        Action a[3] = {
                { .id = G(1), .target = G(9), .kind = ACTION_CREATE, .depends_on = PLAN_NO_DEP },
                { .id = G(2), .target = G(1), .kind = ACTION_COPY, .depends_on = 0 },
                { .id = G(3), .target = G(2), .kind = ACTION_COPY, .depends_on = 1 },
        };
        Plan p = { .actions = a, .n = 3, .n_create = 1, .n_copy = 2 };
        Runner *r = start(f, &p, UINT64_MAX);

        answer(f, 0, 400, "{\"message\":\"bad OU\"}");
        assert_int_equal(runner_count(r, JOB_FAILED), 1);
        assert_int_equal(runner_count(r, JOB_BLOCKED), 2);
        assert_int_equal(runner_open(r, CALL_CREATE) + runner_open(r, CALL_COPY), 0);
        assert_int_equal(runner_stats(r)->blocked, 2);
        assert_int_equal(f->n_calls, 1);
        finish(f, r);
}

/* "Already exists" is confirmed by GET; the history decides adopted or uncertain. */
static void test_exists_confirmed(void **state) {
        Fixture *f = *state;
        Action a[2] = {
                { .id = G(1), .target = G(9), .kind = ACTION_CREATE, .depends_on = PLAN_NO_DEP },
                { .id = G(2), .target = G(9), .kind = ACTION_CREATE, .depends_on = PLAN_NO_DEP },
        };
        Plan p = { .actions = a, .n = 2, .n_create = 2 };
        Runner *r = start(f, &p, UINT64_MAX);

        answer(f, 0, 409, "{\"message\":\"User already exists\"}");
        answer(f, 1, 500, "Internal");
        assert_int_equal(runner_count(r, JOB_CONFIRMING), 1);
        assert_int_equal(f->calls[2].call, CALL_GET_USER);
        answer(f, 2, 200, "{\"o365Id\":\"x\"}");
        assert_int_equal(stored(f, 1).origin, ORIGIN_ADOPTED);
        /* the retry of the 500 comes after its backoff; then "exists" means uncertain */
        assert_int_equal(runner_count(r, JOB_RETRY_WAIT), 1);
        while (f->n_calls < 4)
                (void) uv_run(&f->loop, UV_RUN_ONCE);
        answer(f, 3, 400, "{\"message\":\"Also relates to user duplication error\"}");
        answer(f, 4, 200, "{}");
        assert_int_equal(stored(f, 2).origin, ORIGIN_UNCERTAIN);
        assert_int_equal(runner_stats(r)->adopted, 1);
        assert_int_equal(runner_stats(r)->uncertain, 1);
        finish(f, r);
}

/* A 403 that may mean "no licenses" waits for license usage, which decides. */
static void test_forbidden_asks_license_usage(void **state) {
        Fixture *f = *state;
        Action a[2] = {
                { .id = G(1), .target = G(9), .kind = ACTION_CREATE, .depends_on = PLAN_NO_DEP },
                { .id = G(2), .target = G(8), .kind = ACTION_CREATE, .depends_on = PLAN_NO_DEP },
        };
        Plan p = { .actions = a, .n = 2, .n_create = 2 };
        Runner *r = start(f, &p, UINT64_MAX);

        answer(f, 0, 403, "{\"message\":\"Organization Unit not allowed\"}");
        assert_int_equal(runner_count(r, JOB_LICENSE_WAIT), 1);
        assert_int_equal(f->calls[2].call, CALL_LICENSES);
        answer(f, 2, 200, "{\"licenses\":[{\"name\":\"CC\",\"total\":5,\"used\":5,\"available\":0}]}");
        assert_int_equal(runner_count(r, JOB_PAUSED), 1);
        assert_int_equal(stored(f, 1).status, STATUS_RETRY);
        /* the second create, handed over before the pause, is held back unsent */
        answer(f, 1, 200, "");
        assert_int_equal(runner_count(r, JOB_PAUSED), 2);
        assert_int_equal(store_get_user(f->tenant.store, &a[1].id, &(StoreUser) { 0 }), -ENOENT);
        finish(f, r);
}

static void test_forbidden_with_licenses_left_fails(void **state) {
        Fixture *f = *state;
        Action a[1] = { { .id = G(1), .target = G(9), .kind = ACTION_CREATE, .depends_on = PLAN_NO_DEP } };
        Plan p = { .actions = a, .n = 1, .n_create = 1 };
        Runner *r = start(f, &p, UINT64_MAX);

        answer(f, 0, 403, "Organization Unit not allowed");
        answer(f, 1, 200, "[{\"name\":\"CC\",\"total\":5,\"used\":1,\"available\":4}]");
        assert_int_equal(runner_count(r, JOB_FAILED), 1);
        assert_int_equal(stored(f, 1).status, STATUS_FAILED);
        assert_true(stored_error_has(f, 1, "licenses left"));
        finish(f, r);
}

/* Nimbus asks for a pause longer than apply waits: everything left goes to a later run. */
static void test_long_retry_after_defers(void **state) {
        Fixture *f = *state;
        Action a[3];
        Plan p = { .actions = a, .n = 3, .n_create = 3 };
        Runner *r;

        for (uint8_t i = 0; i < 3; i++)
                a[i] = (Action) { .id = G(i + 1), .target = G(9), .kind = ACTION_CREATE,
                                  .depends_on = PLAN_NO_DEP };
        r = start(f, &p, 60 * USEC_PER_SEC);
        {
                FakeCall *c = &f->calls[0];
                NimbusResult res = { .call = c->call, .http_status = 429, .outcome = OUTCOME_TRANSIENT,
                                     .message = "slow down", .body = "",
                                     .retry_after_usec = 3600 * USEC_PER_SEC };
                assert_int_equal(c->on_send(c->userdata), 0);
                c->answered = true;
                c->done(c->userdata, &res);
        }
        assert_int_equal(runner_count(r, JOB_DEFERRED), 3);
        run_loop(f);
        assert_true(f->finished);
        assert_true(runner_stats(r)->deferred_until >= now_usec() + 3500 * USEC_PER_SEC);
        runner_free(r);
        run_loop(f);
}

/* A stopped run (the roster changed) sends nothing more: queued calls are dropped unsent. */
static void test_stop_drops_unsent(void **state) {
        Fixture *f = *state;
        Action a[2] = {
                { .id = G(1), .target = G(9), .kind = ACTION_CREATE, .depends_on = PLAN_NO_DEP },
                { .id = G(2), .target = G(9), .kind = ACTION_DELETE, .depends_on = PLAN_NO_DEP },
        };
        Plan p = { .actions = a, .n = 2, .n_create = 1, .n_delete = 1 };
        Runner *r = start(f, &p, UINT64_MAX);

        runner_stop(r);
        answer(f, 0, 200, "");   /* on_send refuses: never sent */
        answer(f, 1, 200, "");
        assert_int_equal(runner_count(r, JOB_CANCELLED), 2);
        assert_int_equal(store_get_user(f->tenant.store, &a[0].id, &(StoreUser) { 0 }), -ENOENT);
        finish(f, r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_copy_waits_for_template, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_template_blocks_chain, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exists_confirmed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forbidden_asks_license_usage, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forbidden_with_licenses_left_fails, setup, teardown),
                cmocka_unit_test_setup_teardown(test_long_retry_after_defers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stop_drops_unsent, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
