/* util.h: small helpers shared by every module: cleanup attributes, time, string checks.
 * Nothing here allocates global state; everything is a pure function or a macro. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p) { free(*(void **)p); }
#define _cleanup_free_ __attribute__((cleanup(freep)))

/* A cleanup function per type, in the type's header, as systemd's DEFINE_TRIVIAL_CLEANUP_FUNC:
 * DEFINE_CLEANUP(Config *, config_free) gives config_freep(), for
 * `_cleanup_(config_freep) Config *c = NULL;`. The destructor must accept NULL. */
#define _cleanup_(f) __attribute__((cleanup(f)))
#define DEFINE_CLEANUP(type, func)                                      \
        static inline void func##p(type *p) {                           \
                (void) func(*p);                                        \
        }

/* Hand an owned pointer over: `*ret = TAKE_PTR(x);` leaves x NULL so cleanup does nothing. */
#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })

static inline bool streq(const char *a, const char *b) { return strcmp(a, b) == 0; }
static inline bool streq_ptr(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Wall-clock microseconds (CLOCK_REALTIME): used for everything persisted in the store. */
uint64_t now_usec(void);
/* Monotonic microseconds: for measuring durations within one process. */
uint64_t mono_usec(void);

/* Parse "500ms", "2s", "5m", "24h", "1d" or a bare number of seconds. -EINVAL on bad input,
 * -ERANGE on overflow. */
int parse_duration(const char *s, uint64_t *ret_usec);

/* Read a whole file into a NUL-terminated buffer, refusing files larger than max_size (-EFBIG)
 * and anything but a regular file (-EISDIR, -EBADFD), a FIFO included: it is opened without
 * blocking, so nothing waits for a writer. */
int read_file_bounded(const char *path, size_t max_size, char **ret_buf, size_t *ret_len);
/* The same from an open file descriptor (not closed), for callers that must fstat() the very file
 * they read, e.g. to check a secret's mode without a race. */
int read_fd_bounded(int fd, size_t max_size, char **ret_buf, size_t *ret_len);

/* The length of the longest prefix of s (len bytes) that is at most max bytes long and does not
 * end inside a UTF-8 sequence: for cutting text to a limit without making it invalid. */
size_t utf8_prefix(const char *s, size_t len, size_t max);

/* Secrets (a client secret, a token, a signed assertion) are overwritten before their memory
 * is given back. Both accept NULL. */
void erase_string(char *s);
void erase_and_free(char *s);
static inline void erase_and_freep(char **p) { erase_and_free(*p); }
#define _cleanup_erase_ __attribute__((cleanup(erase_and_freep)))

/* Grow *array (*cap elements of `size` bytes) geometrically, starting at `first`, until it
 * holds `need`: amortised O(1) appends. -ENOMEM on overflow or when memory runs out; *array
 * and *cap are unchanged then. */
int array_grow(void **array, size_t *cap, size_t need, size_t size, size_t first);

/* FNV-1a, 64 bits: cheap content hashes and fingerprints (not for security). */
#define FNV1A_INIT UINT64_C(0xcbf29ce484222325)
void fnv1a_bytes(uint64_t *h, const void *data, size_t len);

/* strdup() that reports failure as -ENOMEM through the return value. */
int strdup_checked(const char *s, char **ret);
