/* placeholder until its owner writes it: fails on purpose */
int main(void) { return 1; }
