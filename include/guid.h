/* guid.h: GUIDs (Entra object IDs, Nimbus OU IDs) as 16 raw bytes.
 * Comparing bytes makes GUID comparison case-insensitive and brace-insensitive by construction,
 * and keeps a million-user roster at 16 bytes per ID. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GUID_STRING_MAX 37 /* 36 characters and the NUL */

typedef struct Guid {
        uint8_t b[16];
} Guid;

/* Parse "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", any case, optionally in {braces}, surrounding
 * whitespace not allowed. len is the length of s (s need not be NUL-terminated). -EINVAL if bad. */
int guid_parse(const char *s, size_t len, Guid *ret);
/* Canonical lowercase form, 36 characters, NUL-terminated. Returns buf for convenience. */
char *guid_format(const Guid *g, char buf[GUID_STRING_MAX]);

static inline int guid_cmp(const Guid *a, const Guid *b) { return memcmp(a->b, b->b, 16); }
static inline bool guid_eq(const Guid *a, const Guid *b) { return memcmp(a->b, b->b, 16) == 0; }
bool guid_is_null(const Guid *g);
