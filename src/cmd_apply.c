/* cmd_apply.c: placeholder, being written. */
