# FreeBSD device pager, 2007: the terminating side and shared helpers.
# Shared by freebsd-pager-lookup-race.ron (bug) and
# freebsd-pager-lookup-race-fixed.ron (fix); they differ in dev_pager_alloc's
# lookup (core 0), written in each scenario file. Our own code following the
# sequence in seed 004 (the device-pager lookup and object termination).
#
# struct vm_object (offsets from the scenario): O_LOCK, O_FLAGS, O_REF,
# O_HANDLE, O_NEXT (link on dev_pager_object_list).

# spin_lock(%rdi = lock word): test-and-test-and-set with XCHG. Clobbers rax.
spin_lock:
    movl $1, %eax
    xchgq %rax, (%rdi)
    testq %rax, %rax
    jz 2f
1:
    pause
    cmpq $0, (%rdi)
    jne 1b
    jmp spin_lock
2:
    ret

# spin_unlock(%rdi): a plain store releases on x86.
spin_unlock:
    movq $0, (%rdi)
    ret

# ---------------------------------------------------------------------------
# Core 1 (Pt): drops the last reference to the device object and terminates it.
# ---------------------------------------------------------------------------
pt_start:
    movq $obj1, %rbx
    # vm_object_deallocate: lock the object and drop the reference.
    leaq O_LOCK(%rbx), %rdi
    call spin_lock
    decq O_REF(%rbx)
    jnz pt_keep                      # still referenced: done
    # Last reference: vm_object_terminate marks the object dead under its lock.
    orq $OBJ_DEAD, O_FLAGS(%rbx)
pt_dead_set:
    # terminate drops the object lock (it waits for paging and cleans pages
    # without it) ...
    leaq O_LOCK(%rbx), %rdi
    call spin_unlock
pt_obj_unlocked:
    # ... then the pager's dealloc: under dev_pager_mtx, unlink the object from
    # dev_pager_object_list.
    movq $dev_pager_mtx, %rdi
    call spin_lock
    movq $dev_pager_list, %rcx       # rcx = address of the link that points at obj
3:
    movq (%rcx), %rax
    testq %rax, %rax
    jz 5f
    cmpq %rbx, %rax
    je 4f
    leaq O_NEXT(%rax), %rcx
    jmp 3b
4:
    movq O_NEXT(%rbx), %rax
    movq %rax, (%rcx)
5:
    movq $dev_pager_mtx, %rdi
    call spin_unlock
pt_unlinked:
    # uma_zfree: back to the zone; with INVARIANTS the memory is trashed.
    movq %rbx, %rdi
    movabsq $POISON, %rax
    movl $OBJ_QUADS, %ecx
    rep stosq
pt_freed:
    movq $1, pt_done
    hlt
pt_keep:
    leaq O_LOCK(%rbx), %rdi
    call spin_unlock
    movq $1, pt_done
    hlt

# ---------------------------------------------------------------------------
# Core 0 (Pa), common tail: allocate a fresh object for the device when the
# lookup found none (under dev_pager_mtx, inserted at the list head), and the
# caller's later use of the object it got.
# ---------------------------------------------------------------------------
pa_alloc_new:
    movq $dev_pager_mtx, %rdi
    call spin_lock
    movq $obj2, %rbx                 # from the zone
    movq $0, O_LOCK(%rbx)
    movq $0, O_FLAGS(%rbx)
    movq $1, O_REF(%rbx)
    movq $CDEV, O_HANDLE(%rbx)
    movq dev_pager_list, %rax
    movq %rax, O_NEXT(%rbx)
    movq %rbx, dev_pager_list
    movq $dev_pager_mtx, %rdi
    call spin_unlock
    jmp pa_got_object

pa_got_object:
    # dev_pager_alloc returns the object; the mmap path maps it and the fault
    # path later uses it (its handle names the cdev).
    movq %rbx, result_obj
    # Some time later (after the other core is done):
6:
    pause
    cmpq $0, pt_done
    je 6b
pa_use:
    movq O_HANDLE(%rbx), %rax
    movq %rax, result_handle
    movq O_REF(%rbx), %rax
    movq %rax, result_ref
pa_done:
    hlt
