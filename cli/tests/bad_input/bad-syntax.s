    nop
    addq %rax
    hlt
