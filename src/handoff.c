/* handoff.c: `apply --user ID` beside a running daemon, apply's side (see handoff.h). It follows
 * the request in the store with a timer: no sleep, and SIGINT/SIGTERM end the wait at once. */
#include "handoff.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

#define FOLLOW_INTERVAL_MS 100
#define FOLLOW_WORD_USEC (30 * USEC_PER_SEC)   /* a line this often while the daemon works */

typedef struct Follow {
        Cli *cli;
        Store *store;
        uv_loop_t loop;
        uv_timer_t timer;
        uv_signal_t sigint, sigterm;
        StoreRequest req;        /* as last read */
        long pid;
        char id[GUID_STRING_MAX];
        uint64_t started, last_word; /* monotonic */
        int result;
} Follow;

static void follow_end(Follow *f, int result) {
        f->result = result;
        uv_close((uv_handle_t *) &f->timer, NULL);
        uv_close((uv_handle_t *) &f->sigint, NULL);
        uv_close((uv_handle_t *) &f->sigterm, NULL);
}

/* The daemon has not done it: unless it already took it, it never will. */
static void withdraw(Follow *f) {
        if (f->req.state == REQUEST_PENDING)
                (void) store_request_remove(f->store, f->req.id);
}

static bool daemon_alive(long pid) {
        return kill((pid_t) pid, 0) == 0 || errno == EPERM;
}

static void report(Follow *f) {
        _cleanup_free_ char *error = NULL;
        StoreUser u;

        if (store_get_user(f->store, &f->req.user, &u) >= 0) {
                if (u.status != STATUS_OK)
                        error = TAKE_PTR(u.error);
                store_user_clear(&u);
        }
        log_msg(&f->cli->log, f->req.result == EXIT_OK ? LOG_NOTICE : LOG_WARNING,
                "%s: %s%s%s (by the daemon, pid %ld)", f->id, f->req.message, error ? ": " : "",
                error ? error : "", f->pid);
}

/* Still waiting: say so now and then, and give up on a daemon that does not take the request. */
static void waiting(Follow *f, uint64_t now) {
        if (f->req.state == REQUEST_PENDING && now - f->started > HANDOFF_PICKUP_TIMEOUT_USEC) {
                withdraw(f);
                log_msg(&f->cli->log, LOG_ERR, "the daemon (pid %ld) did not take the request for %s "
                        "within %" PRIu64 " s; see `systemctl status nimbus-sync` and `nimbus-sync status`",
                        f->pid, f->id, HANDOFF_PICKUP_TIMEOUT_USEC / USEC_PER_SEC);
                follow_end(f, EXIT_ERROR);
                return;
        }
        if (now - f->last_word >= FOLLOW_WORD_USEC) {
                f->last_word = now;
                log_msg(&f->cli->log, LOG_NOTICE, "still waiting for the daemon (pid %ld) to provision "
                        "%s; see `nimbus-sync status`", f->pid, f->id);
        }
}

static void on_tick(uv_timer_t *t) {
        Follow *f = t->data;
        uint8_t before = f->req.state;
        int k = store_request_get(f->store, f->req.id, &f->req);

        if (k < 0) {
                log_msg(&f->cli->log, LOG_ERR, "lost track of the request for %s: %s", f->id, strerror(-k));
                follow_end(f, EXIT_ERROR);
        } else if (f->req.state == REQUEST_DONE) {
                report(f);
                follow_end(f, f->req.result);
        } else if (!daemon_alive(f->pid)) {
                withdraw(f);
                log_msg(&f->cli->log, LOG_ERR, "the daemon (pid %ld) stopped before it had provisioned "
                        "%s; run the command again", f->pid, f->id);
                follow_end(f, EXIT_ERROR);
        } else {
                if (f->req.state == REQUEST_ACCEPTED && before == REQUEST_PENDING)
                        log_msg(&f->cli->log, LOG_INFO, "the daemon (pid %ld) is provisioning %s", f->pid, f->id);
                waiting(f, mono_usec());
        }
}

