/* tally.h: counts by a text key (an OU, a roster file or source), for the summaries `plan` prints
 * and for grouping the held-delete review. Each key is kept once (interned): tally_add() gives the
 * same index for the same text, so callers may keep indices instead of strings. A hash table:
 * a million adds cost a million lookups, not a million scans. */
#pragma once

#include <stddef.h>

#define TALLY_COLUMNS 4  /* e.g. create, copy, delete, held */

typedef struct TallyRow {
        char *key;
        size_t count[TALLY_COLUMNS];
        size_t total;
} TallyRow;

typedef struct Tally {
        TallyRow *rows;         /* in order of first appearance */
        size_t n, cap;
        size_t *slots;          /* open addressing: row index + 1, 0 = empty */
        size_t n_slots;         /* a power of two, at least twice n */
} Tally;

#define TALLY_INIT ((Tally) { 0 })

/* Count one in column (which may be TALLY_COLUMNS: interned, not counted) for key. */
int tally_add(Tally *t, const char *key, unsigned column, size_t *ret_index);
/* Row indices, largest total first, equal totals by key. Free with free(). */
int tally_sorted(const Tally *t, size_t **ret);
void tally_clear(Tally *t);
