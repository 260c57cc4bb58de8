# Intel corpus (GNU as .intel_syntax noprefix): one statement per line.
back_label:
.set local_off, 0x18
mov bl, al
mov cl, bh
mov byte ptr [rsp+8], dl
mov ah, byte ptr [rsp+8]
mov byte ptr [rax], 0x12
mov cl, -1
mov bx, ax
mov cx, r15w
mov word ptr [rsp+8], dx
mov r8w, word ptr [rsp+8]
mov word ptr [rax], 0x12
mov cx, -1
mov ebx, eax
mov ecx, r15d
mov dword ptr [rsp+8], edx
mov r13d, dword ptr [rsp+8]
mov dword ptr [rax], 0x12
mov ecx, -1
mov rbx, rax
mov rcx, r15
mov qword ptr [rsp+8], rdx
mov r13, qword ptr [rsp+8]
mov qword ptr [rax], 0x12
mov rcx, -1
mov rax, qword ptr [rax]
mov rax, qword ptr [rsp]
mov rax, qword ptr [rbp]
mov rax, qword ptr [r12]
mov rax, qword ptr [r13]
mov rax, qword ptr [rax+8]
mov rax, qword ptr [rbp-8]
mov rax, qword ptr [rax+0x1000]
mov rax, qword ptr [rax+rbx]
mov rax, qword ptr [rax+rbx*2]
mov rax, qword ptr [rax+rcx*4+8]
mov rax, qword ptr [rsp+r9*8-0x80]
mov rax, qword ptr [rcx*8]
mov rax, qword ptr [rcx*8+0x10]
mov rax, qword ptr [8*rcx+rax]
mov rax, qword ptr [eax]
mov rax, qword ptr gs:[0x10]
mov rax, qword ptr fs:[rbx+8]
mov rax, qword ptr gs:[rax+rdx*8]
mov rax, qword ptr [rip+back_label]
mov rax, qword ptr [rip+fwd_label]
mov rax, qword ptr [rip+8]
mov rax, qword ptr [0x1234]
mov rax, qword ptr [ksym]
mov rax, qword ptr [rax+ksym+8]
mov rax, qword ptr [rip+local_off]
mov rcx, [rax]
mov rcx, [rsp]
mov rcx, [rbp]
mov rcx, [r12]
mov rcx, [r13]
mov rcx, [rax+8]
mov dword ptr gs:[0x10], eax
mov rax, gs:[0x10]
mov rax, 0x7fffffff
mov rax, 0x80000000
movabs r11, 0x1122334455667788
mov rax, offset ksym
mov rax, local_off
mov eax, 1 + 2 | 4
mov rax, cr3
mov cr3, rax
mov cr4, r9
mov rax, cr0
mov cr8, rcx
mov rdx, cr2
movzx ecx, al
movzx rdx, word ptr [rax]
movsx rax, byte ptr [rsp+8]
movsx ecx, ax
movsxd rax, eax
movsxd r11, dword ptr [rdi]
lea rax, [rsp+8]
lea rcx, [rax+rbx*4]
lea rdi, [rip+fwd_label]
lea eax, [rcx*8+0x10]
xchg rax, rbx
xchg rbx, rax
xchg qword ptr [rdx], rax
xchg cl, byte ptr [rdx]
xadd qword ptr [rdx], rcx
lock xadd [rdx], eax
lock xadd dword ptr [rdx], eax
cmpxchg rbx, rcx
lock cmpxchg qword ptr [rdx], rcx
lock cmpxchg byte ptr [rdx], cl
cmpxchg8b qword ptr [rdi]
lock cmpxchg16b xmmword ptr [rdi]
cmpxchg16b [rsi]
add rbx, rax
add rax, 1
add eax, 0x1000
add qword ptr [rax], 0x7f
add byte ptr [rsi], 1
add rcx, qword ptr [rax]
add [rax], rcx
adc rbx, rax
adc rax, 1
adc eax, 0x1000
adc qword ptr [rax], 0x7f
adc byte ptr [rsi], 1
adc rcx, qword ptr [rax]
adc [rax], rcx
sub rbx, rax
sub rax, 1
sub eax, 0x1000
sub qword ptr [rax], 0x7f
sub byte ptr [rsi], 1
sub rcx, qword ptr [rax]
sub [rax], rcx
sbb rbx, rax
sbb rax, 1
sbb eax, 0x1000
sbb qword ptr [rax], 0x7f
sbb byte ptr [rsi], 1
sbb rcx, qword ptr [rax]
sbb [rax], rcx
and rbx, rax
and rax, 1
and eax, 0x1000
and qword ptr [rax], 0x7f
and byte ptr [rsi], 1
and rcx, qword ptr [rax]
and [rax], rcx
or rbx, rax
or rax, 1
or eax, 0x1000
or qword ptr [rax], 0x7f
or byte ptr [rsi], 1
or rcx, qword ptr [rax]
or [rax], rcx
xor rbx, rax
xor rax, 1
xor eax, 0x1000
xor qword ptr [rax], 0x7f
xor byte ptr [rsi], 1
xor rcx, qword ptr [rax]
xor [rax], rcx
cmp rbx, rax
cmp rax, 1
cmp eax, 0x1000
cmp qword ptr [rax], 0x7f
cmp byte ptr [rsi], 1
cmp rcx, qword ptr [rax]
cmp [rax], rcx
test rbx, rax
test al, 1
test ecx, 0x1000
test qword ptr [rax], 1
test [rax], rbx
test rbx, [rax]
inc rax
inc qword ptr [rax]
inc byte ptr [rsp+8]
dec rax
dec qword ptr [rax]
dec byte ptr [rsp+8]
neg rax
neg qword ptr [rax]
neg byte ptr [rsp+8]
not rax
not qword ptr [rax]
not byte ptr [rsp+8]
mul rax
mul qword ptr [rax]
mul byte ptr [rsp+8]
div rax
div qword ptr [rax]
div byte ptr [rsp+8]
idiv rax
idiv qword ptr [rax]
idiv byte ptr [rsp+8]
lock inc qword ptr [rax]
imul rcx
imul rax, rbx
imul rax, rbx, 3
imul rax, 10
imul ecx, dword ptr [rsi], 0x1000
shl rax, 1
shl ecx, 4
shl r9b, cl
shl qword ptr [rax], 3
sal rax, 1
sal ecx, 4
sal r9b, cl
sal qword ptr [rax], 3
shr rax, 1
shr ecx, 4
shr r9b, cl
shr qword ptr [rax], 3
sar rax, 1
sar ecx, 4
sar r9b, cl
sar qword ptr [rax], 3
rol rax, 1
rol ecx, 4
rol r9b, cl
rol qword ptr [rax], 3
ror rax, 1
ror ecx, 4
ror r9b, cl
ror qword ptr [rax], 3
rcl rax, 1
rcl ecx, 4
rcl r9b, cl
rcl qword ptr [rax], 3
rcr rax, 1
rcr ecx, 4
rcr r9b, cl
rcr qword ptr [rax], 3
shld rax, rbx, 4
shrd qword ptr [rax], rbx, cl
bt rbx, rax
bt qword ptr [rax], 63
bts rbx, rax
bts qword ptr [rax], 63
btr rbx, rax
btr qword ptr [rax], 63
btc rbx, rax
btc qword ptr [rax], 63
bsf rbx, rax
bsf ecx, dword ptr [rax]
bsr rbx, rax
bsr ecx, dword ptr [rax]
tzcnt rbx, rax
tzcnt ecx, dword ptr [rax]
lzcnt rbx, rax
lzcnt ecx, dword ptr [rax]
popcnt rbx, rax
popcnt ecx, dword ptr [rax]
bswap rcx
bswap eax
sete al
setz al
setne al
setnz al
seta al
setnbe al
setae al
setnb al
setnc al
setb al
setc al
setnae al
setbe al
setna al
setg al
setnle al
setge al
setnl al
setl al
setnge al
setle al
setng al
sets al
setns al
seto al
setno al
setp al
setpe al
setnp al
setpo al
cmove rbx, rax
cmovnz rbx, rax
cmovae rbx, rax
cmovb rbx, rax
cmovbe rbx, rax
cmovnle rbx, rax
cmovl rbx, rax
cmovng rbx, rax
cmovo rbx, rax
cmovpe rbx, rax
je back_label
jnz back_label
jae back_label
jb back_label
jbe back_label
jnle back_label
jl back_label
jng back_label
jo back_label
jpe back_label
jmp back_label
jmp fwd_label
jmp rax
jmp qword ptr [rax]
jmp qword ptr [rip+fwd_label]
call back_label
call rax
call qword ptr [rax+8]
ret
ret 8
push rax
pop r15
push qword ptr [rax]
pop qword ptr [rsp+8]
push 1
push 0x1000
pushfq
popfq
leave
cbw
cwde
cdqe
cwd
cdq
cqo
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
nop dword ptr [rax]
nop word ptr [rax+rax*1+0x0]
int 0x80
movsb
movsw
movsd
movsq
stosb
stosw
stosd
stosq
lodsb
lodsw
lodsd
lodsq
cmpsb
cmpsw
cmpsd
cmpsq
scasb
scasw
scasd
scasq
rep movsb
rep stosq
repe cmpsb
repne scasb
invlpg [rax]
invpcid rcx, [rax]
lidt [rax]
lgdt [rsp+8]
sidt [rdi]
sgdt [rdi]
mov rax, rbx ; add rax, 1
lock
add dword ptr [rax], 1
.byte 1, 2, 0xff
.quad big
.long 1 + 2 * 3
jmp short back_label
mov byte ptr [rax], 'a'
call near ptr back_label
push qword ptr gs:[0x28]
mov r8b, byte ptr [rsi+rdi*1-1]
movzx eax, byte ptr fs:[rax]
xor r15d, r15d
ret 0x10
fwd_label:
nop
