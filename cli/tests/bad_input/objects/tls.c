__thread long t;
long get_t(void) { return t; }
