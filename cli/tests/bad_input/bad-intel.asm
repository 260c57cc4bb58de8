    nop
    mov rax, [rbx*3]
