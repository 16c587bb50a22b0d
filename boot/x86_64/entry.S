/* Tessera x86_64 entry: the multiboot2 header GRUB looks for, and the
 * trampoline from the 32-bit protected mode GRUB leaves us in (paging off,
 * EAX = multiboot2 magic, EBX = boot information) to 64-bit long mode with
 * the first 4 GiB identity-mapped by 2 MiB pages. Then the application
 * processors' real-mode entry, copied below 1 MiB by the boot CPU before it
 * sends INIT-SIPI-SIPI. Included by src/arch/x86_64/boot.rs; AT&T syntax. */

.set MB2_MAGIC, 0xe85250d6
.set MB2_ARCH_I386, 0
.set MB2_LENGTH, mb2_header_end - mb2_header

.section .multiboot2, "a"
.balign 8
mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long MB2_LENGTH
    .long -(MB2_MAGIC + MB2_ARCH_I386 + MB2_LENGTH)
    /* End tag: no other requests (text console, no framebuffer). */
    .word 0
    .word 0
    .long 8
mb2_header_end:

.section .text.boot, "ax"
.code32
.global _start
_start:
    cli
    cld
    movl %eax, boot_magic
    movl %ebx, boot_info
    movl $__boot_stack_top, %esp

    /* The BSS is zeroed by the loader (multiboot2 ELF loading); the page
     * tables are written whole anyway. */
    movl $boot_pml4, %edi
    xorl %eax, %eax
    movl $(2 * 4096 / 4), %ecx
    rep stosl

    /* PD entries 0..2047: 2 MiB pages, present | writable | page size. */
    movl $boot_pd, %edi
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, (%edi,%ecx,8)
    movl %ecx, %eax
    shrl $11, %eax
    movl %eax, 4(%edi,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb 1b

    /* PDPT entries 0..3 -> the four PDs; PML4 entry 0 -> the PDPT. */
    movl $boot_pdpt, %edi
    movl $(boot_pd + 3), %eax
    movl %eax, 0(%edi)
    addl $4096, %eax
    movl %eax, 8(%edi)
    addl $4096, %eax
    movl %eax, 16(%edi)
    addl $4096, %eax
    movl %eax, 24(%edi)
    movl $(boot_pdpt + 3), boot_pml4

    /* PAE, then the tables, then EFER.LME, then paging: long mode. */
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $start64

.code64
start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    /* The top 128 bytes hold the boot vCPU's guest registers later. */
    movq $(__boot_stack_top - 128), %rsp
    movl boot_magic, %edi
    movl boot_info, %esi
    call tessera_x86_main
2:  hlt
    jmp 2b

.set AP_BASE, 0x8000

/* Application processors start here in real mode at AP_BASE (SIPI vector
 * AP_BASE >> 12) once the boot CPU has copied ap_trampoline_start..end
 * there: protected mode, the boot page tables, long mode, then
 * tessera_x86_ap_main(TESSERA_AP_CPU) on the stack TESSERA_AP_STACK. */
.section .text.boot, "ax"
.code16
.global ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl (ap_gdt_ptr - ap_trampoline_start + AP_BASE)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x18, $(ap_protected - ap_trampoline_start + AP_BASE)
.code32
ap_protected:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    ljmp $0x08, $ap_long
.balign 8
/* Null, 64-bit code, data, 32-bit code (for the step through protected
 * mode). */
ap_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00cf9a000000ffff
ap_gdt_ptr:
    .word ap_gdt_ptr - ap_gdt - 1
    .long ap_gdt - ap_trampoline_start + AP_BASE
.global ap_trampoline_end
ap_trampoline_end:

.code64
ap_long:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq TESSERA_AP_STACK(%rip), %rsp
    movq TESSERA_AP_CPU(%rip), %rdi
    call tessera_x86_ap_main
3:  hlt
    jmp 3b

.section .rodata.boot, "a"
.balign 8
/* Null, 64-bit code (0x08), data (0x10): the same selectors the Rust GDT
 * (with its TSS) keeps. */
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

.section .bss.boot, "aw", @nobits
.balign 4096
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4 * 4096
boot_magic: .long 0
boot_info:  .long 0
