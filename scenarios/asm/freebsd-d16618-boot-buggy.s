# FreeBSD amd64, mid-2018 (before review D16618): how each CPU's curpmap and
# the pmaps' pm_active start out, written from the kernel's steps.  Core B (1)
# is the boot CPU, core A (0) an application processor.

# The boot CPU: pmap.c pmap_pinit0(&vmspace0.vm_pmap), run by thread0.
b_boot:
    # pmap.c pmap_pinit0: vmspace0's pmap shares the kernel page table
    # (pm_cr3 is in the data); CPU_ZERO(&pmap->pm_active)
    movq    $0, vmspace0_pmap+PM_ACTIVE
    # pmap.c pmap_pinit0: PCPU_SET(curpmap, kernel_pmap)
    movq    $kernel_pmap, %gs:PC_CURPMAP
    # pmap.c pmap_pinit0: pmap_activate(curthread) -> pmap_activate_sw: the
    # thread's pmap is vmspace0's; the equal %cr3 leaves curpmap alone and
    # clears this CPU's bit in kernel_pmap's pm_active
    movq    %gs:PC_CURTHREAD, %rdi
    call    pmap_activate_sw
    # pmap.c pmap_pinit0: CPU_FILL(&kernel_pmap->pm_active) puts it back
    movq    all_cpus, %rax
    movq    %rax, kernel_pmap+PM_ACTIVE
    # SI_SUB_SMP: release the application processors
    movq    $1, aps_ready
    jmp     b_start

# An application processor: mp_machdep.c init_secondary.
a_boot:
    # mp_machdep.c init_secondary: pc_curpmap = kernel_pmap
    movq    $kernel_pmap, %gs:PC_CURPMAP
    # mp_machdep.c init_secondary: wait until the boot CPU releases the APs
1:  pause
    cmpq    $0, aps_ready
    je      1b
a_booted:
    # ... and enter the scheduler: the idle thread runs
    jmp     a_idle
