/* placeholder until its owner writes it */
int main(void) { return 1; }