static void on_signal(uv_signal_t *s, int signum) {
        Follow *f = s->data;

        withdraw(f);
        log_msg(&f->cli->log, LOG_NOTICE, "received %s: no longer following; %s", strsignal(signum),
                f->req.state == REQUEST_PENDING ? "the request is withdrawn"
                                                : "the daemon still provisions the user");
        follow_end(f, EXIT_ERROR);
}

static int follow_start(Follow *f) {
        if (uv_timer_init(&f->loop, &f->timer) < 0 || uv_signal_init(&f->loop, &f->sigint) < 0 ||
            uv_signal_init(&f->loop, &f->sigterm) < 0)
                return -EIO;
        f->timer.data = f->sigint.data = f->sigterm.data = f;
        if (uv_signal_start(&f->sigint, on_signal, SIGINT) < 0 ||
            uv_signal_start(&f->sigterm, on_signal, SIGTERM) < 0 ||
            uv_timer_start(&f->timer, on_tick, FOLLOW_INTERVAL_MS, FOLLOW_INTERVAL_MS) < 0)
                return -EIO;
        return 0;
}

static int hand_over(Follow *f, const Config *c, const Guid *user) {
        int k = store_open(c->state_dir, false, &f->store);

        if (k >= 0)
                k = store_request_add(f->store, user, now_usec(), &f->req.id);
        if (k < 0) {
                log_msg(&f->cli->log, LOG_ERR, "%s: cannot hand the request to the daemon: %s",
                        c->state_dir, strerror(-k));
                return k;
        }
        f->req.user = *user;
        /* Wakes it at once; should it not let us, its poll finds the request within seconds. */
        (void) kill((pid_t) f->pid, HANDOFF_WAKE_SIGNAL);
        log_msg(&f->cli->log, LOG_NOTICE, "the daemon (pid %ld) is running and changes the tenant "
                "itself: %s is handed to it, to provision now", f->pid, f->id);
        return 0;
}

static void close_walk(uv_handle_t *h, void *arg) {
        if (!uv_is_closing(h))
                uv_close(h, NULL);
}

int handoff_apply_user(Cli *cli, const Config *c, const Guid *user, long daemon_pid) {
        Follow f = { .cli = cli, .pid = daemon_pid, .result = EXIT_ERROR };
        bool loop = false;

        guid_format(user, f.id);
        f.started = f.last_word = mono_usec();
        if (uv_loop_init(&f.loop) >= 0) {
                loop = true;
                if (hand_over(&f, c, user) >= 0 && follow_start(&f) >= 0)
                        (void) uv_run(&f.loop, UV_RUN_DEFAULT);
                else if (f.store)
                        withdraw(&f);
                if (uv_loop_alive(&f.loop)) {   /* start failed half-way: close what was opened */
                        uv_walk(&f.loop, close_walk, NULL);
                        (void) uv_run(&f.loop, UV_RUN_DEFAULT);
                }
        }
        if (loop)
                (void) uv_loop_close(&f.loop);
        store_close(f.store);
        return f.result;
}

/* What a request's run did, as "1 created, 1 copied": the counts of RunnerStats, in words. */
void handoff_outcome(const Plan *p, const RunnerStats *st, char *buf, size_t size) {
        const struct { size_t n; const char *what; } parts[] = {
                { st->created, "created" }, { st->copied, "copied" }, { st->adopted, "adopted (it existed already)" },
                { st->deleted, "deleted" }, { st->gone, "already gone" }, { st->failed, "failed" },
                { st->quarantined, "quarantined" }, { st->held + p->n_held, "delete held for approve-deletes" },
                { st->paused, "waiting for licenses" }, { st->deferred, "waiting for its retry time" },
                { st->blocked, "waiting for its template" }, { st->cancelled, "not sent" },
        };
        size_t len = 0;

        buf[0] = 0;
        if (st->auth_failed)
                len += (size_t) snprintf(buf, size, "Nimbus refused our credentials");
        for (size_t i = 0; i < ELEMENTSOF(parts) && len < size; i++)
                if (parts[i].n > 0)
                        len += (size_t) snprintf(buf + len, size - len, "%s%zu %s", len ? ", " : "",
                                                 parts[i].n, parts[i].what);
        if (len == 0)
                snprintf(buf, size, "nothing to do (in sync with the roster, or waiting for its retry "
                         "time: see `nimbus-sync status`)");
}
