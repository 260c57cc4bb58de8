file_entry:
    movq $0x5151, %rdx
    jmp intel_entry
