//! Entry from firmware: the arm64 `Image` header (so QEMU `-kernel`, U-Boot
//! `booti` and the Raspberry Pi firmware can start us), the boot core's path
//! into Rust, and the entry point secondary cores get from PSCI CPU_ON.

use core::arch::global_asm;

/// Bytes of stack per core (must match `STACK_SIZE` in linker/aarch64.ld).
pub const STACK_SIZE: usize = 0x10000;

global_asm!(
    r#"
.section .text.head, "ax"
.global _start
_start:
    // arm64 Image header (Documentation/arch/arm64/booting.rst).
    b       primary_entry           // code0
    .long   0                       // code1
    .quad   0                       // text_offset: loaders place us at a 2 MiB boundary + 0
    .quad   __image_size            // image_size, including bss and stacks
    .quad   0xa                     // flags: little-endian, 4 KiB pages, anywhere in RAM
    .quad   0, 0, 0                 // reserved
    .ascii  "ARM\x64"               // magic
    .long   0                       // reserved (PE header offset)

primary_entry:
    msr     daifset, #0xf
    mov     x19, x0                 // firmware device tree
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    2f
    adrp    x1, __boot_stack_top
    add     x1, x1, :lo12:__boot_stack_top
    mov     sp, x1
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    3f
    str     xzr, [x1], #8
    b       1b
3:  mov     x0, x19
    bl      tessera_primary_main
2:  wfe                             // not entered at EL2, or main returned
    b       2b

.global tessera_secondary_entry
tessera_secondary_entry:
    // x0 = physical CPU index (the PSCI CPU_ON context id).
    msr     daifset, #0xf
    adrp    x1, __cpu_stacks
    add     x1, x1, :lo12:__cpu_stacks
    mov     x2, #{stack_size}
    madd    x1, x0, x2, x1
    add     sp, x1, x2
    bl      tessera_secondary_main
4:  wfe
    b       4b
"#,
    stack_size = const STACK_SIZE,
);

extern "C" {
    /// Entry of secondary cores (physical address: we run identity-mapped).
    pub fn tessera_secondary_entry();
    static __image_end: u8;
    static __boot_stack_top: u8;
}

/// Top of the boot core's stack.
pub fn boot_stack_top() -> u64 {
    core::ptr::addr_of!(__boot_stack_top) as u64
}

/// First byte after the hypervisor image, its bss and its stacks.
pub fn image_end() -> u64 {
    core::ptr::addr_of!(__image_end) as u64
}
