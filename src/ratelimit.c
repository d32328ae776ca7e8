/* ratelimit.c: placeholder, being written. */
