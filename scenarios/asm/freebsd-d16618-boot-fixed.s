# FreeBSD amd64, after review D16618 (August 2018): how each CPU's curpmap and
# the pmaps' pm_active start out, written from the kernel's steps.  Core B (1)
# is the boot CPU, core A (0) an application processor.  kernel_pmap is never
# activated, so it is never deactivated: its pm_active stays full, as
# pmap_bootstrap left it.

# The boot CPU: pmap.c pmap_pinit0(&vmspace0.vm_pmap), run by thread0.
b_boot:
    # pmap.c pmap_pinit0: CPU_ZERO(&pmap->pm_active), then activate vmspace0's
    # pmap on this CPU: pmap_activate_boot(pmap)
    movq    $0, vmspace0_pmap+PM_ACTIVE
    movq    $vmspace0_pmap, %rdi
    call    pmap_activate_boot
    # SI_SUB_SMP: release the application processors
    movq    $1, aps_ready
    jmp     b_start

# An application processor: mp_machdep.c init_secondary.
a_boot:
    # mp_machdep.c init_secondary: no curpmap = kernel_pmap any more; wait
    # until the boot CPU releases the APs (proc0's vmspace exists by then)
1:  pause
    cmpq    $0, aps_ready
    je      1b
    # mp_machdep.c init_secondary (its tail): pmap_activate_boot(vmspace0 pmap)
    movq    $vmspace0_pmap, %rdi
    call    pmap_activate_boot
a_booted:
    # ... and enter the scheduler: the idle thread runs
    jmp     a_idle

# pmap.c pmap_activate_boot(pmap %rdi): never kernel_pmap.
pmap_activate_boot:
    # pmap.c: CPU_SET_ATOMIC(cpuid, &pmap->pm_active) (lock orq)
    movq    %gs:PC_CPUMASK, %rax
    lock orq %rax, PM_ACTIVE(%rdi)
    # pmap.c: PCPU_SET(curpmap, pmap)
    movq    %rdi, %gs:PC_CURPMAP
    ret
