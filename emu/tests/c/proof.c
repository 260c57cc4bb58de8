/*
 * The C test program for ELF objects: compiled by the system gcc at -O0 and -O2
 * with the kernel flags, loaded by a scenario and run on two cores.  Each part
 * exercises something kernel code does: globals, per-CPU data through %gs,
 * atomic builtins, privileged inline assembly, a function-pointer table and a
 * switch that compiles to a jump table.
 */

struct pcpu {
	struct pcpu *self;
	long cpuid;
	long visits;
};

/* Per-CPU areas in a named section, placed by the scenario. */
__attribute__((section(".data.percpu"))) struct pcpu pcpu_area[2] = {
	{ &pcpu_area[0], 0, 0 },
	{ &pcpu_area[1], 1, 0 },
};

volatile unsigned long pm_active = 0xf0;
long counter = 100;
long lockword;
long owner = -1;
unsigned long results[2][8];
extern long scenario_value;		/* defined by the scenario */
extern long cpu_pause_count(void);	/* a stub */

static inline long pcpu_get_cpuid(void)
{
	long v;
	__asm__ volatile("movq %%gs:8, %0" : "=r"(v));
	return v;
}

static inline void pcpu_inc_visits(void)
{
	__asm__ volatile("incq %%gs:16" ::: "memory");
}

__attribute__((noinline)) long op_add(long x) { return x + 1000; }
__attribute__((noinline)) long op_mul(long x) { return x * 3; }
__attribute__((noinline)) long op_neg(long x) { return -x; }
__attribute__((noinline)) long op_shl(long x) { return x << 4; }

static long (*const ops[4])(long) = { op_add, op_mul, op_neg, op_shl };

__attribute__((noinline)) long classify(long x, long y)
{
	switch (x) {
	case 0: return y * 7;
	case 1: return y + 13;
	case 2: return y ^ 0x55;
	case 3: return y << 3;
	case 4: return y - 9;
	case 5: return ~y;
	case 6: return y / 3;
	case 7: return y % 5;
	default: return 0;
	}
}

static inline unsigned long read_cr3(void)
{
	unsigned long v;
	__asm__ volatile("movq %%cr3, %0" : "=r"(v));
	return v;
}

static inline void load_cr3(unsigned long v)
{
	__asm__ volatile("movq %0, %%cr3" :: "r"(v) : "memory");
}

static inline void invlpg(unsigned long va)
{
	__asm__ volatile("invlpg (%0)" :: "r"(va) : "memory");
}

static inline void wrmsr(unsigned int msr, unsigned long v)
{
	__asm__ volatile("wrmsr" :: "c"(msr), "a"((unsigned int)v),
	    "d"((unsigned int)(v >> 32)));
}

static inline unsigned long rdmsr(unsigned int msr)
{
	unsigned int lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((unsigned long)hi << 32) | lo;
}

long proof_main(long a, long b)
{
	long cpu = pcpu_get_cpuid();
	unsigned long *r = results[cpu];
	long sum = 0;
	long expected = 0;

	pcpu_inc_visits();
	r[0] = cpu;
	/* lock or / lock and */
	__atomic_fetch_or(&pm_active, 1UL << cpu, __ATOMIC_SEQ_CST);
	__atomic_fetch_and(&pm_active, ~0x10UL, __ATOMIC_SEQ_CST);
	/* lock xadd */
	r[1] = __atomic_fetch_add(&counter, 5, __ATOMIC_SEQ_CST);
	/* lock cmpxchg: only the first core takes the lock word */
	if (__atomic_compare_exchange_n(&lockword, &expected, cpu + 1, 0,
	    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		owner = cpu;
	r[2] = expected;
	for (long i = 0; i < 9; i++)
		sum += classify(i, a + i);
	r[3] = sum;
	sum = 0;
	for (long i = 0; i < 8; i++)
		sum += ops[i & 3](b + i);
	r[4] = sum;
	/* privileged: reload %cr3, flush a page, write and read back an MSR */
	load_cr3(read_cr3());
	invlpg((unsigned long)&counter);
	wrmsr(0xc0000102, 0xffff800012340000UL | (unsigned long)cpu);
	r[5] = rdmsr(0xc0000102);
	r[6] = scenario_value + cpu_pause_count();
	r[7] = pcpu_area[cpu].visits;
	return a + b + cpu;
}
