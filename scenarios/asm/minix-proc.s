# MINIX process P's user code (at 0x401000 in P's address space). P uses
# its page, then receives (a kernel call that blocks it until server D's
# reply is in) and reads both messages D copied into its page at 0x400000.
# Shared by minix-stale-tlb-copy.ron and minix-stale-tlb-copy-fixed.ron.
p_start:
    incq    0x400000                     # P uses its page
    movl    $KC_RECEIVE, %eax
    int     $0x21
p_got_msg:
    movq    0x400110, %rax               # the reply (D's second copy)
    movq    0x400100, %rbx               # the first message
p_done:
    jmp     p_done
