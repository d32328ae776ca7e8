/* encoding.c: tells UTF-8 text from the encodings exports are often saved in by mistake (see the
 * header). A 500 MB roster is checked before it is parsed, so plain ASCII goes eight bytes at a
 * time; only the rare non-ASCII byte takes the careful path. */
#include "encoding.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define UTF16_SAMPLE 512        /* bytes looked at to tell UTF-16 from other NUL bytes */

size_t utf8_sequence(const unsigned char *s, size_t avail) {
        unsigned char c = s[0], lo = 0x80, hi = 0xbf;
        size_t n;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                n = 2;
        else if (c >= 0xe0 && c <= 0xef) {
                n = 3;
                lo = c == 0xe0 ? 0xa0 : 0x80;
                hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
                n = 4;
                lo = c == 0xf0 ? 0x90 : 0x80;
                hi = c == 0xf4 ? 0x8f : 0xbf;
        } else
                return 0;

        if (avail < n || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if (s[i] < 0x80 || s[i] > 0xbf)
                        return 0;
        return n;
}

/* Eight bytes of ASCII without a NUL among them. */
static bool ascii_word(const unsigned char *s) {
        const uint64_t high = UINT64_C(0x8080808080808080), ones = UINT64_C(0x0101010101010101);
        uint64_t v;

        memcpy(&v, s, sizeof v);
        return (v & high) == 0 && ((v - ones) & ~v & high) == 0;
}

/* The offset of the first NUL byte or byte that is not UTF-8, or len. */
static size_t first_bad_byte(const unsigned char *s, size_t len) {
        size_t i = 0;

        while (i < len) {
                size_t n;

                if (len - i >= 8 && ascii_word(s + i)) {
                        i += 8;
                        continue;
                }
                if (s[i] == 0 || (n = utf8_sequence(s + i, len - i)) == 0)
                        return i;
                i += n;
        }
        return len;
}

/* ASCII text in UTF-16 has a NUL in every other byte: at odd offsets little-endian, at even
 * ones big-endian. */
static TextEncoding guess_nul_encoding(const unsigned char *s, size_t len) {
        size_t n = len < UTF16_SAMPLE ? len : UTF16_SAMPLE, even = 0, odd = 0;

        for (size_t i = 0; i < n; i++)
                if (s[i] == 0)
                        *(i % 2 ? &odd : &even) += 1;
        if (odd * 4 >= n && even * 4 < odd)
                return TEXT_UTF16LE;
        if (even * 4 >= n && odd * 4 < even)
                return TEXT_UTF16BE;
        return TEXT_BINARY;
}

/* Line and column (in characters) of an offset whose prefix is valid UTF-8. */
static void locate(const unsigned char *s, size_t offset, TextCheck *ret) {
        size_t start = 0, col = 0;

        ret->line = 1;
        for (size_t i = 0; i < offset; i++)
                if (s[i] == '\n') {
                        ret->line++;
                        start = i + 1;
                }
        for (size_t i = start; i < offset; i++)
                col += (s[i] & 0xc0) != 0x80;
        if (start == 0 && offset >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
                col--;  /* the byte order mark is no character anyone sees */
        ret->col = (unsigned) col + 1;
}

int text_check_utf8(const char *buf, size_t len, TextCheck *ret) {
        const unsigned char *s = (const unsigned char *) buf;
        size_t bad;

        *ret = (TextCheck) { .encoding = TEXT_UTF8, .offset = len };
        if (len >= 2 && (memcmp(s, "\xff\xfe", 2) == 0 || memcmp(s, "\xfe\xff", 2) == 0)) {
                *ret = (TextCheck) { .encoding = s[0] == 0xff ? TEXT_UTF16LE : TEXT_UTF16BE,
                                     .line = 1, .col = 1, .byte = s[0] };
                return -EILSEQ;
        }
        bad = first_bad_byte(s, len);
        if (bad == len)
                return 0;
        locate(s, bad, ret);
        ret->offset = bad;
        ret->byte = s[bad];
        if (s[bad] == 0)
                ret->encoding = guess_nul_encoding(s, len);
        else
                ret->encoding = s[bad] >= 0x80 && s[bad] <= 0x9f ? TEXT_WINDOWS_1252 : TEXT_LATIN1;
        return -EILSEQ;
}

const char *text_encoding_name(TextEncoding e) {
        switch (e) {
        case TEXT_UTF8:         return "UTF-8";
        case TEXT_UTF16LE:      return "UTF-16 (little-endian)";
        case TEXT_UTF16BE:      return "UTF-16 (big-endian)";
        case TEXT_BINARY:       return "binary data";
        case TEXT_WINDOWS_1252: return "Windows-1252";
        case TEXT_LATIN1:       return "Windows-1252 or Latin-1 (ISO-8859-1)";
        }
        return "an unknown encoding";
}
