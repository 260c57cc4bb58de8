extern long foo(void);
extern long bar;
long use_both(void) { return foo() + bar; }
