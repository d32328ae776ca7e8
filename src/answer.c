/* answer.c: the meaning of one Nimbus answer for one stored user (see answer.h). */
#include "answer.h"

#include "util.h"

static bool is_ours(uint8_t origin) {
        return origin == ORIGIN_CREATED || origin == ORIGIN_COPIED;
}

/* A definite answer proves this attempt did nothing; only an unknown outcome earlier keeps the
 * intent, so a later "already exists" is still read as uncertain. */
static void settle_intent(StoreUser *u, bool maybe_sent) {
        if (!maybe_sent)
                u->intent = INTENT_NONE;
}

static void set_ok(StoreUser *u, const AnswerInput *in, AnswerResult *ret) {
        u->intent = INTENT_NONE;
        u->status = STATUS_OK;
        u->attempts = 0;
        u->next_attempt_usec = 0;
        u->http_status = (uint16_t) in->http_status;
        ret->step = STEP_DONE;
        ret->maybe_sent = false;
        ret->error = NULL;
}

/* "Already exists", confirmed by GET. Ours stays ours; otherwise an earlier attempt with an
 * unknown outcome makes it uncertain, and only a clean history makes it adopted. */
static void exists_confirmed(StoreUser *u, const AnswerInput *in, AnswerResult *ret) {
        bool ours = is_ours(u->origin);

        if (!ours)
                u->origin = in->maybe_sent || u->origin == ORIGIN_UNCERTAIN ? ORIGIN_UNCERTAIN
                                                                             : ORIGIN_ADOPTED;
        u->presence = PRESENCE_PRESENT;
        if (!guid_is_null(&in->actual_ou))
                u->ou = in->actual_ou;
        set_ok(u, in, ret);
        ret->result = "exists";
        ret->detail = ours ? "already exists, and was created by nimbus-sync: stays managed" :
                      u->origin == ORIGIN_UNCERTAIN ?
                      "already exists after an attempt whose outcome is unknown: uncertain, "
                      "never deleted without approve-deletes" : "already exists, adopted";
}

static void created(StoreUser *u, const AnswerInput *in, AnswerResult *ret) {
        u->origin = in->call == CALL_CREATE ? ORIGIN_CREATED : ORIGIN_COPIED;
        u->presence = PRESENCE_PRESENT;
        u->ou = in->call == CALL_CREATE ? in->target : (Guid) { { 0 } };
        set_ok(u, in, ret);
        ret->result = "ok";
        ret->detail = "ok";
}

static void deleted(StoreUser *u, const AnswerInput *in, AnswerResult *ret) {
        bool gone = in->outcome == OUTCOME_GONE;

        u->presence = PRESENCE_ABSENT;
        u->hold = HOLD_NONE;
        set_ok(u, in, ret);
        ret->result = gone ? "gone" : "ok";
        ret->detail = gone ? "already gone" : "ok";
}

/* The request may have reached Nimbus unless the answer proves it was not processed. */
static void transient(StoreUser *u, const AnswerInput *in, AnswerResult *ret) {
        bool quarantine = (unsigned) in->attempts + 1 >= in->max_attempts;

        ret->maybe_sent = in->maybe_sent || !in->unprocessed;
        settle_intent(u, ret->maybe_sent);
        u->status = quarantine ? STATUS_QUARANTINED : STATUS_RETRY;
        u->attempts = (uint16_t) (in->attempts + 1);
        u->http_status = (uint16_t) in->http_status;
        u->next_attempt_usec = in->now_usec + (quarantine ? in->quarantine_usec : in->retry_delay_usec);
        ret->step = quarantine ? STEP_QUARANTINE : STEP_RETRY;
        ret->result = quarantine ? "quarantined" : "retry";
        ret->detail = in->message;
        ret->error = in->message;
}

