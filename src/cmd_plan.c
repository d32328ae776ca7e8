/* cmd_plan.c: placeholder, being written. */
