# MINIX process P's user code (placed at 0x401000 in P's address space).
# Shared by minix-stale-tlb-copy.ron and minix-stale-tlb-copy-fixed.ron.

# ---------------------------------------------------------------------------
# CPU 1: process P in user mode. It works on its page and waits for a message
# the kernel delivers into its buffer at P_BUF_VA+0x100.
# ---------------------------------------------------------------------------
p_start:
p_loop:
    incq 0x400000                    # P uses its page (CPU 1 caches the translation)
    cmpq $0, 0x400100                # message delivered?
    je p_loop
p_got_msg:
    movq 0x400100, %rax
p_done:
    jmp p_done

