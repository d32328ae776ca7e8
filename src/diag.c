/* diag.c: collects diagnostics about bad input (config, rosters) for the caller to print.
 * Every entry is one line: messages and file names are made printable here, so text quoted from a
 * hostile file can neither forge extra lines nor grow the list without bound. */
#include "diag.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer messages are cut; a message quotes user input, which must not decide our memory use. */
#define DIAG_MAX_MSG 1024

void diag_clear(Diag *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                free(d->entries[i].file);
                free(d->entries[i].msg);
        }
        free(d->entries);
        *d = (Diag) DIAG_INIT;
}

/* Control characters (newlines, escapes) in quoted input would break the one-line format or
 * drive the terminal; replace them. */
static void make_printable(char *s) {
        for (unsigned char *p = (unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        *p = '?';
}

static int diag_grow(Diag *d) {
        DiagEntry *n;
        size_t cap;

        if (d->n < d->cap)
                return 0;
        cap = d->cap ? d->cap * 2 : 8;
        if (cap > DIAG_MAX_ENTRIES)
                cap = DIAG_MAX_ENTRIES;
        n = realloc(d->entries, cap * sizeof(DiagEntry));
        if (!n)
                return -ENOMEM;
        d->entries = n;
        d->cap = cap;
        return 0;
}

static int __attribute__((format(printf, 3, 0))) diag_fill(DiagEntry *e, const char *file, const char *fmt, va_list ap) {
        char *msg = NULL;

        if (vasprintf(&msg, fmt, ap) < 0)
                return -ENOMEM;
        if (strlen(msg) > DIAG_MAX_MSG) {
                size_t cut = DIAG_MAX_MSG - 3;

                while (cut > 0 && ((unsigned char) msg[cut] & 0xc0) == 0x80)
                        cut--; /* not inside a UTF-8 sequence */
                strcpy(msg + cut, "...");
        }
        make_printable(msg);
        e->msg = msg;

        e->file = NULL;
        if (file) {
                e->file = strdup(file);
                if (!e->file) {
                        free(msg);
                        return -ENOMEM;
                }
                make_printable(e->file);
        }
        return 0;
}

int diag_addv(Diag *d, DiagLevel level, const char *file, unsigned line, unsigned col,
              const char *fmt, va_list ap) {
        int result = level == DIAG_ERROR ? -EINVAL : 0;
        DiagEntry *e;

        if (level == DIAG_ERROR)
                d->n_errors++;
        else
                d->n_warnings++;

        /* Past the bound only the counters move: cheap enough for a million bad lines. */
        if (d->n >= DIAG_MAX_ENTRIES || diag_grow(d) < 0) {
                d->dropped++;
                return d->n >= DIAG_MAX_ENTRIES ? result : -ENOMEM;
        }

        e = &d->entries[d->n];
        *e = (DiagEntry) { .level = level, .line = line, .col = col };
        if (diag_fill(e, file, fmt, ap) < 0) {
                d->dropped++;
                return -ENOMEM;
        }
        d->n++;
        return result;
}

int diag_add(Diag *d, DiagLevel level, const char *file, unsigned line, unsigned col,
             const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = diag_addv(d, level, file, line, col, fmt, ap);
        va_end(ap);
        return r;
}

int diag_entry_format(const DiagEntry *e, char **ret) {
        const char *level = e->level == DIAG_ERROR ? "error" : "warning";
        char where[64] = "";
        char *s;
        int r;

        /* A column without a line means nothing, so it is only shown with one. */
        if (e->line > 0 && e->col > 0)
                snprintf(where, sizeof where, ":%u:%u", e->line, e->col);
        else if (e->line > 0)
                snprintf(where, sizeof where, ":%u", e->line);

        if (e->file)
                r = asprintf(&s, "%s%s: %s: %s", e->file, where, level, e->msg);
        else
                r = asprintf(&s, "%s: %s", level, e->msg);
        if (r < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int diag_first_error(const Diag *d, char **ret) {
        char *s;

        for (size_t i = 0; i < d->n; i++)
                if (d->entries[i].level == DIAG_ERROR)
                        return diag_entry_format(&d->entries[i], ret);

        if (d->n_errors == 0) {
                *ret = NULL;
                return 0;
        }
        /* Errors were counted but warnings had filled the list before them. */
        if (asprintf(&s, "error: %zu errors (details not kept)", d->n_errors) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}
