//! Entry from GRUB: the multiboot2 header and the 32→64-bit trampoline in
//! `boot/x86_64/entry.S`, which calls `tessera_x86_main` in long mode.

core::arch::global_asm!(include_str!("../../../boot/x86_64/entry.S"), options(att_syntax));

/// Top of the boot core's stack.
pub fn boot_stack_top() -> u64 {
    extern "C" {
        static __boot_stack_top: u8;
    }
    core::ptr::addr_of!(__boot_stack_top) as u64
}

/// First byte after the image (bss and stacks included), 2 MiB aligned.
pub fn image_end() -> u64 {
    extern "C" {
        static __image_end: u8;
    }
    core::ptr::addr_of!(__image_end) as u64
}
