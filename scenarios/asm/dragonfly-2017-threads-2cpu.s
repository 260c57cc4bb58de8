# The workload on two CPUs: process P with three threads.  Core A (0) runs
# T1 and switches to T2; core B (1) runs T3, which replaces the page at UVA
# (the munmap/remap path ends in pmap_inval_smp).  Finished threads park in
# a HLT loop.

t1_start:
    # T1 on core A uses the page: its TLB entry is what T2 may inherit
    movq    UVA, %rax
    # lwkt_switch -> cpu_heavy_switch(T2)
    movq    $td2, %rdi
    call    cpu_heavy_switch
t1_parked:
    hlt
    jmp     t1_parked

t2_body:
    # T2, another thread of P, switched in on core A: reads the page
    movq    UVA, %rax
t2_done:
    hlt
    jmp     t2_done

t3_start:
    # T3 on core B uses the page
    movq    UVA, %rax
b_ready:
    # replace the page's PTE (ptep through the direct map); with A's bit
    # clear, pm_active is B alone: pmap_inval_smp takes its local-only path
    movq    $pmap_p, %rdi
    movq    $UVA, %rsi
    movq    $1, %rdx
    movabsq $dmap + p.pte.400000, %rcx
    movq    $NEW_PTE, %r8
    call    pmap_inval_smp
b_after:
    movq    UVA, %rbx
b_done:
    hlt
    jmp     b_done
