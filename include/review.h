/* review.h: held deletes as an admin reviews them before `approve-deletes` (nimbus-sync(8),
 * DELETION SAFETY): each user's name, OU and the roster file or source that last listed it,
 * grouped by that source, each with why it is held. `plan` and `approve-deletes --dry-run` print
 * it. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "audit.h"
#include "config.h"
#include "tally.h"

typedef struct ReviewItem {
        Guid id;
        Guid ou;
        char *label;            /* "Name (upn)", or NULL */
        size_t source;          /* row of Review.sources */
        bool uncertain;         /* held for uncertain ownership, not by a threshold */
} ReviewItem;

typedef struct Review {
        const Config *config;
        ReviewItem *items;
        size_t n, cap;
        Tally sources;          /* "team.yaml", entra group "Support", an unknown source */
} Review;

void review_init(Review *rv, const Config *c);
/* source: as shown (audit_user_source()); label may be NULL or "". */
int review_add(Review *rv, const Guid *id, const Guid *ou, const char *label, const char *source, bool uncertain);
/* Sorted by source (most held first), then id: a header per source, then a line per user, each
 * starting "! held" and ending with its source and reason. */
int review_print(Review *rv, FILE *f);
void review_clear(Review *rv);
