/* test_roster: placeholder until its module lands. */
int main(void) { return 77; }
