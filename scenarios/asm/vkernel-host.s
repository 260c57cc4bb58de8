# DragonFly BSD host kernel paths for a vkernel's MAP_VPAGETABLE region:
#   - the page-fault handler that walks the vkernel's software page tables (VPTEs)
#     and enters the real PTE (vm_fault -> vm_fault_vpagetable -> pmap_enter);
#   - madvise(MADV_INVAL) (int $0x80 here; SYSCALL is not modelled), which removes
#     the real PTEs of a range and shoots them down on every CPU running the pmap;
#   - the invalidation IPI handler.
# Shared by every scenarios/vkernel-*.ron. Our own code, following the steps in
# DragonFly's MAP_VPAGETABLE fault path, seed 002 (vm_fault_vpagetable).
#
# Symbols from the scenario: dmap, VKPHYS (host physical base of the vkernel's
# memory image, i.e. guest-physical 0), VPT_BASE/VPT_SIZE (the region), VPTE_*,
# vpt_master, pm_active, inval_*, vmmap_lock, PC_CPUID, VEC_INVAL, and from the vkernel's
# code vk_fault (its trap entry for faults the host hands back) and
# vk_fault_rip (a word the vkernel can read).

# ---------------------------------------------------------------------------
# #PF (vector 14). Entered from the vkernel (CPL 3) on the TSS stack with the
# error code on top.
# ---------------------------------------------------------------------------
host_pf:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    # vm_fault holds the vm_map lock from the lookup to pmap_enter, so the walk
    # and the real PTE it enters cannot straddle a MADV_INVAL (which takes it
    # too). A spin lock here: the handler runs with interrupts off.
1:
    lock btsq $0, vmmap_lock
    jnc 2f
    pause
    jmp 1b
2:
    # vm_fault: which map entry? Only the MAP_VPAGETABLE region is handled here.
    movq %cr2, %rdi
    movq %rdi, %r10
    movabsq $VPT_BASE, %rax
    subq %rax, %r10                  # r10 = offset of the fault in the region
    cmpq $VPT_SIZE, %r10
    jae host_pf_fail
    # Fault type from the error code: W (bit 1), I/D (bit 4).
    movq 72(%rsp), %r8

    # vm_fault_vpagetable: start at the master PDE the vkernel set with
    # MADV_SETMAP; 9 index bits remain below it (one VPTE page-table level).
    movq vpt_master, %rdx            # current vpte
    movl $9, %r9d                    # vshift: index bits remaining
vpt_level:
    # Give up (the host would signal the vkernel) when the vpte is not valid,
    # when writing without RW, or when fetching with NX.
    testq $VPTE_V, %rdx
    jz host_pf_fail
    testq $2, %r8
    jz 1f
    testq $VPTE_RW, %rdx
    jz host_pf_fail
1:
    testq $0x10, %r8
    jz 2f
    btq $63, %rdx                    # VPTE_NX
    jc host_pf_fail
2:
    # A PS entry or the last level ends the walk.
    testq $VPTE_PS, %rdx
    jnz vpt_leaf
    testq %r9, %r9
    jz vpt_leaf
    # Next level: the vpte names a page of the vkernel's memory object; its host
    # page is VKPHYS + frame (the object is backed contiguously here). Read it
    # through the direct map.
    movq %rdx, %rsi
    movabsq $VPTE_FRAME, %rax
    andq %rax, %rsi
    movabsq $dmap+VKPHYS, %rax
    addq %rax, %rsi
    subq $9, %r9
    leal 12(%r9), %ecx
    movq %r10, %rbx
    shrq %cl, %rbx
    andl $511, %ebx
    leaq (%rsi,%rbx,8), %rsi         # rsi = &vpte at the next level
vpt_setbits:
    # Mark the entry used: A always, M too on a write fault to a writable leaf.
    # Compare-and-set, so a concurrent change by the vkernel is never overwritten;
    # on failure re-read. An invalid entry is left alone (the checks above fail).
    movq (%rsi), %rax
    testq $VPTE_V, %rax
    jz 4f
    movq %rax, %rdx
    orq $VPTE_A, %rdx
    testq $2, %r8
    jz 3f
    testq $VPTE_RW, %rax
    jz 3f
    testq %r9, %r9                   # leaf level (or a PS entry)?
    jz 5f
    testq $VPTE_PS, %rax
    jz 3f
5:
    orq $VPTE_M, %rdx
3:
    lock cmpxchgq %rdx, (%rsi)
    jnz vpt_setbits
    jmp vpt_level
4:
    movq %rax, %rdx
    jmp vpt_level

