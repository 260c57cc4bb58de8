# MINIX 3 SMP: VM changes a process's page table while the process is inhibited,
# and marks the process's TLB stale on every CPU (p_stale_tlb). Shared by
# minix-stale-tlb-copy.ron (bug) and minix-stale-tlb-copy-fixed.ron (fix); the two
# differ only in `copy_msg_to_proc`, the kernel's copy into the process.
#
# Our own x86-64 code following the steps of MINIX's SMP TLB handling
# (commit message in seed 003). Symbols (proc_p, P_*, RTS_VMINHIBIT, ...)
# come from the scenario file.

# ---------------------------------------------------------------------------
# CPU 0: VM (and the kernel calls it makes).
# ---------------------------------------------------------------------------
vm_start:
    # Kernel call on VM's behalf: stop P while VM edits its page table.
    # Set RTS_VMINHIBIT in P's p_rts_flags; from now on P is not runnable.
    lock orq $RTS_VMINHIBIT, proc_p+P_RTS

    # P is runnable on another CPU (p_cpu): a synchronous scheduling IPI stops it
    # there, and this CPU waits for the acknowledgement.
    movq $0, stop_ack
    movq proc_p+P_CPU, %rdx          # ICR high half: destination x2APIC id
    movl $VEC_STOP, %eax             # ICR low half: fixed vector
    movl $0x830, %ecx                # x2APIC ICR
    wrmsr
vm_wait_ack:
    pause
    cmpq $0, stop_ack
    je vm_wait_ack

vm_edit:
    # VM moves P's page at P_BUF_VA from frame A to frame B: copy the contents,
    # then rewrite P's PTE (VM reaches page tables through the direct map).
    movabsq $dmap+FRAME_A, %rsi
    movabsq $dmap+FRAME_B, %rdi
    movl $512, %ecx
    rep movsq
    movabsq $dmap+proc.pte.400000, %rbx
    movq $FRAME_B+PTE_URW, %rax
    movq %rax, (%rbx)
vm_pte_changed:
    # Kernel (vmctl, page tables changed): P's TLB may now be stale on every CPU.
    # Set every CPU's bit in p_stale_tlb; no IPI, no flush here.
    movq $ALL_CPUS, %rax
    lock orq %rax, proc_p+P_STALE

    # Kernel: VM is done, clear RTS_VMINHIBIT; P is runnable again on its CPU,
    # which gets a scheduling IPI to pick it up.
    lock andq $~RTS_VMINHIBIT, proc_p+P_RTS
    movq proc_p+P_CPU, %rdx
    movl $VEC_RESUME, %eax
    movl $0x830, %ecx
    wrmsr
vm_done:
    hlt

# ---------------------------------------------------------------------------
# CPU 1 kernel: the scheduling IPI that stops P (entered from user mode on the
# TSS stack).
# ---------------------------------------------------------------------------
ipi_stop:
    pushq %rax
    pushq %rcx
    pushq %rdx
    movl $0x80b, %ecx                # EOI
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    # P inhibited by VM? Then it must not run here any more: acknowledge the stop
    # to the requesting CPU and idle. MINIX keeps the last page table loaded
    # while idle, so P's translations stay in this CPU's TLB.
    testq $RTS_VMINHIBIT, proc_p+P_RTS
    jz p_runnable
    movq $1, stop_ack
cpu_idle:
    sti
    hlt
idle_woken:
    cli
    testq $RTS_VMINHIBIT, proc_p+P_RTS
    jnz cpu_idle

p_runnable:
    # P is runnable again. A message was postponed while P's address space was
    # unstable; deliver it now (the kernel copies into P's buffer).
    testq $MF_DELIVERMSG, proc_p+P_MISC
    jz switch_to_user
    call copy_msg_to_proc
    lock andq $~MF_DELIVERMSG, proc_p+P_MISC

switch_to_user:
    # Scheduler, before returning to P whose page table is already loaded here:
    # if this CPU's bit in p_stale_tlb is still set, clear it and refresh the TLB
    # (the must-flush check).
    movq %gs:PC_CPUID, %rax
    lock btrq %rax, proc_p+P_STALE
    jnc 1f
    movq %cr3, %rcx
    movq %rcx, %cr3
1:
    popq %rdx
    popq %rcx
    popq %rax
to_user:
    iretq

# The resume IPI: only wakes the idle loop above.
ipi_resume:
    pushq %rax
    pushq %rcx
    pushq %rdx
    movl $0x80b, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    popq %rdx
    popq %rcx
    popq %rax
    iretq
