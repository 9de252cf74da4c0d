// The simulator's fiber switch for x86-64 (System V): saves the callee-saved registers, the SSE control
// and status register and the x87 control word on the current stack, stores the stack pointer, and
// resumes the other fiber the same way. Everything else is caller-saved, so a switch is a function call
// to the compiler. A syscall-free switch is what makes one fiber per CUDA thread affordable.
//
//   void heed_sim_switch(void** save_sp, void* resume_sp);
//   heed_sim_fiber_start: the first "return address" of a fresh fiber; calls r13(r12) on an aligned stack.

    .text
    .globl heed_sim_switch
    .type heed_sim_switch, @function
heed_sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $16, %rsp
    stmxcsr 8(%rsp)
    fnstcw (%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr 8(%rsp)
    fldcw (%rsp)
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size heed_sim_switch, .-heed_sim_switch

    .globl heed_sim_fiber_start
    .type heed_sim_fiber_start, @function
heed_sim_fiber_start:
    movq %r12, %rdi
    andq $-16, %rsp
    callq *%r13
    ud2
    .size heed_sim_fiber_start, .-heed_sim_fiber_start

    .section .note.GNU-stack,"",@progbits
