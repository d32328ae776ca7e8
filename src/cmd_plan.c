/* cmd_plan.c: `validate` and `plan`: read-only commands that show what the roster means.
 * `plan` never sends a mutating call; with --refresh it first checks the users it would act on
 * with GET, which only updates what the store knows. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "desired.h"
#include "plan_report.h"
#include "planner.h"
#include "tenant.h"
#include "verify.h"
#include "store.h"
#include "util.h"

int cmd_validate(Cli *cli) {
        Config *c = NULL;
        Roster *r = NULL;
        int k, files;

        if (cli_load_config(cli, &c) < 0)
                return EXIT_ERROR;
        files = cli_check_config_files(cli, c);
        k = cli_load_roster(cli, c, &r);
        if (k >= 0 && files >= 0)
                printf("%s: config ok; roster ok: %zu users in %zu files\n", cli->config_path, r->n,
                       r->n_files);
        if (k >= 0 && c->n_sources > 0 && !cli->online)
                printf("%s: %zu Entra groups configured (not read: validate --online reads them)\n",
                       cli->config_path, c->n_sources);
        else if (k >= 0 && cli->online)
                k = desired_check_online(cli, c);
        roster_free(r);
        config_free(c);
        return k < 0 || files < 0 ? EXIT_ERROR : EXIT_OK;
}

/* What the store knows; a store that does not exist yet knows nothing. */
static int load_known_users(const Config *c, StoreUser **ret, size_t *ret_n) {
        Store *s = NULL;
        int k;

        k = store_open(c->state_dir, true, &s);
        if (k == -ENOENT) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (k < 0)
                return k;
        k = store_load_users(s, ret, ret_n);
        store_close(s);
        return k;
}

static const char *action_name(const Action *a) {
        return a->kind == ACTION_CREATE ? "create" : a->kind == ACTION_COPY ? "copy" : "delete";
}

/* Streamed, not built as a tree: a million actions must fit in the memory budget. Every value is
 * a GUID, a number or a fixed word, so nothing needs escaping. */
static int print_plan_json(const Plan *p, PlanReport *rep) {
        char id[GUID_STRING_MAX], t[GUID_STRING_MAX], actual[GUID_STRING_MAX];
        bool first = true;
        int k;

        printf("{\"changes\": {\"create\": %zu, \"copy\": %zu, \"delete\": %zu, \"held\": %zu}, "
               "\"drift\": %zu, \"actions\": [", p->n_create, p->n_copy, p->n_delete, p->n_held, p->n_drift);
        for (size_t i = 0; i < p->n; i++) {
                const Action *a = &p->actions[i];

                if (a->kind == ACTION_DRIFT)
                        continue;
                printf("%s{\"action\": \"%s\", \"o365_id\": \"%s\"", first ? "" : ", ", action_name(a),
                       guid_format(&a->id, id));
                first = false;
                if (a->kind == ACTION_CREATE)
                        printf(", \"ou\": \"%s\"}", guid_format(&a->target, t));
                else if (a->kind == ACTION_COPY)
                        printf(", \"template\": \"%s\"}", guid_format(&a->target, t));
                else if (a->kind == ACTION_HELD)
                        printf(", \"held\": true, \"reason\": \"%s\"}",
                               a->uncertain ? "uncertain" : "threshold");
                else
                        printf(", \"held\": false}");
        }
        printf("], \"drift_users\": [");
        first = true;
        for (size_t i = 0; i < p->n; i++) {
                const Action *a = &p->actions[i];

                if (a->kind != ACTION_DRIFT)
                        continue;
                printf("%s{\"o365_id\": \"%s\", \"ou\": \"%s\", \"actual_ou\": \"%s\"}", first ? "" : ", ",
                       guid_format(&a->id, id), guid_format(&a->target, t), guid_format(&a->actual, actual));
                first = false;
        }
        printf("]");
        k = plan_report_print_json_fields(rep);
        printf("}\n");
        return k;
}

/* ---- plan --refresh: GET each user the plan would act on, and remember the answers ---------- */

typedef struct Refresh {
        Tenant *tenant;
        int result;
        char why[sizeof(((VerifyStats *) 0)->first_error)];
} Refresh;

static void refresh_done(void *userdata, Verify *v) {
        Refresh *rf = userdata;
        const VerifyStats *st = verify_stats(v);

        rf->result = st->auth_failed ? -EACCES : st->errors > 0 ? -EIO : 0;
        snprintf(rf->why, sizeof rf->why, "%s", st->first_error);
        verify_free(v);
        tenant_close(rf->tenant);
}

