/* fuzz_common.h: what the fuzz targets share: a check that turns a broken promise into a crash
 * libFuzzer reports, and the checks every parser's diagnostics must pass.
 *
 * A sanitizer finding is one kind of bug; a parser that returns success with a result that breaks
 * its header's promises is another, so the targets check those promises too. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

/* Test code only: library code never aborts, but a harness must crash to be heard. */
#define FUZZ_CHECK(cond)                                                                          \
        do {                                                                                      \
                if (!(cond)) {                                                                    \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
                        abort();                                                                  \
                }                                                                                 \
        } while (0)

/* A copy of the input in a buffer of exactly its size, so ASan sees any read past the end, and
 * NUL-terminated one byte later only for the callers that need a C string. */
static inline char *fuzz_dup(const uint8_t *data, size_t size, int terminate) {
        char *buf = malloc(terminate ? size + 1 : size > 0 ? size : 1);

        FUZZ_CHECK(buf);
        if (size > 0)
                memcpy(buf, data, size);
        if (terminate)
                buf[size] = '\0';
        return buf;
}

/* diag.h promises a bounded list of one-line, compiler-style entries. */
static inline void fuzz_check_diag(const Diag *d) {
        FUZZ_CHECK(d->n <= DIAG_MAX_ENTRIES);
        FUZZ_CHECK(d->n + d->dropped == d->n_errors + d->n_warnings);
        for (size_t i = 0; i < d->n; i++) {
                char *line = NULL;

                FUZZ_CHECK(diag_entry_format(&d->entries[i], &line) == 0);
                for (const unsigned char *p = (const unsigned char *) line; *p; p++)
                        FUZZ_CHECK(*p >= 0x20 && *p != 0x7f);
                free(line);
        }
}
