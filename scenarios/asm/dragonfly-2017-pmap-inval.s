# DragonFly BSD pc64 pmap_inval.c (2017): pmap_inval_smp() on the CPU that
# changes a PTE, and the invalidation IPI handler on its targets, written
# from the kernel's steps.  One request slot per originating CPU
# (invinfo + cpuid * INFO_SIZE): va, npgs, ptep, npte, mode, mask, done.
#
# pmap_inval_smp(pmap %rdi, va %rsi, npgs %rdx, ptep %rcx, npte %r8)
# returns the old PTE in %rax.

pmap_inval_smp:
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    movq    %rdx, %r12                  # npgs
    movq    %rcx, %r13                  # ptep
    # pmap_inval.c: take EXCL in pm_active_lock with a compare-and-set loop;
    # while it is held elsewhere, process incoming IPIs (IF=1) and pause
1:  movl    PM_ACTIVE_LOCK(%rdi), %eax
    testl   $CPULOCK_EXCL, %eax
    jnz     2f
    movl    %eax, %ecx
    orl     $CPULOCK_EXCL, %ecx
    lock cmpxchgl %ecx, PM_ACTIVE_LOCK(%rdi)
    jz      3f
2:  pause
    jmp     1b
3:
excl_taken:
    # pmap_inval.c: bump pm_invgen
    lock incq PM_INVGEN(%rdi)
    # pmap_inval.c: the pmap active on this CPU only?  Then swap the PTE,
    # INVLPG locally and we are done
    movq    PM_ACTIVE(%rdi), %rax
    cmpq    %gs:PC_CPUMASK, %rax
    jne     4f
    movq    %r8, %rax
    xchgq   %rax, (%r13)
    movq    %rax, %r8                   # old pte
    call    inval_local
    jmp     9f
4:
    # pmap_inval.c: our request slot
    movq    %gs:PC_CPUID, %rbx
    shlq    $INFO_SHIFT, %rbx
    addq    $invinfo, %rbx
    # pmap_inval.c: wait until our previous request is fully acknowledged
5:  cmpq    $0, INFO_DONE(%rbx)
    je      6f
    pause
    jmp     5b
6:  mfence
    # pmap_inval.c: fill in the request: va, npgs, ptep, new pte, mode = store
    movq    %rsi, INFO_VA(%rbx)
    movq    %r12, INFO_NPGS(%rbx)
    movq    %r13, INFO_PTEP(%rbx)
    movq    %r8, INFO_NPTE(%rbx)
    movq    $INVSTORE, INFO_MODE(%rbx)
    # pmap_inval.c: read pm_active (racy by design: a CPU in the middle of a
    # context switch may have its bit clear right now), AND with the active
    # CPUs, add ourselves -> mask
    movq    PM_ACTIVE(%rdi), %rax
pm_active_read:
    andq    smp_active_mask, %rax
    orq     %gs:PC_CPUMASK, %rax
    movq    %rax, INFO_MASK(%rbx)
    sfence
    # pmap_inval.c: atomically publish done = mask
    movq    %rax, %rcx
    xchgq   %rcx, INFO_DONE(%rbx)
    # pmap_inval.c: IPI every target but ourselves (x2APIC ICR: vector,
    # destination APIC ID in bits 63:32)
    movq    %rax, %r9
    andq    %gs:PC_CPUMASK_NOT, %r9
7:  bsfq    %r9, %r10
    jz      8f
    btrq    %r10, %r9
    movl    $IPI_INVLTLB, %eax
    movl    %r10d, %edx
    movl    $MSR_X2APIC_ICR, %ecx
    wrmsr
    jmp     7b
8:
ipis_sent:
    # pmap_inval.c: wait until every target has quiesced (only our own bit
    # left in mask); incoming IPIs are still processed
    movq    %gs:PC_CPUMASK, %rcx
10: cmpq    %rcx, INFO_MASK(%rbx)
    je      11f
    pause
    jmp     10b
11:
    # pmap_inval.c: store the new PTE (atomic swap)
    movq    INFO_NPTE(%rbx), %rax
    xchgq   %rax, (%r13)
    movq    %rax, %r8                   # old pte
pte_stored:
    # pmap_inval.c: clear our own mask bit: the targets may now invalidate
    movq    %gs:PC_CPUMASK_NOT, %rax
    lock andq %rax, INFO_MASK(%rbx)
mask_released:
    # pmap_inval.c: invalidate locally, then clear our own done bit
    call    inval_local
    movq    %gs:PC_CPUMASK_NOT, %rax
    lock andq %rax, INFO_DONE(%rbx)
    # pmap_inval.c: wait for every target's done bit to clear
12: cmpq    $0, INFO_DONE(%rbx)
    je      9f
    pause
    jmp     12b
9:
    # pmap_inval.c: drop EXCL, bump pm_invgen
    lock andl $CPULOCK_EXCL_CLR, PM_ACTIVE_LOCK(%rdi)
    lock incq PM_INVGEN(%rdi)
inval_done:
    movq    %r8, %rax
    popq    %r13
    popq    %r12
    popq    %rbx
    ret

# INVLPG each of npgs (%r12) pages from va (%rsi) on this CPU.
inval_local:
    pushq   %rsi
    pushq   %r12
1:  invlpg  (%rsi)
    addq    $PAGE_SIZE, %rsi
    decq    %r12
    jnz     1b
    popq    %r12
    popq    %rsi
    ret

# The invalidation IPI (interrupt gate: IF=0 inside).
Xinvltlb:
    pushq   %rax
    pushq   %rbx
    pushq   %rcx
    pushq   %rdx
    pushq   %rsi
    pushq   %r8
    pushq   %r9
    # pmap_inval.c: scan every originator's request slot
    movq    $invinfo, %rbx
    xorl    %r8d, %r8d
1:  cmpq    $NCPUS, %r8
    jae     9f
    # pmap_inval.c: is our bit in this originator's done mask? (load fence)
    movq    INFO_DONE(%rbx), %rax
    lfence
    testq   %rax, %gs:PC_CPUMASK
    jz      8f
    # pmap_inval.c: acknowledge "quiesced": clear our bit in mask
    movq    %gs:PC_CPUMASK_NOT, %rax
    lock andq %rax, INFO_MASK(%rbx)
ipi_quiesced:
    # pmap_inval.c: wait until the originator has stored the PTE (its own
    # bit gone from mask)
    movl    %r8d, %ecx
    movl    $1, %r9d
    shlq    %cl, %r9
2:  testq   %r9, INFO_MASK(%rbx)
    jz      3f
    pause
    jmp     2b
3:
    # pmap_inval.c: INVLPG the request's pages
    movq    INFO_VA(%rbx), %rsi
    movq    INFO_NPGS(%rbx), %rdx
4:  invlpg  (%rsi)
ipi_invlpg:
    addq    $PAGE_SIZE, %rsi
    decq    %rdx
    jnz     4b
    # pmap_inval.c: clear our bit in done
    movq    %gs:PC_CPUMASK_NOT, %rax
    lock andq %rax, INFO_DONE(%rbx)
ipi_acked:
8:  addq    $INFO_SIZE, %rbx
    incq    %r8
    jmp     1b
9:
    # x2APIC EOI
    movl    $MSR_X2APIC_EOI, %ecx
    xorl    %eax, %eax
    xorl    %edx, %edx
    wrmsr
    popq    %r9
    popq    %r8
    popq    %rsi
    popq    %rdx
    popq    %rcx
    popq    %rbx
    popq    %rax
    iretq
