/* cmd_misc.c: placeholder, being written. */
