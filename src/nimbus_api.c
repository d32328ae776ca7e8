/* nimbus_api.c: placeholder, being written. */
