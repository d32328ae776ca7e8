/* oauth.c: placeholder, being written. */
