/* diag.h: diagnostics about bad input, collected by parsers and printed by their caller.
 * Each entry formats as one compiler-style line: "FILE:LINE:COL: error: MESSAGE".
 * Parsers never print; they add entries here and return a negative errno. The number of entries
 * kept is bounded, so a hostile file cannot make us allocate without limit. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

typedef enum DiagLevel {
        DIAG_ERROR,
        DIAG_WARNING,
} DiagLevel;

typedef struct DiagEntry {
        DiagLevel level;
        char *file;     /* may be NULL when the problem has no file */
        unsigned line;  /* 1-based; 0 = unknown */
        unsigned col;   /* 1-based; 0 = unknown */
        char *msg;
} DiagEntry;

#define DIAG_MAX_ENTRIES 100

typedef struct Diag {
        DiagEntry *entries;
        size_t n, cap;
        size_t n_errors, n_warnings; /* counted even when the entry itself was dropped */
        size_t dropped;
} Diag;

#define DIAG_INIT { 0 }

void diag_clear(Diag *d);
/* Add an entry. Returns -EINVAL for DIAG_ERROR (so parsers can `return diag_add(...)`), 0 for a
 * warning; -ENOMEM if memory ran out. */
int diag_add(Diag *d, DiagLevel level, const char *file, unsigned line, unsigned col,
             const char *fmt, ...) __attribute__((format(printf, 6, 7)));
int diag_addv(Diag *d, DiagLevel level, const char *file, unsigned line, unsigned col,
              const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
/* Format one entry as "FILE:LINE:COL: error: MSG" (parts that are unknown are left out). */
int diag_entry_format(const DiagEntry *e, char **ret);
/* The first error, formatted, or NULL: used for `status` and the log's one line. */
int diag_first_error(const Diag *d, char **ret);
