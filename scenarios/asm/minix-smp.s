# MINIX 3 SMP: a server's kernel call copies into a process that is not
# loaded, through a page-directory slot it borrows in the loaded page table
# (lin_lin_copy / createpde, arch/i386/memory.c), while VM on another CPU
# changes that process's page table (and marks its TLB stale on every CPU,
# p_stale_tlb).  Shared by minix-stale-tlb-copy.ron (bug) and
# minix-stale-tlb-copy-fixed.ron (fix); they differ only in `lin_lin_copy`,
# inline in each scenario.
#
# Our own x86-64 code following MINIX's steps (seed 003).  MINIX is 32-bit:
# its borrowed slots are 4 MiB PDEs; here a slot is one 2 MiB PDE.  VM's own
# work (moving the page) and its kernel calls run at CPL 0 on CPU 0.
# Symbols (proc_*, P_*, RTS_*, ...) come from the scenario file.

# ---------------------------------------------------------------------------
# The big kernel lock: every kernel entry takes it, every exit drops it.
# ---------------------------------------------------------------------------
bkl_lock:
    movl    $1, %eax
    xchgl   %eax, big_kernel_lock
    testl   %eax, %eax
    jz      1f
    pause
    jmp     bkl_lock
1:  ret

bkl_unlock:
    movl    $0, big_kernel_lock
    ret

# ---------------------------------------------------------------------------
# CPU 0: the kernel makes server D runnable on CPU 1, then VM moves P's page.
# ---------------------------------------------------------------------------
k0_wake_d:
    # D becomes runnable (it was blocked); it belongs to CPU 1: a scheduling
    # IPI makes that CPU leave its idle loop and run it.
    call    bkl_lock
    movq    $0, proc_d+P_RTS
    call    bkl_unlock
    movq    proc_d+P_CPU, %rdx           # ICR high half: destination x2APIC id
    movl    $VEC_SCHED, %eax
    movl    $0x830, %ecx                 # x2APIC ICR
    wrmsr

vm_start:
    # VM decides to move one of P's pages (its own bookkeeping first)
    movl    $VM_WORK, %ecx
1:  decl    %ecx
    jnz     1b
vm_inhibit:
    # Kernel call on VM's behalf (do_vmctl VMCTL_VMINHIBIT_SET, under the
    # BKL): stop P while VM edits its page table.  P belongs to CPU 1
    # (p_cpu != cpuid): smp_schedule_vminhibit.  Not runnable (blocked in
    # receive, say): RTS_SET here.  Runnable (maybe running in user mode on
    # CPU 1): smp_schedule_sync, which hands the RTS_SET to P's CPU and
    # waits until that CPU has done it, so P is off its CPU before VM edits.
    call    bkl_lock
    cmpq    $0, proc_p+P_RTS
    je      1f
    lock orq $RTS_VMINHIBIT, proc_p+P_RTS
    jmp     3f
1:  # smp_schedule_sync(P, SCHED_IPI_VM_INHIBIT): nobody else sends CPU 1 a
    # request here, so the wait for an earlier one is left out
    movq    proc_p+P_CPU, %rdx
    shlq    $4, %rdx
    movabsq $sched_ipi_data, %rbx
    addq    %rdx, %rbx
    movq    $proc_p, %rax
    movq    %rax, SIPI_DATA(%rbx)
    lock orq $SCHED_IPI_VM_INHIBIT, SIPI_FLAGS(%rbx)
    # arch_send_smp_schedule_ipi(P's CPU)
    movq    proc_p+P_CPU, %rdx
    movl    $VEC_SCHED, %eax
    movl    $0x830, %ecx
    wrmsr
    # wait, without the BKL, until that CPU has handled it (nobody sends
    # CPU 0 a request of its own here)
    call    bkl_unlock
2:  cmpq    $0, SIPI_FLAGS(%rbx)
    je      vm_inhibit_synced
    pause
    jmp     2b
