/* test_answer.c: the answer → user-state rule (answer.h) over tables of (stored user, attempt
 * history, answer) → (new record, next step). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "answer.h"
#include "util.h"

#define NOW (UINT64_C(1700000000) * USEC_PER_SEC)
#define DELAY (7 * USEC_PER_SEC)

typedef struct Row {
        const char *name;
        /* the user as stored, and this attempt's history */
        uint8_t origin, presence, intent;
        NimbusCall call;
        bool confirming, maybe_sent;
        uint16_t attempts;
        /* the answer */
        Outcome outcome;
        long status;
        /* expected */
        AnswerStep step;
        uint8_t want_origin, want_presence, want_intent, want_status;
        bool want_maybe_sent;
} Row;

#define O_NONE ORIGIN_NONE
#define O_CRE ORIGIN_CREATED
#define O_COP ORIGIN_COPIED
#define O_ADO ORIGIN_ADOPTED
#define O_UNC ORIGIN_UNCERTAIN
#define P_UNK PRESENCE_UNKNOWN
#define P_YES PRESENCE_PRESENT
#define P_NO PRESENCE_ABSENT
#define I_NONE INTENT_NONE
#define I_CRE INTENT_CREATE
#define I_DEL INTENT_DELETE

/* The intent is what job_on_send() recorded just before this attempt: the call's own. */
static const Row rows[] = {
        /* create: success proves ownership, whatever came before */
        { "create ok", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, false, 0, OUTCOME_OK, 200,
          STEP_DONE, O_CRE, P_YES, I_NONE, STATUS_OK, false },
        { "create ok after unknown outcome", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, true, 1,
          OUTCOME_OK, 200, STEP_DONE, O_CRE, P_YES, I_NONE, STATUS_OK, false },
        { "copy ok", O_NONE, P_UNK, I_CRE, CALL_COPY, false, false, 0, OUTCOME_OK, 201,
          STEP_DONE, O_COP, P_YES, I_NONE, STATUS_OK, false },
        /* "already exists" is only a claim: a GET confirms it first, nothing is recorded yet */
        { "409 asks for a GET", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, false, 0, OUTCOME_EXISTS,
          409, STEP_CONFIRM, O_NONE, P_UNK, I_CRE, STATUS_OK, false },
        { "400 duplicate asks for a GET", O_NONE, P_UNK, I_CRE, CALL_COPY, false, true, 2,
          OUTCOME_EXISTS, 400, STEP_CONFIRM, O_NONE, P_UNK, I_CRE, STATUS_OK, true },
        /* the confirming GET: clean history → adopted; unknown outcome before → uncertain */
        { "exists, clean history: adopted", O_NONE, P_UNK, I_CRE, CALL_CREATE, true, false, 0,
          OUTCOME_OK, 200, STEP_DONE, O_ADO, P_YES, I_NONE, STATUS_OK, false },
        { "exists after a 500: uncertain", O_NONE, P_UNK, I_CRE, CALL_CREATE, true, true, 1,
          OUTCOME_OK, 200, STEP_DONE, O_UNC, P_YES, I_NONE, STATUS_OK, false },
        { "exists after a crash in flight: uncertain", O_NONE, P_UNK, I_CRE, CALL_COPY, true, true, 0,
          OUTCOME_OK, 200, STEP_DONE, O_UNC, P_YES, I_NONE, STATUS_OK, false },
        { "ours stays ours (spurious 404, then exists)", O_CRE, P_NO, I_CRE, CALL_CREATE, true, false,
          0, OUTCOME_OK, 200, STEP_DONE, O_CRE, P_YES, I_NONE, STATUS_OK, false },
        { "copied stays copied", O_COP, P_NO, I_CRE, CALL_COPY, true, true, 3, OUTCOME_OK, 200,
          STEP_DONE, O_COP, P_YES, I_NONE, STATUS_OK, false },
        { "uncertain stays uncertain", O_UNC, P_NO, I_CRE, CALL_CREATE, true, false, 0, OUTCOME_OK, 200,
          STEP_DONE, O_UNC, P_YES, I_NONE, STATUS_OK, false },
        { "exists but GET says 404: failed", O_NONE, P_UNK, I_CRE, CALL_CREATE, true, false, 0,
          OUTCOME_GONE, 404, STEP_FAILED, O_NONE, P_UNK, I_NONE, STATUS_FAILED, false },
        { "exists but GET 404 after unknown outcome keeps intent", O_NONE, P_UNK, I_CRE, CALL_CREATE,
          true, true, 1, OUTCOME_GONE, 404, STEP_FAILED, O_NONE, P_UNK, I_CRE, STATUS_FAILED, true },
        { "confirming GET fails: retry, not a new unknown", O_NONE, P_UNK, I_CRE, CALL_CREATE, true,
          false, 0, OUTCOME_TRANSIENT, 503, STEP_RETRY, O_NONE, P_UNK, I_NONE, STATUS_RETRY, false },
        /* transient: the request may have been processed, except when the server says not (4xx) */
        { "500 may have been processed", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, false, 0,
          OUTCOME_TRANSIENT, 500, STEP_RETRY, O_NONE, P_UNK, I_CRE, STATUS_RETRY, true },
        { "timeout may have been processed", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, false, 0,
          OUTCOME_TRANSIENT, 0, STEP_RETRY, O_NONE, P_UNK, I_CRE, STATUS_RETRY, true },
        { "HTML 200 may have been processed, never present", O_NONE, P_UNK, I_CRE, CALL_CREATE, false,
          false, 0, OUTCOME_NOT_API, 200, STEP_RETRY, O_NONE, P_UNK, I_CRE, STATUS_RETRY, true },
        { "429 was not processed", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, false, 0,
          OUTCOME_TRANSIENT, 429, STEP_RETRY, O_NONE, P_UNK, I_NONE, STATUS_RETRY, false },
        { "429 keeps an earlier unknown", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, true, 1,
          OUTCOME_TRANSIENT, 429, STEP_RETRY, O_NONE, P_UNK, I_CRE, STATUS_RETRY, true },
        { "eighth failure quarantines", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, true, 7,
          OUTCOME_TRANSIENT, 503, STEP_QUARANTINE, O_NONE, P_UNK, I_CRE, STATUS_QUARANTINED, true },
        /* permanent and license answers: a definite no */
        { "400 permanent", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, false, 0, OUTCOME_PERMANENT, 400,
          STEP_FAILED, O_NONE, P_UNK, I_NONE, STATUS_FAILED, false },
        { "no licenses", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, false, 0, OUTCOME_NO_LICENSES, 403,
          STEP_NO_LICENSES, O_NONE, P_UNK, I_NONE, STATUS_RETRY, false },
        { "403 OU or licenses: check first", O_NONE, P_UNK, I_CRE, CALL_COPY, false, false, 0,
          OUTCOME_FORBIDDEN, 403, STEP_CHECK_LICENSES, O_NONE, P_UNK, I_CRE, STATUS_OK, false },
        { "401 stops the run, nothing recorded", O_NONE, P_UNK, I_CRE, CALL_CREATE, false, false, 0,
          OUTCOME_AUTH, 401, STEP_STOP, O_NONE, P_UNK, I_CRE, STATUS_OK, false },
        { "302 stops the run", O_CRE, P_YES, I_DEL, CALL_DELETE, false, false, 0, OUTCOME_REDIRECT,
          302, STEP_STOP, O_CRE, P_YES, I_DEL, STATUS_OK, false },
        /* delete */
        { "delete ok", O_CRE, P_YES, I_DEL, CALL_DELETE, false, false, 0, OUTCOME_OK, 200, STEP_DONE,
          O_CRE, P_NO, I_NONE, STATUS_OK, false },
        { "delete 404 is gone", O_COP, P_YES, I_DEL, CALL_DELETE, false, false, 0, OUTCOME_GONE, 404,
          STEP_DONE, O_COP, P_NO, I_NONE, STATUS_OK, false },
        { "delete HTML 200 is not a delete", O_CRE, P_YES, I_DEL, CALL_DELETE, false, false, 0,
          OUTCOME_NOT_API, 200, STEP_RETRY, O_CRE, P_YES, I_DEL, STATUS_RETRY, true },
        { "delete rejected (Teams-synced)", O_ADO, P_YES, I_DEL, CALL_DELETE, false, false, 0,
          OUTCOME_PERMANENT, 400, STEP_FAILED, O_ADO, P_YES, I_NONE, STATUS_FAILED, false },
};

