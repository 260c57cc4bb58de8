# Switching syntax mid-text, statement separators, and alignment padding with NOPs.
	mov %rdi, %rax ; shr $12, %rax
	.intel_syntax noprefix
	mov rcx, qword ptr [rip + table]
	lock xadd qword ptr [rdx], rcx
	mov rax, gs:[0x10]
	cmp rax, rcx
	jne done
	.att_syntax prefix
	movq %rax, %gs:0x18
	.p2align 3
table:
	rdtscp
	lfence
done:
	ret
