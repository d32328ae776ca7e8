/* roster_yaml.c: placeholder, being written. */