static AnswerInput input_of(const Row *r) {
        return (AnswerInput) {
                .call = r->call, .outcome = r->outcome, .http_status = r->status, .message = "words",
                .target = { { 1 } }, .actual_ou = { { 9 } }, .confirming = r->confirming,
                .maybe_sent = r->maybe_sent, .attempts = r->attempts, .max_attempts = 8,
                .unprocessed = (r->status >= 400 && r->status < 500) || r->confirming,
                .now_usec = NOW, .retry_delay_usec = DELAY, .quarantine_usec = 3600 * USEC_PER_SEC,
                .failed_retry_usec = 6 * 3600 * USEC_PER_SEC, .no_license_retry_usec = 900 * USEC_PER_SEC,
        };
}

static void check_row(const Row *r) {
        StoreUser u = { .origin = r->origin, .presence = r->presence, .intent = r->intent,
                        .attempts = r->attempts };
        AnswerInput in = input_of(r);
        AnswerResult a;

        answer_apply(&u, &in, &a);
        if (a.step != r->step || u.origin != r->want_origin || u.presence != r->want_presence ||
            u.intent != r->want_intent || u.status != r->want_status || a.maybe_sent != r->want_maybe_sent)
                fail_msg("%s: step %d origin %u presence %u intent %u status %u maybe_sent %d", r->name,
                         a.step, u.origin, u.presence, u.intent, u.status, a.maybe_sent);
}

