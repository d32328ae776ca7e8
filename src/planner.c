/* planner.c: placeholder, being written. */