/* A definite "no" (for the confirming GET: "exists" was not true after all). */
static void refused(StoreUser *u, const AnswerInput *in, AnswerResult *ret, bool licenses) {
        ret->maybe_sent = in->maybe_sent;
        settle_intent(u, in->maybe_sent);
        u->status = licenses ? STATUS_RETRY : STATUS_FAILED;
        u->http_status = (uint16_t) in->http_status;
        u->next_attempt_usec = in->now_usec + (licenses ? in->no_license_retry_usec
                                                        : in->failed_retry_usec);
        ret->step = licenses ? STEP_NO_LICENSES : STEP_FAILED;
        ret->result = licenses ? "skipped" : "failed";
        ret->detail = in->message;
        ret->error = in->message;
}

/* The tenant refused the request itself: nothing happened to this user, the record stays. */
static void stopped(const AnswerInput *in, AnswerResult *ret) {
        ret->step = STEP_STOP;
        ret->store = false;
        ret->maybe_sent = in->maybe_sent;
        ret->result = "cancelled";
        ret->detail = in->message;
}

static void mutation_answer(StoreUser *u, const AnswerInput *in, AnswerResult *ret) {
        bool del = in->call == CALL_DELETE;

        switch (in->outcome) {
        case OUTCOME_OK:
                del ? deleted(u, in, ret) : created(u, in, ret);
                return;
        case OUTCOME_GONE:
                del ? deleted(u, in, ret) : refused(u, in, ret, false);
                return;
        case OUTCOME_EXISTS:
                ret->step = STEP_CONFIRM;
                ret->store = false;
                ret->result = "exists";
                ret->detail = in->message;
                return;
        case OUTCOME_TRANSIENT:
        case OUTCOME_NOT_API:
                transient(u, in, ret);
                return;
        case OUTCOME_NO_LICENSES:
                refused(u, in, ret, !del);
                return;
        case OUTCOME_FORBIDDEN:
                ret->step = STEP_CHECK_LICENSES;
                ret->store = false;
                ret->result = "forbidden";
                ret->detail = in->message;
                return;
        case OUTCOME_AUTH:
        case OUTCOME_REDIRECT:
                stopped(in, ret);
                return;
        case OUTCOME_PERMANENT:
        default:
                refused(u, in, ret, false);
                return;
        }
}

/* The GET after "already exists": present confirms it; gone means the claim was wrong. */
static void confirm_answer(StoreUser *u, const AnswerInput *in, AnswerResult *ret) {
        switch (in->outcome) {
        case OUTCOME_OK:
                exists_confirmed(u, in, ret);
                return;
        case OUTCOME_TRANSIENT:
        case OUTCOME_NOT_API:
                transient(u, in, ret);
                return;
        case OUTCOME_AUTH:
        case OUTCOME_REDIRECT:
                stopped(in, ret);
                return;
        default:
                refused(u, in, ret, false);
                return;
        }
}

void answer_apply(StoreUser *u, const AnswerInput *in, AnswerResult *ret) {
        *ret = (AnswerResult) { .store = true, .maybe_sent = in->maybe_sent };
        if (in->confirming)
                confirm_answer(u, in, ret);
        else
                mutation_answer(u, in, ret);
}

bool answer_verify(StoreUser *u, Outcome outcome, const Guid *actual_ou, bool listed) {
        bool pending = u->intent == INTENT_CREATE || u->intent == INTENT_COPY;

        if (outcome == OUTCOME_GONE) {
                u->presence = PRESENCE_ABSENT;
                return true;
        }
        if (outcome != OUTCOME_OK)
                return false;
        u->presence = PRESENCE_PRESENT;
        /* Present before we could prove anything: a create of ours with an unknown outcome may
         * have made it (uncertain); else, if listed, it was there before us (adopted). Ours
         * stays ours, and a user we never listed nor sent anything for stays untouched. */
        if (u->origin == ORIGIN_NONE && pending)
                u->origin = ORIGIN_UNCERTAIN;
        else if (u->origin == ORIGIN_NONE && listed)
                u->origin = ORIGIN_ADOPTED;
        if (actual_ou && !guid_is_null(actual_ou))
                u->ou = *actual_ou;
        return true;
}
