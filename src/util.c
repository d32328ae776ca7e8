/* util.c: small helpers every module uses: clocks, duration parsing and bounded file reading.
 * Nothing here keeps state; each function is safe to call from anywhere. */
#include "util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t clock_usec(clockid_t id) {
        struct timespec ts;

        /* clock_gettime() cannot fail for these clock ids on Linux. */
        (void) clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

uint64_t now_usec(void) {
        return clock_usec(CLOCK_REALTIME);
}

uint64_t mono_usec(void) {
        return clock_usec(CLOCK_MONOTONIC);
}

/* The unit suffix of a duration, or 0 when it is not one we know. A missing suffix means
 * seconds, as nimbus-sync.yaml(5), VALUE TYPES promises for bare numbers. */
static uint64_t duration_unit(const char *suffix) {
        static const struct {
                const char *name;
                uint64_t usec;
        } units[] = {
                { "",   USEC_PER_SEC },
                { "ms", USEC_PER_MSEC },
                { "s",  USEC_PER_SEC },
                { "m",  60 * USEC_PER_SEC },
                { "h",  3600 * USEC_PER_SEC },
                { "d",  86400 * USEC_PER_SEC },
        };

        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (streq(suffix, units[i].name))
                        return units[i].usec;
        return 0;
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

int parse_duration(const char *s, uint64_t *ret_usec) {
        uint64_t whole = 0, frac_usec = 0, unit;
        const char *p = s, *frac = NULL;

        if (!s || !is_digit(*p))
                return -EINVAL; /* also refuses "", "-1", "+1", " 1" and ".5" */

        for (; is_digit(*p); p++) {
                if (whole > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                whole = whole * 10 + (uint64_t) (*p - '0');
        }
        if (*p == '.') {
                frac = ++p;
                if (!is_digit(*p))
                        return -EINVAL;
                while (is_digit(*p))
                        p++;
        }

        unit = duration_unit(p);
        if (unit == 0)
                return -EINVAL;
        if (whole > UINT64_MAX / unit)
                return -ERANGE;

        /* Digits past the unit's resolution add nothing (1.0000001s is 1 s); they are still
         * accepted, since a longer spelling of a valid value is not an error. */
        for (uint64_t scale = unit / 10; frac && is_digit(*frac) && scale > 0; frac++, scale /= 10)
                frac_usec += (uint64_t) (*frac - '0') * scale;

        if (frac_usec > UINT64_MAX - whole * unit)
                return -ERANGE;
        *ret_usec = whole * unit + frac_usec;
        return 0;
}

/* Make room when the file grew while we read it, never past max_size + 1 bytes and the NUL: one
 * byte over the limit is how growth past it is noticed. */
static int grow_buffer(char **buf, size_t *cap, size_t max_size) {
        size_t ncap = *cap > max_size / 2 ? max_size + 2 : *cap * 2;
        char *n;

        if (ncap <= *cap)
                return -EFBIG;
        n = realloc(*buf, ncap);
        if (!n)
                return -ENOMEM;
        *buf = n;
        *cap = ncap;
        return 0;
}

int read_fd_bounded(int fd, size_t max_size, char **ret_buf, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap;
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max_size)
                return -EFBIG;

        /* Room for the size fstat() saw, one byte to notice growth, and the NUL. */
        cap = (size_t) st.st_size + 2;
        buf = malloc(cap);
        if (!buf)
                return -ENOMEM;

        for (;;) {
                ssize_t k;
                int r;

                if (len + 1 == cap && (r = grow_buffer(&buf, &cap, max_size)) < 0)
                        return r;
                k = read(fd, buf + len, cap - 1 - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                len += (size_t) k;
        }
        if (len > max_size)
                return -EFBIG;

        buf[len] = '\0';
        *ret_buf = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int read_file_bounded(const char *path, size_t max_size, char **ret_buf, size_t *ret_len) {
        int fd, r;

        /* O_NONBLOCK: opening a FIFO would wait for a writer; read_fd_bounded() refuses it. */
        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        r = read_fd_bounded(fd, max_size, ret_buf, ret_len);
        close(fd);
        return r;
}

int strdup_checked(const char *s, char **ret) {
        char *copy;

        if (!s) {
                *ret = NULL;
                return 0;
        }
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

size_t utf8_prefix(const char *s, size_t len, size_t max) {
        if (len <= max)
                return len;
        /* Back off continuation bytes (10xxxxxx): s[max] must start a sequence. */
        while (max > 0 && ((unsigned char) s[max] & 0xc0) == 0x80)
                max--;
        return max;
}

void erase_string(char *s) {
        if (s)
                explicit_bzero(s, strlen(s));
}

void erase_and_free(char *s) {
        erase_string(s);
        free(s);
}

int array_grow(void **array, size_t *cap, size_t need, size_t size, size_t first) {
        size_t ncap = *cap ? *cap : first;
        void *n;

        if (need <= *cap)
                return 0;
        while (ncap < need) {
                if (ncap > SIZE_MAX / 2)
                        return -ENOMEM;
                ncap *= 2;
        }
        n = reallocarray(*array, ncap, size);
        if (!n)
                return -ENOMEM;
        *array = n;
        *cap = ncap;
        return 0;
}

void fnv1a_bytes(uint64_t *h, const void *data, size_t len) {
        const unsigned char *p = data;
        uint64_t v = *h;

        for (size_t i = 0; i < len; i++) {
                v ^= p[i];
                v *= UINT64_C(0x100000001b3);
        }
        *h = v;
}