vpt_leaf:
    # Host page for the leaf (a PS leaf maps a bigger aligned block; add the
    # offset inside it).
    movq %rdx, %rax
    movabsq $VPTE_FRAME, %rbx
    andq %rbx, %rax
    movabsq $VKPHYS, %rbx
    addq %rbx, %rax
    leal 12(%r9), %ecx
    movq $1, %rbx
    shlq %cl, %rbx
    decq %rbx
    andq %r10, %rbx
    andq $-4096, %rbx
    addq %rbx, %rax                  # rax = host physical page
    # pmap_enter: user, present; writable only when the vpte is RW *and* M, so a
    # first write faults again and sets M; NX copied from the vpte.
    orq $5, %rax                     # P | US
    testq $VPTE_RW, %rdx
    jz 6f
    testq $VPTE_M, %rdx
    jz 6f
    orq $2, %rax                     # RW
6:
    btq $63, %rdx
    jnc 7f
    btsq $63, %rax
7:
    movq %r10, %rbx
    shrq $12, %rbx
    movabsq $dmap+vk.pte.40000000, %rsi
host_pf_enter:
    movq %rax, (%rsi,%rbx,8)         # the real PTE (was not present or read-only)
    movq $0, vmmap_lock
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $8, %rsp                    # error code
host_pf_retry:
    iretq                            # retry the access

host_pf_fail:
    # KERN_FAILURE for the VPAGETABLE walk (an invalid VPTE, a write without
    # VPTE_RW, a fetch with NX): the host hands the fault to the vkernel, whose
    # own trap code runs its vm_fault (DragonFly: a signal to the vkernel
    # process). Here the iret returns to the vkernel's `vk_fault` instead of the
    # faulting instruction, with the address in pf_fail_va and the faulting RIP
    # in vk_fault_rip (one slot: only one vcpu faults this way at a time here).
    movq $0, vmmap_lock
    movq %cr2, %rax
    movq %rax, pf_fail_va
    movq 80(%rsp), %rax              # RIP of the iret frame (above the error code)
    movq %rax, vk_fault_rip
    movabsq $vk_fault, %rax
    movq %rax, 80(%rsp)
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $8, %rsp                    # error code
    iretq

# ---------------------------------------------------------------------------
# madvise(rdi = start, rsi = length, MADV_INVAL): int $0x80 from the vkernel.
# vm_map_madvise on a VPAGETABLE entry -> pmap_remove of the range.
# ---------------------------------------------------------------------------
host_madv_inval:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    # Range must lie in the VPAGETABLE region.
    movq %rdi, %rbx
    movabsq $VPT_BASE, %rax
    subq %rax, %rbx
    cmpq $VPT_SIZE, %rbx
    jae madv_out
    shrq $12, %rbx                   # first page index in the region
    shrq $12, %rsi                   # number of pages
    movq %rdi, inval_va
    movq %rsi, inval_npages
    movabsq $dmap+vk.pte.40000000, %rcx
    leaq (%rcx,%rbx,8), %rcx
    movq %rsi, %rdx
    # vm_map_madvise holds the vm_map lock while the real PTEs go (released
    # before the shootdown wait: a fault spinning on it runs with interrupts
    # off and could not take the IPI).
1:
    lock btsq $0, vmmap_lock
    jnc 2f
    pause
    jmp 1b
2:
    # pmap_remove: clear each real PTE (atomic swap, so a concurrent hardware
    # A/D update is not lost), then INVLPG on this CPU.
madv_remove:
    xorl %eax, %eax
    xchgq %rax, (%rcx)
    invlpg (%rdi)
    addq $8, %rcx
    addq $0x1000, %rdi
    decq %rdx
    jnz madv_remove
madv_ptes_cleared:
    movq $0, vmmap_lock
    # Shootdown: every other CPU in pm_active gets the invalidation IPI; wait
    # until each has acknowledged (cleared its bit in inval_pending).
    movq %gs:PC_CPUID, %rbx
    movq pm_active, %rax
    btrq %rbx, %rax
    movq %rax, inval_pending
    movq %rax, %rsi
    xorl %ebx, %ebx
madv_send:
    btq %rbx, %rsi
    jnc 8f
    movl $VEC_INVAL, %eax
    movl %ebx, %edx
    movl $0x830, %ecx
    wrmsr
8:
    incl %ebx
    cmpl $64, %ebx
    jb madv_send
madv_wait:
    pause
    cmpq $0, inval_pending
    jne madv_wait
madv_out:
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
madv_return:
    iretq

# ---------------------------------------------------------------------------
# The invalidation IPI on a target CPU: INVLPG the published range, EOI,
# acknowledge.
# ---------------------------------------------------------------------------
host_inval_ipi:
    pushq %rax
    pushq %rcx
    pushq %rdx
    movq inval_va, %rax
    movq inval_npages, %rcx
9:
    invlpg (%rax)
    addq $0x1000, %rax
    decq %rcx
    jnz 9b
    movl $0x80b, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    movq %gs:PC_CPUID, %rax
    lock btrq %rax, inval_pending
    popq %rdx
    popq %rcx
    popq %rax
inval_ipi_done:
    iretq
