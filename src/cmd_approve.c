/* cmd_approve.c: `approve-deletes [--dry-run] [--only ID... | --except ID...]` (nimbus-sync(8),
 * COMMANDS): releases the deletes held now, all of them or some, after the admin has reviewed
 * them. The held set is read and approved in one store transaction, so exactly what was shown
 * (or named) is approved. Every approval is a journal entry naming the user and who ran it. */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "cli.h"
#include "planner.h"
#include "review.h"
#include "store.h"
#include "util.h"

typedef struct Approval {
        Cli *cli;
        Config *config;
        Store *store;
        StoreUser *holds;       /* every user with a hold, sorted by id */
        size_t n_holds, n_held; /* n_held: of them HELD (not APPROVED yet) */
        Guid *named;            /* --only/--except IDs, sorted */
        size_t n_named;
        Guid *chosen;           /* the held users to approve */
        size_t n_chosen;
        Guid *left;             /* the held users --only/--except leave out: they stay held */
        size_t n_left;
        LogActor actor;
} Approval;

static void approval_clear(Approval *a) {
        store_users_free(a->holds, a->n_holds);
        free(a->named);
        free(a->chosen);
        free(a->left);
        store_close(a->store);
        config_free(a->config);
}

static int id_cmp(const void *a, const void *b) {
        return guid_cmp(a, b);
}

static int hold_cmp(const void *key, const void *elem) {
        return guid_cmp(key, &((const StoreUser *) elem)->id);
}

/* --only/--except take IDs; without either there must be none. */
static int parse_ids(Approval *a) {
        Cli *cli = a->cli;

        if (cli->only && cli->except) {
                fprintf(stderr, "error: approve-deletes: --only and --except exclude each other\n");
                return -EINVAL;
        }
        if ((cli->only || cli->except) && cli->n_args == 0) {
                fprintf(stderr, "error: approve-deletes: --%s needs the O365 IDs of held deletes\n",
                        cli->only ? "only" : "except");
                return -EINVAL;
        }
        if (!cli->only && !cli->except && cli->n_args > 0) {
                fprintf(stderr, "error: approve-deletes: unexpected argument \"%s\" (IDs go with --only "
                        "or --except)\n", cli->args[0]);
                return -EINVAL;
        }
        a->named = calloc((size_t) cli->n_args + 1, sizeof(Guid));
        if (!a->named)
                return -ENOMEM;
        for (int i = 0; i < cli->n_args; i++)
                if (guid_parse(cli->args[i], strlen(cli->args[i]), &a->named[a->n_named++]) < 0) {
                        fprintf(stderr, "error: approve-deletes: \"%s\" is not an O365 ID (a GUID)\n",
                                cli->args[i]);
                        return -EINVAL;
                }
        qsort(a->named, a->n_named, sizeof(Guid), id_cmp);
        return 0;
}

static const StoreUser *find_hold(const Approval *a, const Guid *id) {
        const StoreUser *u = bsearch(id, a->holds, a->n_holds, sizeof(StoreUser), hold_cmp);

        return u && (u->hold == HOLD_HELD || u->hold == HOLD_KEPT) ? u : NULL;
}

/* A named ID that is not held is an error, whichever option named it: a typo in --except must
 * not approve the very user it meant to keep. */
static int check_named(const Approval *a) {
        char id[GUID_STRING_MAX];
        size_t bad = 0;

        for (size_t i = 0; i < a->n_named; i++)
                if (!find_hold(a, &a->named[i])) {
                        fprintf(stderr, "error: approve-deletes: %s is not a held delete\n",
                                guid_format(&a->named[i], id));
                        bad++;
                }
        if (bad > 0)
                fprintf(stderr, "Nothing was approved. `nimbus-sync approve-deletes --dry-run` lists the "
                        "held deletes.\n");
        return bad > 0 ? -ESRCH : 0;
}

static bool is_named(const Approval *a, const Guid *id) {
        return bsearch(id, a->named, a->n_named, sizeof(Guid), id_cmp) != NULL;
}

/* The held set, narrowed by --only or --except. */
static int choose(Approval *a) {
        int r = store_load_holds(a->store, &a->holds, &a->n_holds);

        if (r < 0)
                return r;
        if ((r = check_named(a)) < 0)
                return r;
        a->chosen = calloc(a->n_holds + 1, sizeof(Guid));
        a->left = calloc(a->n_holds + 1, sizeof(Guid));
        if (!a->chosen || !a->left)
                return -ENOMEM;
        for (size_t i = 0; i < a->n_holds; i++) {
                const StoreUser *u = &a->holds[i];

                if (u->hold != HOLD_HELD && u->hold != HOLD_KEPT)
                        continue;
                a->n_held++;
                if ((a->cli->only && !is_named(a, &u->id)) || (a->cli->except && is_named(a, &u->id)))
                        a->left[a->n_left++] = u->id;
                else
                        a->chosen[a->n_chosen++] = u->id;
        }
        return 0;
}

static Guid user_ou(const StoreUser *u) {
        return !guid_is_null(&u->ou) || u->target_kind != TARGET_OU ? u->ou : u->target;
}

