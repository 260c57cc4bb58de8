# The workload: core A (0) starts, as init_secondary left it, with curpmap =
# kernel_pmap while running its idle thread (a vmspace0 thread on the kernel
# page table).  It switches to a proc0 kernel thread, which replaces the page
# at KVA (mapped in vmspace0's pmap) and invalidates it.  Core B (1) runs
# another vmspace0 thread that uses the page.

a_idle:
    # the idle thread on A: sched_switch -> cpu_switch(idle, k0)
    movq    %gs:PC_CURTHREAD, %rdi
    movq    $td_k0, %rsi
    call    cpu_switch
    hlt

k0_body:
    # the proc0 kernel thread on A uses the page
    movq    KVA, %rax
k0_replace:
    # ... and replaces it: store the new PTE (through the direct map), then
    # pmap_invalidate_page(&vmspace0.vm_pmap, KVA)
    movabsq $dmap + k.pte.10000000, %rcx
    movq    $NEW_PTE, %rax
    xchgq   %rax, (%rcx)
    movq    $vmspace0_pmap, %rdi
    movq    $KVA, %rsi
    call    pmap_invalidate_page
    # the kernel thread reads the page it just replaced
    movq    KVA, %rax
k0_done:
    hlt

b_start:
    # a vmspace0 thread on B uses the page, then idles
    movq    KVA, %rax
b_idle:
    hlt
b_woken:
    movq    KVA, %rbx
    jmp     b_idle
