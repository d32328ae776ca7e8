/* encoding.h: is a text UTF-8, and if not, which encoding does it look like? Files exported on
 * Windows are often saved as UTF-16 ("Unicode text") or Windows-1252 ("ANSI"); naming the
 * encoding and the place of the first byte that is not UTF-8 tells the admin how to fix the
 * export, where a parser would only see strange characters. Pure functions. */
#pragma once

#include <stddef.h>

typedef enum TextEncoding {
        TEXT_UTF8,              /* valid UTF-8 without NUL bytes; a byte order mark is allowed */
        TEXT_UTF16LE,           /* a byte order mark FF FE, or NUL bytes at odd offsets */
        TEXT_UTF16BE,           /* a byte order mark FE FF, or NUL bytes at even offsets */
        TEXT_BINARY,            /* NUL bytes, not in the pattern of UTF-16 */
        TEXT_WINDOWS_1252,      /* a byte 0x80-0x9f that is no UTF-8: printable only in Windows-1252 */
        TEXT_LATIN1,            /* another byte that is no UTF-8: Windows-1252 or ISO-8859-1 */
} TextEncoding;

typedef struct TextCheck {
        TextEncoding encoding;
        size_t offset;          /* of the first byte that is not UTF-8 text */
        unsigned line, col;     /* where that byte is, 1-based; col counts characters */
        unsigned char byte;     /* the byte itself */
} TextCheck;

/* The length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, surrogates or code
 * points above U+10FFFF), or 0 if the bytes there are not one. avail >= 1. */
size_t utf8_sequence(const unsigned char *s, size_t avail);

/* 0 when buf is UTF-8 text; otherwise -EILSEQ with *ret saying what it looks like and where. */
int text_check_utf8(const char *buf, size_t len, TextCheck *ret);

/* For messages: "UTF-16 (little-endian)", "Windows-1252", ... */
const char *text_encoding_name(TextEncoding e);