static int refresh_ids(const Plan *p, Guid **ret, size_t *ret_n) {
        Guid *ids = calloc(p->n + 1, sizeof(Guid));
        size_t n = 0;

        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; i < p->n; i++)
                if (p->actions[i].kind != ACTION_DRIFT)
                        ids[n++] = p->actions[i].id;
        *ret = ids;
        *ret_n = n;
        return 0;
}

/* Runs the GETs on a loop of its own; the config is handed to (and freed with) the tenant. */
static int plan_refresh(Cli *cli, const Plan *p, const Roster *r, char *why, size_t why_size) {
        Refresh rf = { .result = -EIO };
        Config *c = NULL;
        Verify *v = NULL;
        Diag d = DIAG_INIT;
        Guid *ids = NULL;
        uv_loop_t loop;
        size_t n = 0;
        int k;

        if (cli_load_config(cli, &c) < 0 || uv_loop_init(&loop) < 0) {
                config_free(c);
                return -EINVAL;
        }
        k = tenant_new(&loop, c, &cli->log, &rf.tenant, &d);
        log_diag(&cli->log, &d, NULL);
        diag_clear(&d);
        if (k >= 0) {
                rf.tenant->give_up_on_auth = true;
                k = refresh_ids(p, &ids, &n);
                if (k >= 0)
                        k = verify_new(rf.tenant, ids, n, r, &v);
                if (k >= 0)
                        verify_start(v, refresh_done, &rf);
                else
                        tenant_close(rf.tenant);
                (void) uv_run(&loop, UV_RUN_DEFAULT);
                k = k < 0 ? k : rf.result;
                snprintf(why, why_size, "%s", rf.why);
        }
        (void) uv_loop_close(&loop);
        return k;
}

static int build_plan(const Config *c, const Roster *r, Plan **ret) {
        StoreUser *users = NULL;
        size_t n = 0;
        int k;

        k = load_known_users(c, &users, &n);
        if (k < 0) {
                fprintf(stderr, "%s: error: cannot read the state store: %s\n", c->state_dir, strerror(-k));
                return k;
        }
        k = plan_build(r, users, n, c, now_usec(), ret);
        store_users_free(users, n);
        return k;
}

/* Users that left the roster are named from what the store remembers: read-only, and a store
 * that does not exist yet knows nothing. */
static int print_plan(Cli *cli, const Config *c, const Roster *r, const Plan *p) {
        PlanReport rep;
        Store *s = NULL;
        int k;

        if (store_open(c->state_dir, true, &s) < 0)
                s = NULL;
        k = plan_report_collect(&rep, p, r, c, s);
        if (k >= 0)
                k = cli->json ? print_plan_json(p, &rep) : plan_report_print(&rep);
        if (k < 0)
                fprintf(stderr, "error: cannot show the plan: %s\n", strerror(-k));
        plan_report_clear(&rep);
        store_close(s);
        return k;
}

int cmd_plan(Cli *cli) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(roster_freep) Roster *r = NULL;
        _cleanup_(plan_freep) Plan *p = NULL;
        size_t stale = 0;
        int k;

        if (cli_load_config(cli, &c) < 0 || cli_load_roster(cli, c, &r) < 0 ||
            desired_add_sources(cli, c, NULL, &r, &stale) < 0)
                return EXIT_ERROR;
        k = build_plan(c, r, &p);
        if (k >= 0 && cli->refresh && plan_has_changes(p)) {
                char why[sizeof(((VerifyStats *) 0)->first_error)] = "";

                k = plan_refresh(cli, p, r, why, sizeof why);
                if (k < 0)
                        fprintf(stderr, "error: plan --refresh: some users could not be checked%s%s\n",
                                *why ? ": " : "", why);
                p = plan_free(p);
                k = k < 0 ? k : build_plan(c, r, &p);
        }
        if (k < 0)
                return EXIT_ERROR;
        if (stale > 0 && !cli->json)
                printf("%zu Entra groups could not be read now; their last complete member lists were "
                       "used (see the messages above).\n", stale);
        if (print_plan(cli, c, r, p) < 0)
                return EXIT_ERROR;
        return plan_has_changes(p) || plan_guard_skipped(p) ? EXIT_PENDING : EXIT_OK;
}