static void test_table(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(rows); i++)
                check_row(&rows[i]);
}

/* What is recorded besides the states: when to retry, what the admin reads, where the user is. */
static void test_details(void **state) {
        StoreUser u = { .intent = INTENT_CREATE };
        AnswerInput in = input_of(&rows[14]);   /* 500 */
        AnswerResult a;

        answer_apply(&u, &in, &a);
        assert_true(a.store);
        assert_string_equal(a.error, "words");
        assert_int_equal(u.attempts, 1);
        assert_int_equal(u.next_attempt_usec, NOW + DELAY);
        assert_int_equal(u.http_status, 500);

        in = input_of(&rows[0]);                /* then success */
        answer_apply(&u, &in, &a);
        assert_null(a.error);
        assert_int_equal(u.attempts, 0);
        assert_int_equal(u.next_attempt_usec, 0);
        assert_memory_equal(u.ou.b, in.target.b, 16);   /* created in the requested OU */

        u = (StoreUser) { .intent = INTENT_CREATE };
        in = input_of(&rows[5]);                /* confirmed exists: the OU the GET reported */
        answer_apply(&u, &in, &a);
        assert_memory_equal(u.ou.b, in.actual_ou.b, 16);

        in = input_of(&rows[3]);                /* a claim and a 401 write nothing */
        answer_apply(&u, &in, &a);
        assert_false(a.store);
        in = input_of(&rows[23]);
        answer_apply(&u, &in, &a);
        assert_false(a.store);
}

static void test_verify(void **state) {
        static const struct {
                uint8_t origin, presence, intent;
                Outcome outcome;
                bool listed, changed;
                uint8_t want_origin, want_presence;
        } t[] = {
                { O_CRE, P_YES, I_NONE, OUTCOME_OK, true, true, O_CRE, P_YES },
                { O_CRE, P_YES, I_NONE, OUTCOME_GONE, true, true, O_CRE, P_NO },
                { O_NONE, P_UNK, I_NONE, OUTCOME_OK, true, true, O_ADO, P_YES },
                { O_NONE, P_UNK, I_CRE, OUTCOME_OK, true, true, O_UNC, P_YES },   /* unknown create */
                { O_NONE, P_UNK, I_CRE, OUTCOME_OK, false, true, O_UNC, P_YES },
                { O_NONE, P_UNK, I_NONE, OUTCOME_OK, false, true, O_NONE, P_YES }, /* never ours */
                { O_CRE, P_YES, I_NONE, OUTCOME_NOT_API, true, false, O_CRE, P_YES },
                { O_CRE, P_YES, I_NONE, OUTCOME_TRANSIENT, true, false, O_CRE, P_YES },
        };
        Guid ou = { { 5 } };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                StoreUser u = { .origin = t[i].origin, .presence = t[i].presence, .intent = t[i].intent };

                assert_int_equal(answer_verify(&u, t[i].outcome, &ou, t[i].listed), t[i].changed);
                assert_int_equal(u.origin, t[i].want_origin);
                assert_int_equal(u.presence, t[i].want_presence);
                if (t[i].outcome == OUTCOME_OK)
                        assert_memory_equal(u.ou.b, ou.b, 16);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table),
                cmocka_unit_test(test_details),
                cmocka_unit_test(test_verify),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
