# The workload: process P with four threads.  Core A (0) runs T1 and
# switches to T2; core B (1) runs T3, which replaces the page at UVA (the
# munmap/remap path ends in pmap_inval_smp); core C (2) runs T4.

t1_start:
    # T1 on core A uses the page: its TLB entry is what T2 may inherit
    movq    UVA, %rax
    # lwkt_switch -> cpu_heavy_switch(T2)
    movq    $td2, %rdi
    call    cpu_heavy_switch
t1_parked:
    # T1 does not run again here.  A finished thread parks in a HLT loop: an
    # IPI wakes the core, the handler returns after the HLT, and the core must
    # not fall through into the next thread's code.
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
    # pmap_remove/pmap_enter path: replace the page's PTE with one that maps
    # the new frame (ptep reached through the direct map)
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

t4_start:
    # T4 on core C uses the page, then idles; each IPI wakes it and it
    # reads the page again
    movq    UVA, %rax
c_idle:
    hlt
c_woken:
    movq    UVA, %rax
    jmp     c_idle
