/* backoff.c: placeholder, being written. */
