/* main.c: the executable is only this; everything else is in libnimbus. */
#include "cli.h"

int main(int argc, char **argv) {
        return cli_main(argc, argv);
}
