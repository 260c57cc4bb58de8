# DragonFly BSD pc64 swtch.s as of January 2017: cpu_heavy_switch /
# cpu_heavy_restore with what runs between clearing and setting the CPU's
# pm_active bit: interrupts saved and disabled, the debug-register and FPU
# save decisions, the stack switch; cpu_heavy_restore restores the flags at
# its end.  Before commit 95270b7e.
# The old and new thread arrive as: old = %gs:PC_CURTHREAD, new = %rdi.

cpu_heavy_switch:
    # swtch.s: save the flags on the old thread's stack, disable interrupts
    pushfq
    cli
    # swtch.s: the outgoing thread is curthread; find its PCB
    movq    %gs:PC_CURTHREAD, %rcx
    movq    TD_PCB(%rcx), %rdx
    # swtch.s: save the return address, stack pointer and callee-saved registers
    movq    8(%rsp), %rax
    movq    %rax, PCB_RIP(%rdx)
    movq    %rsp, PCB_RSP(%rdx)
    movq    %rbx, PCB_RBX(%rdx)
    movq    %rbp, PCB_RBP(%rdx)
    movq    %r12, PCB_R12(%rdx)
    movq    %r13, PCB_R13(%rdx)
    movq    %r14, PCB_R14(%rdx)
    movq    %r15, PCB_R15(%rdx)
    # swtch.s: clear our bit in the old vmspace's pm_active (lock andq),
    # done on every heavy switch, even between two threads of one process
    movq    TD_PMAP(%rcx), %rbx
    testq   %rbx, %rbx
    jz      1f
    movq    %gs:PC_CPUMASK_NOT, %rax
    lock andq %rax, PM_ACTIVE(%rbx)
a_bit_cleared:
1:
    # swtch.s: debug registers in use (PCB_DBREGS)?  Then save them.  (The
    # saving itself is not modelled: T1 uses none.)
    testl   $PCB_DBREGS, PCB_FLAGS(%rdx)
    jz      2f
2:
    # swtch.s: does the old thread own the FPU (gd_npxthread)?  Then save
    # its state.  (The save is not modelled: T1 does not own the FPU.)
    cmpq    %rcx, %gs:PC_NPXTHREAD
    jne     3f
3:
    # swtch.s: switch to the new thread: curthread = ntd, its stack, and
    # continue in its restore path
    movq    %rdi, %gs:PC_CURTHREAD
    movq    TD_PCB(%rdi), %rdx
    movq    PCB_RSP(%rdx), %rsp
    movq    %rdi, %rax
    jmp     cpu_heavy_restore

cpu_heavy_restore:
    movq    TD_PCB(%rax), %rdx
    movq    TD_PMAP(%rax), %rbx
    # swtch.s: set our bit in the new vmspace's pm_active (lock orq)
    movq    %gs:PC_CPUMASK, %rcx
    lock orq %rcx, PM_ACTIVE(%rbx)
a_bit_set:
    # swtch.s: an invalidation in progress on this pmap (EXCL held in
    # pm_active_lock) may not have seen our bit: wait for it to finish
    # (pmap_interlock_wait, which processes incoming invalidation requests
    # while it waits: here, interrupts are let in for one instruction), then
    # reload %cr3 unconditionally
    movl    PM_ACTIVE_LOCK(%rbx), %ecx
    testl   $CPULOCK_EXCL, %ecx
    jz      3f
2:  sti
    pause
    cli
    movl    PM_ACTIVE_LOCK(%rbx), %ecx
    testl   $CPULOCK_EXCL, %ecx
    jnz     2b
    movq    PCB_CR3(%rdx), %rcx
    movq    %rcx, %cr3
    jmp     4f
3:
a_cr3_check:
    # swtch.s (BUG): compare %cr3 with the new PCB's cr3 and skip the reload
    # when they are equal (two threads of one process)
    movq    PCB_CR3(%rdx), %rcx
    movq    %cr3, %rsi
    cmpq    %rsi, %rcx
    je      4f
    movq    %rcx, %cr3
4:
a_cr3_done:
    # swtch.s: restore the new thread's callee-saved registers, its flags
    # (from its stack: interrupts back on) and return into it
    movq    PCB_RBP(%rdx), %rbp
    movq    PCB_R12(%rdx), %r12
    movq    PCB_R13(%rdx), %r13
    movq    PCB_R14(%rdx), %r14
    movq    PCB_R15(%rdx), %r15
    movq    PCB_RBX(%rdx), %rbx
    popfq
    ret
