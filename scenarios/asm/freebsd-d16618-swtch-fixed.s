# FreeBSD amd64, after review D16618 (August 2018): cpu_switch and
# pmap_activate_sw, written from the kernel's steps.  Per-CPU data through %gs.

# cpu_switch(oldtd %rdi, newtd %rsi)
cpu_switch:
    # cpu_switch: save the old thread's context in its PCB
    movq    TD_PCB(%rdi), %rdx
    movq    (%rsp), %rax
    movq    %rax, PCB_RIP(%rdx)
    leaq    8(%rsp), %rax
    movq    %rax, PCB_RSP(%rdx)
    movq    %rbx, PCB_RBX(%rdx)
    movq    %rbp, PCB_RBP(%rdx)
    movq    %r12, PCB_R12(%rdx)
    movq    %r13, PCB_R13(%rdx)
    movq    %r14, PCB_R14(%rdx)
    movq    %r15, PCB_R15(%rdx)
    # cpu_switch: switch address spaces: pmap_activate_sw(newtd)
    movq    %rsi, %r12
    movq    %rsi, %rdi
    call    pmap_activate_sw
    # cpu_switch: curthread = newtd; restore its context and return into it
    movq    %r12, %gs:PC_CURTHREAD
    movq    TD_PCB(%r12), %rdx
    movq    PCB_RBX(%rdx), %rbx
    movq    PCB_RBP(%rdx), %rbp
    movq    PCB_R12(%rdx), %r12
    movq    PCB_R13(%rdx), %r13
    movq    PCB_R14(%rdx), %r14
    movq    PCB_R15(%rdx), %r15
    movq    PCB_RSP(%rdx), %rsp
    pushq   PCB_RIP(%rdx)
    ret

# pmap_activate_sw(td %rdi)
pmap_activate_sw:
    pushq   %rbx
    # pmap.c: oldpmap = PCPU curpmap; pmap = the new thread's vmspace pmap;
    # the same pmap: nothing to do
    movq    %gs:PC_CURPMAP, %r8
    movq    TD_PMAP(%rdi), %rbx
    cmpq    %rbx, %r8
    je      9f
    # pmap.c: CPU_SET_ATOMIC(cpuid, &pmap->pm_active) (lock orq)
    movq    %gs:PC_CPUMASK, %rax
    lock orq %rax, PM_ACTIVE(%rbx)
    # pmap.c: cr3 = rcr3()
    movq    %cr3, %rcx
    cmpl    $0, pmap_pcid_enabled
    je      5f
    # pmap.c, PCID path: pmap_pcid_alloc(pmap, cpuid): the PCID this CPU
    # gave the pmap is still valid when its generation matches the CPU's;
    # then the TLB may keep the pmap's entries (CR3_PCID_SAVE, bit 63)
    movq    %gs:PC_CPUID, %rdx
    leaq    PM_PCIDS(%rbx,%rdx,8), %rsi
    xorl    %r9d, %r9d
    movl    %gs:PC_PCID_GEN, %eax
    cmpl    %eax, PCID_GEN(%rsi)
    jne     1f
    movabsq $CR3_PCID_SAVE, %r9
    jmp     2f
1:  # pmap.c: a new PCID from this CPU's allocator, at the current generation
    movl    %gs:PC_PCID_NEXT, %edx
    incl    %gs:PC_PCID_NEXT
    movl    %edx, PCID_PCID(%rsi)
    movl    %eax, PCID_GEN(%rsi)
2:  # pmap.c: load %cr3 unless the PCID is cached and the tables are loaded
    testq   %r9, %r9
    jz      3f
    movq    %rcx, %rax
    andq    $CR3_ADDR_MASK, %rax
    cmpq    PM_CR3(%rbx), %rax
    je      4f
3:  movl    PCID_PCID(%rsi), %eax
    orq     PM_CR3(%rbx), %rax
    orq     %r9, %rax
    movq    %rax, %cr3
pcid_cr3_loaded:
4:  # pmap.c: the PCID path always sets curpmap
    movq    %rbx, %gs:PC_CURPMAP
    jmp     8f
5:
    # pmap.c, non-PCID path (FIX, D16618): load %cr3 and set curpmap
    # unconditionally, also when the new pmap shares the loaded page table
    movq    PM_CR3(%rbx), %rax
    movq    %rax, %cr3
    movq    %rbx, %gs:PC_CURPMAP
8:
    # pmap.c: CPU_CLR_ATOMIC(cpuid, &oldpmap->pm_active) (lock andq)
    movq    %gs:PC_CPUMASK_NOT, %rax
    lock andq %rax, PM_ACTIVE(%r8)
activate_done:
9:  popq    %rbx
    ret
