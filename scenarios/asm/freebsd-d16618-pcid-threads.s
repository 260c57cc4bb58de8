# The workload (PCIDs on): process P has threads on core A (0) and core B
# (1); process Q has one thread.  A runs P's thread, switches to Q with the
# PCID-preserving %cr3 load and back to P.  Meanwhile B replaces P's page at
# UVA and calls pmap_invalidate_page, whose target mask (pm_active) no longer
# holds A.

pa_start:
    # P's thread on A uses the page (a TLB entry tagged with P's PCID on A)
    movq    UVA, %rax
    # mi_switch holds the thread lock, a spin mutex: spinlock_enter saves
    # RFLAGS and disables interrupts, so cpu_switch runs with IF clear
    pushfq
    cli
    # sched_switch -> cpu_switch(P's thread, Q's thread)
    movq    %gs:PC_CURTHREAD, %rdi
    movq    $td_q, %rsi
    call    cpu_switch
    # back in P's thread: spinlock_exit restores its RFLAGS (POPFQ: no
    # interrupt shadow, unlike STI)
    popfq
pa_back:
    # P's thread again on A: reads the page
    movq    UVA, %rax
pa_done:
    hlt

q_body:
    # Q's thread on A, entered from cpu_switch with interrupts off: its
    # spinlock_exit restores the RFLAGS it was switched out with (IF set)
    pushq   $0x202
    popfq
q_running:
    pushfq
    cli
    movq    %gs:PC_CURTHREAD, %rdi
    movq    $td_pa, %rsi
    call    cpu_switch
    hlt

pb_start:
    # P's other thread on B uses the page
    movq    UVA, %rax
pb_replace:
    # ... and replaces it: new PTE through the direct map, then
    # pmap_invalidate_page(P's pmap, UVA)
    movabsq $dmap + p.pte.400000, %rcx
    movq    $NEW_PTE, %rax
    xchgq   %rax, (%rcx)
    movq    $pmap_p, %rdi
    movq    $UVA, %rsi
    call    pmap_invalidate_page
    movq    UVA, %rbx
pb_done:
    hlt
