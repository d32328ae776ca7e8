/* roster.c: placeholder, being written. */
