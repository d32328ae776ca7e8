/* guid.c: placeholder, being written. */
