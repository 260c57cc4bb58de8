/*
 * One of every relocation type the object loader applies, for the test that
 * compares the relocated bytes with `readelf -r`.  Assembled with `gcc -c`.
 */
	.text
	.globl	reloc_text
reloc_text:
	movq	$far_data, %rax			/* R_X86_64_32S */
	call	helper				/* R_X86_64_PLT32 */
	leaq	far_data+8(%rip), %rbx		/* R_X86_64_PC32 */
	movq	ext_sym@GOTPCREL(%rip), %rcx	/* R_X86_64_REX_GOTPCRELX: mov -> lea */
	call	*helper@GOTPCREL(%rip)		/* R_X86_64_GOTPCRELX: call -> addr32 call */
	movl	$low_sym, %edx			/* R_X86_64_32 */
	movq	far_data+24, %rsi		/* R_X86_64_32S, memory operand */
	hlt
	jmp	*helper@GOTPCREL(%rip)		/* R_X86_64_GOTPCRELX: jmp -> jmp; nop */
	.globl	helper
helper:
	incq	%r8
	ret

	.data
	.globl	far_data
far_data:
	.quad	reloc_text + 0x10		/* R_X86_64_64 */
	.long	low_sym				/* R_X86_64_32 */
	.long	helper - .			/* R_X86_64_PC32 */
	.quad	ext_sym - .			/* R_X86_64_PC64 */
	.quad	0x5a5a
