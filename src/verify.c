/* verify.c: GET sweeps that refresh the store's knowledge (see verify.h). */
#include "verify.h"

#include <string.h>

#include "util.h"

#define VERIFY_AHEAD 4  /* GETs handed to the tenant at once: keeps its queue short */

struct Verify {
        Tenant *tenant;
        const Roster *roster;
        Guid *ids;
        size_t n, next, outstanding;
        bool stopping, finished;
        VerifyStats stats;
        VerifyDoneFn done;
        void *userdata;
};

typedef struct VerifyCall {
        Verify *verify;
        Guid id;
} VerifyCall;

static void feed(Verify *v);

static void log_missing(const Verify *v, const Guid *id) {
        char s[GUID_STRING_MAX];
        LogEvent ev = { .message_id = MID_USER_ACTION, .action = "verify", .result = "gone",
                        .o365_id = id, .http_status = 404 };

        log_event(v->tenant->log, LOG_WARNING, &ev, "verify %s: not in Nimbus any more (deleted "
                  "outside nimbus-sync?); it is created again if the roster lists it",
                  guid_format(id, s));
}

/* Remember the answer: present (and where), or absent. */
static void record(Verify *v, const Guid *id, const NimbusResult *res) {
        Store *s = v->tenant->store;
        NimbusUser nu = { 0 };
        StoreUser u;

        if (store_get_user(s, id, &u) < 0)
                u = (StoreUser) { .id = *id };
        if (res->outcome == OUTCOME_GONE) {
                if (u.presence == PRESENCE_PRESENT)
                        log_missing(v, id);
                u.presence = PRESENCE_ABSENT;
                v->stats.missing++;
        } else {
                u.presence = PRESENCE_PRESENT;
                if (u.origin == ORIGIN_NONE && v->roster && roster_find(v->roster, id))
                        u.origin = ORIGIN_ADOPTED;   /* listed, and there before we acted */
                if (nimbus_parse_user(res->body, res->body_len, &nu) >= 0 && !guid_is_null(&nu.ou)) {
                        v->stats.moved += !guid_is_null(&u.ou) && !guid_eq(&u.ou, &nu.ou);
                        u.ou = nu.ou;
                }
                nimbus_user_clear(&nu);
                v->stats.present++;
        }
        u.updated_usec = now_usec();
        if (store_put_user(s, &u) < 0)
                v->stats.errors++;
        store_user_clear(&u);
}

static void maybe_finish(Verify *v) {
        if (v->finished || v->outstanding > 0 || (!v->stopping && v->next < v->n))
                return;
        v->finished = true;
        v->done(v->userdata, v);   /* may free v: nothing after this */
}

static void on_answer(void *userdata, const NimbusResult *res) {
        VerifyCall *c = userdata;
        Verify *v = c->verify;

        v->outstanding--;
        if (res->outcome == OUTCOME_OK || res->outcome == OUTCOME_GONE) {
                v->stats.checked++;
                record(v, &c->id, res);
        } else if (res->error != -ECANCELED) {
                v->stats.errors++;
                v->stats.auth_failed |= res->outcome == OUTCOME_AUTH;
        }
        free(c);
        feed(v);
        maybe_finish(v);
}

static void feed(Verify *v) {
        while (!v->stopping && v->outstanding < VERIFY_AHEAD && v->next < v->n) {
                VerifyCall *c = malloc(sizeof(*c));

                if (!c) {
                        v->stopping = true;
                        break;
                }
                *c = (VerifyCall) { .verify = v, .id = v->ids[v->next++] };
                if (tenant_call(v->tenant, PRIO_VERIFY, CALL_GET_USER, &c->id, NULL, NULL, on_answer, c) < 0) {
                        free(c);
                        v->stopping = true;
                        break;
                }
                v->outstanding++;
        }
}

int verify_new(Tenant *t, Guid *ids, size_t n, const Roster *roster, Verify **ret) {
        Verify *v = calloc(1, sizeof(*v));

        if (!v) {
                free(ids);
                return -ENOMEM;
        }
        *v = (Verify) { .tenant = t, .ids = ids, .n = n, .roster = roster };
        *ret = v;
        return 0;
}

void verify_start(Verify *v, VerifyDoneFn done, void *userdata) {
        v->done = done;
        v->userdata = userdata;
        feed(v);
        maybe_finish(v);
}

void verify_stop(Verify *v) {
        v->stopping = true;
        maybe_finish(v);
}

const VerifyStats *verify_stats(const Verify *v) {
        return &v->stats;
}

Verify *verify_free(Verify *v) {
        if (v) {
                free(v->ids);
                free(v);
        }
        return NULL;
}