vm_inhibit_synced:
    call    bkl_lock
3:  call    bkl_unlock

vm_edit:
    # VM moves P's page at 0x400000 from frame A to frame B: copy the
    # contents, then rewrite P's PTE (through the direct map).
    movabsq $dmap+FRAME_A, %rsi
    movabsq $dmap+FRAME_B, %rdi
    movl    $512, %ecx
    rep movsq
    movabsq $dmap+proc.pte.400000, %rbx
    movq    $FRAME_B+PTE_URW, %rax
    movq    %rax, (%rbx)
vm_pte_changed:
    # Kernel call (vmctl, page tables changed), under the BKL: P's TLB may now
    # be stale on every CPU; set every CPU's bit in p_stale_tlb (no IPI, no
    # flush), then let P be used again.
    call    bkl_lock
    movq    $ALL_CPUS, %rax
    lock orq %rax, proc_p+P_STALE
    lock andq $~RTS_VMINHIBIT, proc_p+P_RTS
    # a call suspended on P (VMSUSPEND) restarts
    lock andq $~RTS_VMREQUEST, proc_d+P_RTS
    call    bkl_unlock
    # a scheduling IPI to their CPU, which may be idle
    movq    proc_p+P_CPU, %rdx
    movl    $VEC_SCHED, %eax
    movl    $0x830, %ecx
    wrmsr
vm_done:
    hlt
    jmp     vm_done

# ---------------------------------------------------------------------------
# CPU 1: idle, the scheduling IPI, kernel calls, the switch to user mode.
# ---------------------------------------------------------------------------
# smp_sched_handler: every kernel entry runs it right after taking the BKL
# (context_stop), so a request another CPU made is handled even when its IPI
# is still pending.  Handles SCHED_IPI_VM_INHIBIT (RTS_SET the process), then
# clears this CPU's request flags.  Uses %r8-%r10 only.
smp_sched_handler:
    movq    %gs:PC_CPUID, %r8
    shlq    $4, %r8
    movabsq $sched_ipi_data, %r9
    addq    %r8, %r9
    movq    SIPI_FLAGS(%r9), %r8
    testq   $SCHED_IPI_VM_INHIBIT, %r8
    jz      1f
    movq    SIPI_DATA(%r9), %r10
    lock orq $RTS_VMINHIBIT, P_RTS(%r10)
1:  movq    $0, SIPI_FLAGS(%r9)
    ret

# Idle: switch_address_space_idle has loaded VM's page table (ptproc = VM),
# the BKL is free.
cpu_idle:
    sti
    hlt
idle_woken:
    jmp     cpu_idle

# The scheduling IPI (interrupt gate: IF is clear in here).
ipi_sched:
    pushq   %rax
    pushq   %rcx
    pushq   %rdx
    movl    $0x80b, %ecx                 # EOI
    xorl    %eax, %eax
    xorl    %edx, %edx
    wrmsr
    call    bkl_lock
    call    smp_sched_handler
    # from user mode: save the interrupted process's registers, RIP and RSP
    # (it may not be the one that runs next)
    testq   $3, 32(%rsp)
    jz      1f
    movq    %gs:PC_CURPROC, %rax
    movq    %rbx, P_ARBX(%rax)
    movq    %rsi, P_ARSI(%rax)
    movq    %rdi, P_ARDI(%rax)
    movq    (%rsp), %rbx
    movq    %rbx, P_ARDX(%rax)
    movq    8(%rsp), %rbx
    movq    %rbx, P_ARCX(%rax)
    movq    16(%rsp), %rbx
    movq    %rbx, P_ARAX(%rax)
    movq    24(%rsp), %rbx
    movq    %rbx, P_RIP(%rax)
    movq    48(%rsp), %rbx
    movq    %rbx, P_RSP(%rax)
1:
    # kernel stacks start empty on every entry
    movabsq $kstack1, %rsp
    jmp     pick_proc

