/* verify.h: checks users with GET to refresh what the store knows of Nimbus. `plan --refresh`
 * checks the users a plan would touch; the daemon's sweep checks every managed user every
 * verify.interval. A user found missing is marked absent (the next plan re-creates it if the
 * roster still lists it); a user found in another OU is recorded there (the next plan reports the
 * drift). GETs go at verify priority: after every mutation, and in half the rate window only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "nimbus_api.h"
#include "roster.h"
#include "tenant.h"

typedef struct Verify Verify;

typedef struct VerifyStats {
        size_t checked, present, missing, moved, errors;
        bool auth_failed;
        char first_error[NIMBUS_MAX_MESSAGE + 64]; /* why the first unanswered GET failed, or "" */
} VerifyStats;

typedef void (*VerifyDoneFn)(void *userdata, Verify *v);

/* Takes ownership of ids (malloc'ed, n entries). roster (may be NULL) marks users found present
 * while listed but unknown to us as adopted; it must outlive the Verify. */
int verify_new(Tenant *t, Guid *ids, size_t n, const Roster *roster, Verify **ret);
/* done is called once, when every answer is in (or after verify_stop(), every outstanding one). */
void verify_start(Verify *v, VerifyDoneFn done, void *userdata);
void verify_stop(Verify *v);
const VerifyStats *verify_stats(const Verify *v);
Verify *verify_free(Verify *v);
