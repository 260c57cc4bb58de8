# AT&T corpus: one statement per line; each line is assembled by GNU as and by emu::asm.
# Symbols ksym (0x1000), big (0x123456789), percpu_off (0x18) come from the test's symbol table.
.set local_off, 0x18
back_label:
mov %al, %bl
movb %bh, %cl
mov %dl, 8(%rsp)
mov 8(%rsp), %ah
movb $0x12, (%rax)
mov $-1, %cl
mov %ax, %bx
movw %r15w, %cx
mov %dx, 8(%rsp)
mov 8(%rsp), %r8w
movw $0x12, (%rax)
mov $-1, %cx
mov %eax, %ebx
movl %r15d, %ecx
mov %edx, 8(%rsp)
mov 8(%rsp), %r13d
movl $0x12, (%rax)
mov $-1, %ecx
mov %rax, %rbx
movq %r15, %rcx
mov %rdx, 8(%rsp)
mov 8(%rsp), %r13
movq $0x12, (%rax)
mov $-1, %rcx
movq (%rax), %rax
movq (%rsp), %rax
movq (%rbp), %rax
movq (%r12), %rax
movq (%r13), %rax
movq 8(%rax), %rax
movq -8(%rbp), %rax
movq 0x1000(%rax), %rax
movq (%rax,%rbx), %rax
movq (%rax,%rbx,2), %rax
movq 8(%rax,%rcx,4), %rax
movq -0x80(%rsp,%r9,8), %rax
movq (,%rcx,8), %rax
movq 0x10(,%rcx,8), %rax
movq 0x7fffffff(%r15), %rax
movq -0x80000000(%rdi), %rax
movq (%eax), %rax
movq 4(%esp,%ecx,2), %rax
movq %gs:0x10, %rax
movq %fs:8(%rbx), %rax
movq %gs:(%rax,%rdx,8), %rax
movq back_label(%rip), %rax
movq fwd_label(%rip), %rax
movq 8(%rip), %rax
movq 0x1234, %rax
movq ksym, %rax
movq ksym+8(%rax), %rax
movq local_off(%rip), %rax
movl %eax, %gs:0x10
movq $0x7fffffff, %rax
movq $-0x80000000, %rax
movq $0x80000000, %rax
movabsq $0x1122334455667788, %r11
movabs $0x1122334455667788, %rax
movabs 0x1122334455667788, %al
movabs 0x1122334455667788, %eax
movabs 0x1122334455667788, %rax
movabs %rax, 0x1122334455667788
movabs %ax, 0x1122334455667788
movq $ksym, %rax
movq $big, %rax
movl $ksym+4, %ecx
movq ksym, %rax
mov %cr0, %rax
mov %r9, %cr0
mov %cr2, %rax
mov %r9, %cr2
mov %cr3, %rax
mov %r9, %cr3
mov %cr4, %rax
mov %r9, %cr4
mov %cr8, %rax
mov %r9, %cr8
movq %cr3, %r15
movzbw %al, %cx
movzbl %al, %ecx
movzbq %sil, %r8
movzwl %ax, %ecx
movzwq (%rax), %rdx
movzbl (%rax), %eax
movsbw %al, %cx
movsbl %dil, %ecx
movsbq 8(%rsp), %rax
movswl %ax, %ecx
movswq %r9w, %r10
movslq %eax, %rax
movslq (%rdi), %r11
movzx %al, %ecx
movsx %ax, %rdx
movsxd %ecx, %rcx
lea 8(%rsp), %rax
lea (%rax,%rbx,4), %rcx
lea -1(%rbp), %r12
lea fwd_label(%rip), %rdi
lea 0x10(,%rcx,8), %eax
lea 8(%rax), %ax
lea local_off+8(%rip), %rsi
leaq back_label(%rip), %rax
xchg %rax, %rbx
xchg %rbx, %rax
xchg %eax, %eax
xchg %ecx, %edx
xchgq %rax, (%rdx)
xchg (%rdx), %cl
xchg %ax, %r9w
xchgb %al, %bl
xadd %cl, (%rdx)
lock xaddb %al, 8(%rdx)
cmpxchg %cl, %bl
lock cmpxchgb %cl, (%rdx)
xadd %cx, (%rdx)
lock xaddw %ax, 8(%rdx)
cmpxchg %cx, %bx
lock cmpxchgw %cx, (%rdx)
xadd %ecx, (%rdx)
lock xaddl %eax, 8(%rdx)
cmpxchg %ecx, %ebx
lock cmpxchgl %ecx, (%rdx)
xadd %rcx, (%rdx)
lock xaddq %rax, 8(%rdx)
cmpxchg %rcx, %rbx
lock cmpxchgq %rcx, (%rdx)
lock cmpxchgq %rcx, (%rdx)
cmpxchg8b (%rdi)
lock cmpxchg8b 8(%rdi)
cmpxchg16b (%rdi)
lock cmpxchg16b (%rsi,%rax,8)
lock incq (%rax)
lock decl 4(%rbx)
lock btsq $3, (%rax)
lock orl $1, %gs:(%rax)
lock notb (%rcx)
lock negw (%rcx)
lock andq %rax, 8(%rsp)
lock addl $1, (%rax)
add %rax, %rbx
add %ecx, %edx
addw %si, %di
addb %r8b, %al
add $1, %rax
add $0x1000, %rax
add $0x1000, %eax
add $0x10, %al
add $-2, %r12d
addq $0x7f, (%rax)
addl $0x12345, 8(%rbx,%rcx,4)
addb $1, (%rsi)
addw $0x100, (%rsi)
add (%rax), %rcx
add %rcx, (%rax)
addl $0xffffffff, %ecx
adc %rax, %rbx
adc %ecx, %edx
adcw %si, %di
adcb %r8b, %al
adc $1, %rax
adc $0x1000, %rax
adc $0x1000, %eax
adc $0x10, %al
adc $-2, %r12d
adcq $0x7f, (%rax)
adcl $0x12345, 8(%rbx,%rcx,4)
adcb $1, (%rsi)
adcw $0x100, (%rsi)
adc (%rax), %rcx
adc %rcx, (%rax)
adcl $0xffffffff, %ecx
sub %rax, %rbx
sub %ecx, %edx
subw %si, %di
subb %r8b, %al
sub $1, %rax
sub $0x1000, %rax
sub $0x1000, %eax
sub $0x10, %al
sub $-2, %r12d
subq $0x7f, (%rax)
subl $0x12345, 8(%rbx,%rcx,4)
subb $1, (%rsi)
subw $0x100, (%rsi)
sub (%rax), %rcx
sub %rcx, (%rax)
subl $0xffffffff, %ecx
sbb %rax, %rbx
sbb %ecx, %edx
sbbw %si, %di
sbbb %r8b, %al
sbb $1, %rax
sbb $0x1000, %rax
sbb $0x1000, %eax
sbb $0x10, %al
sbb $-2, %r12d
sbbq $0x7f, (%rax)
sbbl $0x12345, 8(%rbx,%rcx,4)
sbbb $1, (%rsi)
sbbw $0x100, (%rsi)
sbb (%rax), %rcx
sbb %rcx, (%rax)
sbbl $0xffffffff, %ecx
and %rax, %rbx
and %ecx, %edx
andw %si, %di
andb %r8b, %al
and $1, %rax
and $0x1000, %rax
and $0x1000, %eax
and $0x10, %al
and $-2, %r12d
andq $0x7f, (%rax)
andl $0x12345, 8(%rbx,%rcx,4)
andb $1, (%rsi)
andw $0x100, (%rsi)
and (%rax), %rcx
and %rcx, (%rax)
andl $0xffffffff, %ecx
or %rax, %rbx
or %ecx, %edx
orw %si, %di
orb %r8b, %al
or $1, %rax
or $0x1000, %rax
or $0x1000, %eax
or $0x10, %al
or $-2, %r12d
orq $0x7f, (%rax)
orl $0x12345, 8(%rbx,%rcx,4)
orb $1, (%rsi)
orw $0x100, (%rsi)
or (%rax), %rcx
or %rcx, (%rax)
orl $0xffffffff, %ecx
xor %rax, %rbx
xor %ecx, %edx
xorw %si, %di
xorb %r8b, %al
xor $1, %rax
xor $0x1000, %rax
xor $0x1000, %eax
xor $0x10, %al
xor $-2, %r12d
xorq $0x7f, (%rax)
xorl $0x12345, 8(%rbx,%rcx,4)
xorb $1, (%rsi)
xorw $0x100, (%rsi)
xor (%rax), %rcx
xor %rcx, (%rax)
xorl $0xffffffff, %ecx
cmp %rax, %rbx
cmp %ecx, %edx
cmpw %si, %di
cmpb %r8b, %al
cmp $1, %rax
cmp $0x1000, %rax
cmp $0x1000, %eax
cmp $0x10, %al
cmp $-2, %r12d
cmpq $0x7f, (%rax)
cmpl $0x12345, 8(%rbx,%rcx,4)
cmpb $1, (%rsi)
cmpw $0x100, (%rsi)
cmp (%rax), %rcx
cmp %rcx, (%rax)
cmpl $0xffffffff, %ecx
test %rax, %rbx
test %al, %cl
test $1, %al
test $0x1000, %eax
test $0x1000, %ecx
test $1, %rdi
test $0x10, %sil
test (%rax), %rbx
test %rbx, (%rax)
test $0x80, %r9w
testq $1, (%rax)
testb $0x80, 3(%rdi)
inc %rax
inc %r10d
inc %cx
inc %bl
incq (%rax)
incl 8(%rsp)
dec %rax
dec %r10d
dec %cx
dec %bl
decq (%rax)
decl 8(%rsp)
neg %rax
neg %r10d
neg %cx
neg %bl
negq (%rax)
negl 8(%rsp)
not %rax
not %r10d
not %cx
not %bl
notq (%rax)
notl 8(%rsp)
mul %rax
mul %r10d
mul %cx
mul %bl
mulq (%rax)
mull 8(%rsp)
div %rax
div %r10d
div %cx
div %bl
divq (%rax)
divl 8(%rsp)
idiv %rax
idiv %r10d
idiv %cx
idiv %bl
idivq (%rax)
idivl 8(%rsp)
imul %rcx
imulb (%rax)
imul %rbx, %rax
imul (%rsi), %ecx
imul $3, %rbx, %rax
imul $0x1000, %rbx, %rax
imul $10, %rax
imulw $-3, (%rax), %dx
imul %r8w, %r9w
shl %rax
shl $1, %ecx
shl $4, %dx
shl %cl, %r9b
shlq $3, (%rax)
shll %cl, 8(%rbp)
shlw (%rax)
sal %rax
sal $1, %ecx
sal $4, %dx
sal %cl, %r9b
salq $3, (%rax)
sall %cl, 8(%rbp)
salw (%rax)
shr %rax
shr $1, %ecx
shr $4, %dx
shr %cl, %r9b
shrq $3, (%rax)
shrl %cl, 8(%rbp)
shrw (%rax)
sar %rax
sar $1, %ecx
sar $4, %dx
sar %cl, %r9b
sarq $3, (%rax)
sarl %cl, 8(%rbp)
sarw (%rax)
rol %rax
rol $1, %ecx
rol $4, %dx
rol %cl, %r9b
rolq $3, (%rax)
roll %cl, 8(%rbp)
rolw (%rax)
ror %rax
ror $1, %ecx
ror $4, %dx
ror %cl, %r9b
rorq $3, (%rax)
rorl %cl, 8(%rbp)
rorw (%rax)
rcl %rax
rcl $1, %ecx
rcl $4, %dx
rcl %cl, %r9b
rclq $3, (%rax)
rcll %cl, 8(%rbp)
rclw (%rax)
rcr %rax
rcr $1, %ecx
rcr $4, %dx
rcr %cl, %r9b
rcrq $3, (%rax)
rcrl %cl, 8(%rbp)
rcrw (%rax)
shld $4, %rbx, %rax
shld %cl, %ebx, %eax
shrd $4, %bx, %ax
shrd %cl, %rbx, (%rax)
shldq $1, %rcx, 8(%rsp)
shrdl %cl, %edx, (%rdi)
bt %rax, %rbx
bt $5, %ecx
btq $63, (%rax)
bt %edx, (%rax)
btw $3, %r10w
bts %rax, %rbx
bts $5, %ecx
btsq $63, (%rax)
bts %edx, (%rax)
btsw $3, %r10w
btr %rax, %rbx
btr $5, %ecx
btrq $63, (%rax)
btr %edx, (%rax)
btrw $3, %r10w
btc %rax, %rbx
btc $5, %ecx
btcq $63, (%rax)
btc %edx, (%rax)
btcw $3, %r10w
bsf %rax, %rbx
bsf (%rax), %ecx
bsf %r9w, %r10w
bsr %rax, %rbx
bsr (%rax), %ecx
bsr %r9w, %r10w
tzcnt %rax, %rbx
tzcnt (%rax), %ecx
tzcnt %r9w, %r10w
lzcnt %rax, %rbx
lzcnt (%rax), %ecx
lzcnt %r9w, %r10w
popcnt %rax, %rbx
popcnt (%rax), %ecx
popcnt %r9w, %r10w
bswap %eax
bswap %rcx
bswap %r12
bswapq %r8
sete %al
setz %al
setne %al
setnz %al
seta %al
setnbe %al
setae %al
setnb %al
setnc %al
setb %al
setc %al
setnae %al
setbe %al
setna %al
setg %al
setnle %al
setge %al
setnl %al
setl %al
setnge %al
setle %al
setng %al
sets %al
setns %al
seto %al
setno %al
setp %al
setpe %al
setnp %al
setpo %al
setne (%rax)
sete %r9b
setg %sil
cmove %rax, %rbx
cmovz %rax, %rbx
cmovne %rax, %rbx
cmovnz %rax, %rbx
cmova %rax, %rbx
cmovnbe %rax, %rbx
cmovae %rax, %rbx
cmovnb %rax, %rbx
cmovnc %rax, %rbx
cmovb %rax, %rbx
cmovc %rax, %rbx
cmovnae %rax, %rbx
cmovbe %rax, %rbx
cmovna %rax, %rbx
cmovg %rax, %rbx
cmovnle %rax, %rbx
cmovge %rax, %rbx
cmovnl %rax, %rbx
cmovl %rax, %rbx
cmovnge %rax, %rbx
cmovle %rax, %rbx
cmovng %rax, %rbx
cmovs %rax, %rbx
cmovns %rax, %rbx
cmovo %rax, %rbx
cmovno %rax, %rbx
cmovp %rax, %rbx
cmovpe %rax, %rbx
cmovnp %rax, %rbx
cmovpo %rax, %rbx
cmovnel (%rax), %ecx
cmovew %ax, %dx
cmovgq 8(%rsp), %r8
je back_label
jz back_label
jne back_label
jnz back_label
ja back_label
jnbe back_label
jae back_label
jnb back_label
jnc back_label
jb back_label
jc back_label
jnae back_label
jbe back_label
jna back_label
jg back_label
jnle back_label
jge back_label
jnl back_label
jl back_label
jnge back_label
jle back_label
jng back_label
js back_label
jns back_label
jo back_label
jno back_label
jp back_label
jpe back_label
jnp back_label
jpo back_label
je fwd_label
jz fwd_label
jne fwd_label
jnz fwd_label
ja fwd_label
jnbe fwd_label
jae fwd_label
jnb fwd_label
jmp back_label
jmp fwd_label
jmp *%rax
jmp *%r11
jmp *(%rax)
jmpq *8(%rax,%rbx,8)
jmp *%gs:0x10
jmpq *fwd_label(%rip)
call back_label
call fwd_label
call *%rax
call *(%rax)
callq *0x10(%rdi)
call *%r15
ret
retq
ret $8
retq $0x10
push %rax
pop %rax
push %rbx
pop %rbx
push %rsp
pop %rsp
push %rbp
pop %rbp
push %r8
pop %r8
push %r12
pop %r12
push %r15
pop %r15
push %ax
pop %r9w
pushq (%rax)
popq 8(%rsp)
push (%rax)
pushq $1
pushq $0x1000
push $-1
pushw $0x10
pushfq
popfq
pushf
popf
leave
leaveq
cbw
cwde
cdqe
cwd
cdq
cqo
cbtw
cwtl
cltq
cwtd
cltd
cqto
clc
stc
cmc
cld
std
nop
pause
lfence
sfence
mfence
rdtsc
rdtscp
cpuid
rdmsr
wrmsr
hlt
cli
sti
int3
iretq
swapgs
ud2
nopl (%rax)
nopw 0x0(%rax,%rax,1)
nopl 0x0(%rax)
nopl 0x0(%rax,%rax,1)
nopw %cs:0x0(%rax,%rax,1)
nopw %ax
int $0x80
int $3
movsb
movsw
movsl
movsq
stosb
stosw
stosl
stosq
lodsb
lodsw
lodsl
lodsq
cmpsb
cmpsw
cmpsl
cmpsq
scasb
scasw
scasl
scasq
rep movsb
rep movsq
rep stosq
rep stosb
repe cmpsb
repz cmpsq
repne scasb
repnz scasl
rep lodsb
movsb (%rsi), (%rdi)
movsq %fs:(%rsi), %es:(%rdi)
rep ret
rep nop
invlpg (%rax)
invlpg 0x1000(%rbx)
invpcid (%rax), %rcx
invpcid 8(%rsp), %r9
lidt (%rax)
lgdt 8(%rsp)
sidt (%rdi)
sgdt (%rdi)
lidtq (%rax)
movq %rax, %rbx ; addq $1, %rax
lock
addl $1, (%rax)
.byte 1, 2, 0xff, -1
.word 0x1234, -2
.short 7
.long 0x12345678, ksym
.quad 0x1122334455667788, -1, big
.ascii "ab\n"
.asciz "xyz"
.string "s"
.zero 5
.skip 3, 0xcc
.byte 1 + 2 * 3, (1 + 2) * 3, 1 << 4 | 1, 0x10 >> 2, 7 & 3, 5 ^ 1, -(3), ~0 & 0xff
movq $(1 << 12) - 1, %rax
movl $ksym + 8 * 2, %eax
movq 8+ksym, %rax
fwd_label:
nop
