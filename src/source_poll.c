/* source_poll.c: sweeps over the directory sources (see source_poll.h). One timer serves both the
 * start of a sweep and the wait until the next one; one Graph client reads one group at a time. */
#include "source_poll.h"

#include <string.h>

#include "backoff.h"
#include "credential.h"
#include "graph_client.h"
#include "util.h"

struct SourcePoller {
        SourceSet *set;
        Store *store;
        const Logger *log;
        GraphClient *graph;
        uv_timer_t timer;
        size_t next;             /* the source to read next in the sweep */
        size_t changed;          /* lists changed so far in the sweep */
        bool sweeping, periodic, closing;
        SourceSweepDoneFn done;
        void *userdata;
};

static void read_next(SourcePoller *p);

static void on_timer(uv_timer_t *t) {
        SourcePoller *p = t->data;

        if (!p->sweeping) {
                p->sweeping = true;
                p->next = p->changed = 0;
        }
        read_next(p);
}

/* interval ± 10 %, so that hosts started together drift apart. */
static void arm_next_sweep(SourcePoller *p) {
        uint64_t interval = p->set->config->source_interval_usec;
        uint64_t jitter = interval / 5 > 0 ? backoff_random() % (interval / 5) : 0;
        uint64_t delay = interval - interval / 10 + jitter;

        (void) uv_timer_start(&p->timer, on_timer, delay / USEC_PER_MSEC + 1, 0);
}

static void sweep_end(SourcePoller *p) {
        p->sweeping = false;
        if (p->periodic)
                arm_next_sweep(p);
        p->done(p->userdata, p->changed);
}

static void read_done(void *userdata, const Guid *group, GraphListing *listing, const GraphFailure *failure) {
        SourcePoller *p = userdata;
        int r;

        if (p->closing) {
                graph_listing_free(listing);
                return;
        }
        r = source_set_result(p->set, p->next, listing, failure, p->store, p->log);
        if (r < 0)
                log_msg(p->log, LOG_ERR, "%s: cannot record the result: %s", p->set->sources[p->next].label,
                        strerror(-r));
        p->changed += r > 0;
        p->next++;
        read_next(p);
}

static void read_next(SourcePoller *p) {
        int r;

        while (p->next < p->set->n) {
                r = graph_client_read(p->graph, &p->set->sources[p->next].config->group, read_done, p);
                if (r >= 0)
                        return;
                (void) source_set_result(p->set, p->next, NULL, &(GraphFailure) { .outcome = GRAPH_FAILED,
                                         .message = strerror(-r) }, p->store, p->log);
                p->next++;
        }
        sweep_end(p);
}

int source_poller_new(uv_loop_t *loop, SourceSet *set, Store *store, const Logger *log, SourcePoller **ret,
                      Diag *diag) {
        ClientCredential cred = { 0 };
        SourcePoller *p = calloc(1, sizeof(*p));
        int r;

        if (!p)
                return -ENOMEM;
        *p = (SourcePoller) { .set = set, .store = store, .log = log };
        r = credential_read(set->config, &cred, diag);
        if (r >= 0)
                r = graph_client_new(loop, set->config, &cred, &p->graph, diag);
        client_credential_clear(&cred);
        if (r >= 0 && uv_timer_init(loop, &p->timer) < 0) {
                graph_client_close(p->graph);
                r = -EIO;
        }
        if (r < 0) {
                free(p);
                return r;
        }
        p->timer.data = p;
        *ret = p;
        return 0;
}

static void poller_closed(uv_handle_t *h) {
        free(h->data);
}

void source_poller_close(SourcePoller *p) {
        if (!p || p->closing)
                return;
        p->closing = true;
        graph_client_close(p->graph);
        (void) uv_timer_stop(&p->timer);
        uv_close((uv_handle_t *) &p->timer, poller_closed);
}

int source_poller_sweep(SourcePoller *p, SourceSweepDoneFn done, void *userdata) {
        if (p->closing)
                return -ESHUTDOWN;
        if (p->sweeping)
                return -EBUSY;
        p->done = done;
        p->userdata = userdata;
        return uv_timer_start(&p->timer, on_timer, 0, 0) < 0 ? -EIO : 0;
}

int source_poller_start(SourcePoller *p, SourceSweepDoneFn done, void *userdata) {
        p->periodic = true;
        return source_poller_sweep(p, done, userdata);
}

/* ---- one sweep for the commands that run once ------------------------------------------------ */

static void refresh_done(void *userdata, size_t changed) {
        source_poller_close(userdata);
}

#define REFRESH_MAX_WAIT (60 * USEC_PER_SEC)

int source_refresh(SourceSet *set, Store *store, const Logger *log, Diag *diag) {
        SourcePoller *p = NULL;
        uv_loop_t loop;
        int r;

        if (uv_loop_init(&loop) < 0)
                return -EIO;
        r = source_poller_new(&loop, set, store, log, &p, diag);
        if (r >= 0) {
                /* By hand, a group that asks for a long pause keeps its last list instead. */
                graph_client_set_max_wait(p->graph, REFRESH_MAX_WAIT);
                r = source_poller_sweep(p, refresh_done, p);
        }
        if (r < 0)
                source_poller_close(p);
        (void) uv_run(&loop, UV_RUN_DEFAULT);
        (void) uv_loop_close(&loop);
        return r;
}
