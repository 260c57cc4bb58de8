# Numeric local labels, forward and backward, nested loops, and a branch far enough to
# need a near (rel32) encoding.
start:
	xorl %ecx, %ecx
1:	incl %ecx
	cmpl $10, %ecx
	jb 1b
	movl $5, %edx
1:	decl %edx
	jz 2f
	testl $1, %edx
	jnz 1b
	jmp 1b
2:	jmp far_away
	.zero 200, 0x90
3:	nop
	jmp 3b
far_away:
	call 3b
	jne start
	ret
