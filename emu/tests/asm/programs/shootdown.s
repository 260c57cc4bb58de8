# A TLB shootdown: the initiator publishes the address, bumps a generation counter with a
# locked add, sends the IPI and spins with pause until every target has acknowledged.
	.text
shootdown:
	movq %rdi, flush_va(%rip)
	lock incq flush_gen(%rip)
	movl $0xfee00300, %ecx
	movl $0x000c00fd, %eax
	movl %eax, (%rcx)
	invlpg (%rdi)
.Lwait:
	pause
	movl pending(%rip), %eax
	testl %eax, %eax
	jnz .Lwait
	ret

handler:
	pushq %rax
	movq flush_va(%rip), %rax
	invlpg (%rax)
	lock decl pending(%rip)
	movl $0, %eax
	popq %rax
	iretq

flush_all:
	movq %cr4, %rax
	movq %rax, %rcx
	andq $~0x80, %rcx		# clear PGE
	movq %rcx, %cr4
	movq %rax, %cr4
	movl $1, %ecx
	xorl %edx, %edx
	invpcid (%rsp), %rcx
	ret

	# data lives in the same section: GNU as would relocate cross-section references
	.p2align 3
flush_va:	.quad 0
flush_gen:	.quad 0
pending:	.long 0
	.byte 1, 2, 3
