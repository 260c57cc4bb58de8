long g;
long get_g(void) { return g; }
