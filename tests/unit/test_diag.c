/* test_diag: placeholder until its module lands. */
int main(void) { return 77; }
