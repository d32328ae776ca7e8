/* runner.c: placeholder, being written. */