# Kernel call gate (INT 0x21 from user mode): %eax = call, %rsi = source
# (in the caller), %rdi = destination (in P), %rdx = 1 when the copy is the
# reply that ends P's receive.
kcall_entry:
    pushq   %rax
    call    bkl_lock
    call    smp_sched_handler
    popq    %rax
    cmpl    $KC_SAFECOPY, %eax
    jne     kc_receive
    # do_safecopy: lin_lin_copy requires neither side to be inhibited; a copy
    # to a process VM is editing suspends the caller until VM is done
    # (VMSUSPEND): its call restarts then, with the same arguments
    testq   $RTS_VMINHIBIT, proc_p+P_RTS
    jz      1f
    movq    %gs:PC_CURPROC, %rbx
    movq    %rax, P_ARAX(%rbx)
    movq    %rsi, P_ARSI(%rbx)
    movq    %rdi, P_ARDI(%rbx)
    movq    %rdx, P_ARDX(%rbx)
    movq    (%rsp), %rax
    subq    $2, %rax                     # back to the INT 0x21 (CD 21)
    movq    %rax, P_RIP(%rbx)
    movq    24(%rsp), %rax
    movq    %rax, P_RSP(%rbx)
    lock orq $RTS_VMREQUEST, P_RTS(%rbx)
kcall_suspended:
    movabsq $kstack1, %rsp
    jmp     pick_proc
1:  pushq   %rdx
    call    lin_lin_copy
    popq    %rdx
    testq   %rdx, %rdx
    jz      2f
    # the reply P waited for: P is runnable again
    lock andq $~RTS_RECEIVING, proc_p+P_RTS
2:  call    bkl_unlock
    xorl    %eax, %eax
kcall_done:
    iretq

kc_receive:
    # The caller blocks in receive (its user RIP and RSP saved from the
    # interrupt frame); run whatever is runnable here.
    movq    %gs:PC_CURPROC, %rbx
    movq    (%rsp), %rax
    movq    %rax, P_RIP(%rbx)
    movq    24(%rsp), %rax
    movq    %rax, P_RSP(%rbx)
    lock orq $RTS_RECEIVING, P_RTS(%rbx)
    movabsq $kstack1, %rsp

# pick_proc: P, then D; nothing runnable: idle.
pick_proc:
    movq    $proc_p, %rbx
    cmpq    $0, P_RTS(%rbx)
    je      switch_to_user
    movq    $proc_d, %rbx
    cmpq    $0, P_RTS(%rbx)
    je      switch_to_user
    # switch_address_space_idle: VM's page table while idle
    movq    $proc_vm, %rbx
    call    switch_address_space
    call    bkl_unlock
    jmp     cpu_idle

# switch_address_space(proc %rbx): load its %cr3 unless it is loaded already;
# ptproc = proc.
switch_address_space:
    movq    P_CR3(%rbx), %rax
    movq    %cr3, %rcx
    cmpq    %rcx, %rax
    je      1f
    movq    %rax, %cr3
1:  movq    %rbx, %gs:PC_PTPROC
    ret

# switch_to_user(proc %rbx): its address space, drop the BKL, IRETQ into it
# with its saved registers (an interrupted process, a restarted kernel call).
switch_to_user:
    call    switch_address_space
    movq    %rbx, %gs:PC_CURPROC
    call    bkl_unlock
    pushq   $0x23                        # SS (RPL 3)
    pushq   P_RSP(%rbx)
    pushq   $0x202                       # RFLAGS: IF
    pushq   $0x2b                        # CS (RPL 3)
    pushq   P_RIP(%rbx)
    movq    P_ARAX(%rbx), %rax
    movq    P_ARCX(%rbx), %rcx
    movq    P_ARDX(%rbx), %rdx
    movq    P_ARSI(%rbx), %rsi
    movq    P_ARDI(%rbx), %rdi
    movq    P_ARBX(%rbx), %rbx
to_user:
    iretq
