/* roster_csv.c: placeholder, being written. */
