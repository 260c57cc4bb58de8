# FreeBSD amd64 (2018): pmap_invalidate_page, smp_masked_invlpg
# (smp_targeted_tlb_shootdown) and the invlpg IPI handler, written from the
# kernel's steps.

# pmap_invalidate_page(pmap %rdi, va %rsi)
pmap_invalidate_page:
    pushq   %rbx
    # (sched_pin: one thread per core here, nothing migrates)
    # pmap.c: the kernel pmap: INVLPG here and shoot down on every CPU
    cmpq    $kernel_pmap, %rdi
    jne     1f
    invlpg  (%rsi)
    movq    all_cpus, %rbx
    jmp     5f
1:  # pmap.c: otherwise INVLPG locally only when the pmap is this CPU's
    # curpmap (per-CPU, through %gs)
    cmpq    %gs:PC_CURPMAP, %rdi
    jne     2f
    invlpg  (%rsi)
local_invlpg:
    jmp     3f
2:  # pmap.c: not current here: with PCIDs, forget this CPU's PCID for it
    cmpl    $0, pmap_pcid_enabled
    je      3f
    movq    %gs:PC_CPUID, %rax
    movl    $0, PM_PCIDS+PCID_GEN(%rdi,%rax,8)
3:
    # pmap.c: with PCIDs, every other CPU's PCID for this pmap goes stale
    # too (pm_gen = 0): a CPU not in pm_active now, which may still hold
    # entries tagged with that PCID, must not switch back with CR3_PCID_SAVE
    cmpl    $0, pmap_pcid_enabled
    je      4f
    xorl    %ecx, %ecx
6:  cmpq    %gs:PC_CPUID, %rcx
    je      7f
    movl    $0, PM_PCIDS+PCID_GEN(%rdi,%rcx,8)
7:  incq    %rcx
    cmpq    $NCPUS, %rcx
    jb      6b
pcid_gens_reset:
4:  # pmap.c: targets = pm_active
    movq    PM_ACTIVE(%rdi), %rbx
5:  movq    %rdi, %rdx
    movq    %rbx, %rdi
    call    smp_masked_invlpg
inval_page_done:
    popq    %rbx
    ret

# smp_masked_invlpg(mask %rdi, va %rsi, pmap %rdx)
smp_masked_invlpg:
    # mp_x86.c: remove ourselves from the mask; nobody else: done
    andq    %gs:PC_CPUMASK_NOT, %rdi
    jz      9f
    # mp_x86.c: take smp_ipi_mtx (spin lock)
1:  movl    $1, %eax
    xchgl   %eax, smp_ipi_mtx
    testl   %eax, %eax
    jz      2f
    pause
    jmp     1b
2:  # mp_x86.c: publish the address and pmap, and a new generation
    movq    %rsi, smp_tlb_addr1
    movq    %rdx, smp_tlb_pmap
    movq    smp_tlb_generation, %r10
    incq    %r10
    movq    %r10, smp_tlb_generation
    # mp_x86.c: IPI every target (x2APIC ICR: vector, APIC ID in bits 63:32)
    movq    %rdi, %r9
3:  bsfq    %r9, %r11
    jz      4f
    btrq    %r11, %r9
    movl    $IPI_INVLPG, %eax
    movl    %r11d, %edx
    movl    $MSR_X2APIC_ICR, %ecx
    wrmsr
    jmp     3b
4:
ipis_sent:
    # mp_x86.c: spin until every target's done-generation reaches ours
    movq    %rdi, %r9
5:  bsfq    %r9, %r11
    jz      7f
    btrq    %r11, %r9
    movq    cpuid_to_pcpu(,%r11,8), %rdx
6:  cmpq    %r10, PC_SMP_TLB_DONE(%rdx)
    je      5b
    pause
    jmp     6b
7:  # mp_x86.c: release smp_ipi_mtx
    movl    $0, smp_ipi_mtx
shootdown_done:
9:  ret

# The invlpg IPI (interrupt gate).
invlpg_handler:
    pushq   %rax
    pushq   %rcx
    pushq   %rdx
    # mp_x86.c: generation first, then INVLPG the published address, then
    # report this CPU done at that generation
    movq    smp_tlb_generation, %rdx
    movq    smp_tlb_addr1, %rax
    invlpg  (%rax)
    movq    %rdx, %gs:PC_SMP_TLB_DONE
    # x2APIC EOI
    movl    $MSR_X2APIC_EOI, %ecx
    xorl    %eax, %eax
    xorl    %edx, %edx
    wrmsr
    popq    %rdx
    popq    %rcx
    popq    %rax
    iretq
