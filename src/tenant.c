/* tenant.c: placeholder, being written. */
