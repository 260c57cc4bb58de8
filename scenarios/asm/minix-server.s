# MINIX server D's user code (at 0x801000 in D's address space): two
# safecopies into P's buffer (sys_safecopyto), then receive.  A copy to P
# while VM edits P suspends D; the kernel restarts the call when VM is done.
# Shared by minix-stale-tlb-copy.ron and minix-stale-tlb-copy-fixed.ron.
d_start:
d_call1:
    movl    $KC_SAFECOPY, %eax
    movl    $0x800000, %esi              # D's first message
    movl    $0x400100, %edi              # into P's buffer
    xorl    %edx, %edx
    int     $0x21
d_call1_done:
    # D works on the request before it replies
    movl    $D_WORK, %ecx
1:  decl    %ecx
    jnz     1b
d_call2:
    movl    $KC_SAFECOPY, %eax
    movl    $0x800010, %esi              # the reply
    movl    $0x400110, %edi
    movl    $1, %edx                     # ends P's receive
    int     $0x21
d_call2_done:
    movl    $KC_RECEIVE, %eax
    int     $0x21
d_done:
    jmp     d_done
