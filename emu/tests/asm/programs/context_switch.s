# A context switch in the style of a kernel's switch_to: save callee-saved registers,
# swap stacks, reload CR3 unless the new task shares the address space.
	.text
	.globl switch_to
switch_to:
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, 0x10(%rdi)		# prev->sp
	movq 0x10(%rsi), %rsp		# next->sp
	movq 0x18(%rsi), %rax		# next->cr3
	movq %cr3, %rcx
	cmpq %rax, %rcx
	je 1f
	btsq $63, %rax			# keep PCID translations (NOFLUSH)
	movq %rax, %cr3
1:	movq %gs:percpu_off, %rdx
	incq %gs:0x20(%rdx)
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	ret
	.p2align 4
idle:	hlt
	jmp idle