/* --dry-run: what would be approved, as plan shows held deletes. */
static int print_review(Approval *a) {
        Review rv;
        char label[2 * AUDIT_NAME_MAX + 4];
        int r = 0;

        review_init(&rv, a->config);
        for (size_t i = 0; r >= 0 && i < a->n_chosen; i++) {
                const StoreUser *u = find_hold(a, &a->chosen[i]);
                Guid ou = user_ou(u);
                AuditUser who;

                audit_user_describe(a->store, NULL, NULL, &u->id, &ou, &who);
                r = review_add(&rv, &u->id, &who.ou, audit_user_label(&who, label, sizeof(label)),
                               audit_user_source(&who, a->config->roster_dir), plan_user_uncertain(u));
        }
        if (r >= 0)
                r = review_print(&rv, stdout);
        review_clear(&rv);
        if (r >= 0)
                printf("approve-deletes would approve %zu of %zu held deletes (--dry-run: nothing was "
                       "approved).\n", a->n_chosen, a->n_held);
        return r;
}

static const char *actor_text(const LogActor *who, char *buf, size_t size) {
        snprintf(buf, size, "uid %u, login uid %s%s%s", who->uid, *who->login_uid ? who->login_uid : "unknown",
                 who->sudo_user ? ", sudo from " : "", who->sudo_user ? who->sudo_user : "");
        return buf;
}

/* The audit trail goes to the journal when one listens, not to the terminal, which keeps its one
 * line; without a journal, the log target decides. */
static Logger audit_logger(const Cli *cli) {
        return cli->log.tee ? (Logger) { .journal = true, .level = cli->log.level } : cli->log;
}

static void log_one(const Approval *a, const Logger *l, const StoreUser *u, const char *by) {
        char id[GUID_STRING_MAX], label[2 * AUDIT_NAME_MAX + 4], ou_text[GUID_STRING_MAX + 64];
        LogEvent ev = { .message_id = MID_DELETE_APPROVED, .action = "delete", .result = "approved",
                        .actor = &a->actor };
        Guid ou = user_ou(u);
        AuditUser who;

        audit_user_describe(a->store, NULL, NULL, &u->id, &ou, &who);
        audit_user_event(&who, &ev);
        audit_user_label(&who, label, sizeof(label));
        log_event(l, LOG_NOTICE, &ev, "delete approved: %s%s%s%s in OU %s, last listed by %s; approved "
                  "by %s", guid_format(&u->id, id), *label ? " (" : "", label, *label ? ")" : "",
                  audit_ou_text(a->config, &who.ou, ou_text, sizeof(ou_text)),
                  audit_user_source(&who, a->config->roster_dir), by);
}

static void log_approvals(const Approval *a) {
        Logger l = audit_logger(a->cli);
        LogEvent ev = { .message_id = MID_DELETE_APPROVED, .action = "delete", .result = "approved",
                        .actor = &a->actor };
        char by[128];

        actor_text(&a->actor, by, sizeof(by));
        for (size_t i = 0; i < a->n_chosen && i < AUDIT_USERS_MAX; i++)
                log_one(a, &l, find_hold(a, &a->chosen[i]), by);
        if (a->n_chosen > AUDIT_USERS_MAX)
                log_event(&l, LOG_NOTICE, &ev, "approve-deletes: %zu more approved deletes, not logged one "
                          "by one", a->n_chosen - AUDIT_USERS_MAX);
        log_event(&l, LOG_NOTICE, &ev, "approve-deletes: %zu of %zu held deletes approved by %s",
                  a->n_chosen, a->n_held, by);
}

/* In one transaction: the held set read, narrowed, approved. A dry run only reads. */
static int approve(Approval *a) {
        size_t n = 0;
        int r;

        if (a->cli->dry_run)
                return choose(a);
        if ((r = store_begin(a->store)) < 0)
                return r;
        r = choose(a);
        if (r >= 0 && a->n_chosen > 0)
                r = store_approve_ids(a->store, a->chosen, a->n_chosen, &n);
        /* Reviewed and not approved: held until approved, whatever the thresholds say next. */
        if (r >= 0 && a->n_chosen > 0)
                r = store_keep_ids(a->store, a->left, a->n_left);
        if (r >= 0)
                r = store_commit(a->store);
        else
                (void) store_rollback(a->store);
        return r;
}

static int report(Approval *a, int r) {
        if (r == -ESRCH)
                return EXIT_ERROR;      /* said already */
        if (r < 0) {
                fprintf(stderr, "%s: error: cannot %s the state store: %s\n", a->config->state_dir,
                        a->cli->dry_run ? "read" : "update", strerror(-r));
                return EXIT_ERROR;
        }
        if (a->n_held == 0) {
                fprintf(stderr, "No deletes are held; nothing to approve.\n");
                return EXIT_ERROR;
        }
        if (a->cli->dry_run)
                return print_review(a) < 0 ? EXIT_ERROR : EXIT_OK;
        if (a->n_chosen == 0) {
                fprintf(stderr, "Nothing approved: --except names every held delete.\n");
                return EXIT_ERROR;
        }
        log_approvals(a);
        printf("Approved %zu held deletes; the next run carries them out (users back in the roster "
               "by then are kept).\n", a->n_chosen);
        if (a->n_chosen < a->n_held)
                printf("%zu held deletes stay held; approve them later, or put them back in the roster.\n",
                       a->n_held - a->n_chosen);
        return EXIT_OK;
}

int cmd_approve_deletes(Cli *cli) {
        Approval a = { .cli = cli };
        int r;

        if (parse_ids(&a) < 0 || cli_load_config(cli, &a.config) < 0) {
                approval_clear(&a);
                return EXIT_ERROR;
        }
        if (!cli->dry_run)
                log_tee_journal(&cli->log, a.config->log_target);
        log_actor_current(&a.actor);
        r = store_open(a.config->state_dir, cli->dry_run, &a.store);
        if (r == -ENOENT && cli->dry_run)
                r = 0;          /* no store yet: nothing is held */
        else if (r >= 0)
                r = approve(&a);
        r = report(&a, r);
        approval_clear(&a);
        return r;
}
