/* tally.c: counts by a text key (see tally.h). */
#include "tally.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static uint64_t key_hash(const char *key) {
        uint64_t h = FNV1A_INIT;

        fnv1a_bytes(&h, key, strlen(key));
        return h;
}

static size_t *slot_for(const Tally *t, const char *key) {
        size_t mask = t->n_slots - 1, i = (size_t) key_hash(key) & mask;

        while (t->slots[i] != 0 && !streq(t->rows[t->slots[i] - 1].key, key))
                i = (i + 1) & mask;
        return &t->slots[i];
}

static int rehash(Tally *t) {
        size_t n = t->n_slots ? t->n_slots * 2 : 64;
        size_t *old = t->slots, old_n = t->n_slots;

        t->slots = calloc(n, sizeof(size_t));
        if (!t->slots) {
                t->slots = old;
                return -ENOMEM;
        }
        t->n_slots = n;
        for (size_t i = 0; i < old_n; i++)
                if (old[i] != 0)
                        *slot_for(t, t->rows[old[i] - 1].key) = old[i];
        free(old);
        return 0;
}

static int row_new(Tally *t, const char *key, size_t *slot) {
        if (array_grow((void **) &t->rows, &t->cap, t->n + 1, sizeof(TallyRow), 16) < 0)
                return -ENOMEM;
        t->rows[t->n] = (TallyRow) { 0 };
        if (strdup_checked(key, &t->rows[t->n].key) < 0)
                return -ENOMEM;
        *slot = ++t->n;
        return 0;
}

int tally_add(Tally *t, const char *key, unsigned column, size_t *ret_index) {
        size_t *slot;
        int r;

        if (column > TALLY_COLUMNS)
                return -EINVAL;
        if (2 * (t->n + 1) > t->n_slots && (r = rehash(t)) < 0)
                return r;
        slot = slot_for(t, key);
        if (*slot == 0 && (r = row_new(t, key, slot)) < 0)
                return r;
        if (column < TALLY_COLUMNS) {
                t->rows[*slot - 1].count[column]++;
                t->rows[*slot - 1].total++;
        }
        if (ret_index)
                *ret_index = *slot - 1;
        return 0;
}

static int by_total(const void *a, const void *b, void *userdata) {
        const Tally *t = userdata;
        const TallyRow *x = &t->rows[*(const size_t *) a], *y = &t->rows[*(const size_t *) b];

        if (x->total != y->total)
                return x->total > y->total ? -1 : 1;
        return strcmp(x->key, y->key);
}

int tally_sorted(const Tally *t, size_t **ret) {
        size_t *idx = calloc(t->n + 1, sizeof(size_t));

        if (!idx)
                return -ENOMEM;
        for (size_t i = 0; i < t->n; i++)
                idx[i] = i;
        qsort_r(idx, t->n, sizeof(size_t), by_total, (void *) t);
        *ret = idx;
        return 0;
}

void tally_clear(Tally *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++)
                free(t->rows[i].key);
        free(t->rows);
        free(t->slots);
        *t = TALLY_INIT;
}
