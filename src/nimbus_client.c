/* nimbus_client.c: placeholder, being written. */
