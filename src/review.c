/* review.c: held deletes as an admin reviews them (see review.h). */
#include "review.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void review_init(Review *rv, const Config *c) {
        *rv = (Review) { .config = c, .sources = TALLY_INIT };
}

int review_add(Review *rv, const Guid *id, const Guid *ou, const char *label, const char *source, bool uncertain) {
        ReviewItem *it;
        int r;

        if (array_grow((void **) &rv->items, &rv->cap, rv->n + 1, sizeof(ReviewItem), 64) < 0)
                return -ENOMEM;
        it = &rv->items[rv->n];
        *it = (ReviewItem) { .id = *id, .ou = *ou, .uncertain = uncertain };
        r = tally_add(&rv->sources, source, 0, &it->source);
        if (r >= 0 && label && *label)
                r = strdup_checked(label, &it->label);
        if (r < 0)
                return r;
        rv->n++;
        return 0;
}

static int item_cmp(const void *a, const void *b, void *userdata) {
        const size_t *rank = userdata;
        const ReviewItem *x = a, *y = b;

        if (x->source != y->source)
                return rank[x->source] < rank[y->source] ? -1 : 1;
        return guid_cmp(&x->id, &y->id);
}

static void print_item(const Review *rv, const ReviewItem *it, FILE *f) {
        char id[GUID_STRING_MAX], ou[GUID_STRING_MAX + 64];

        fprintf(f, "! held   %s", guid_format(&it->id, id));
        if (it->label)
                fprintf(f, "  %s", it->label);
        fprintf(f, "  OU %s  [last listed by %s]  (%s)\n", audit_ou_text(rv->config, &it->ou, ou, sizeof(ou)),
                rv->sources.rows[it->source].key,
                it->uncertain ? "ownership uncertain: it may have existed before nimbus-sync" : "threshold");
}

int review_print(Review *rv, FILE *f) {
        _cleanup_free_ size_t *order = NULL, *rank = NULL;
        int r;

        if ((r = tally_sorted(&rv->sources, &order)) < 0)
                return r;
        rank = calloc(rv->sources.n + 1, sizeof(size_t));
        if (!rank)
                return -ENOMEM;
        for (size_t i = 0; i < rv->sources.n; i++)
                rank[order[i]] = i;
        qsort_r(rv->items, rv->n, sizeof(ReviewItem), item_cmp, rank);
        for (size_t i = 0; i < rv->n; i++) {
                const TallyRow *src = &rv->sources.rows[rv->items[i].source];

                if (i == 0 || rv->items[i - 1].source != rv->items[i].source)
                        fprintf(f, "Held, last listed by %s: %zu\n", src->key, src->total);
                print_item(rv, &rv->items[i], f);
        }
        return 0;
}

void review_clear(Review *rv) {
        if (!rv)
                return;
        for (size_t i = 0; i < rv->n; i++)
                free(rv->items[i].label);
        free(rv->items);
        tally_clear(&rv->sources);
        *rv = (Review) { 0 };
}
