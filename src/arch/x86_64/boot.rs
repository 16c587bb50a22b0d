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

/// Bytes of stack per core (`STACK_SIZE` in linker/x86_64.ld).
const STACK_SIZE: u64 = 0x10000;

/// Top of CPU `cpu`'s stack (application processors).
pub fn stack_top(cpu: usize) -> u64 {
    extern "C" {
        static __cpu_stacks: u8;
    }
    core::ptr::addr_of!(__cpu_stacks) as u64 + (cpu as u64 + 1) * STACK_SIZE
}

/// Where application processors start (SIPI vector `AP_ENTRY >> 12`); the
/// real-mode trampoline is assembled for this address (`AP_BASE` in
/// entry.S).
pub const AP_ENTRY: u64 = 0x8000;

/// The application processors' real-mode trampoline, to copy to
/// [`AP_ENTRY`].
pub fn ap_trampoline() -> &'static [u8] {
    extern "C" {
        static ap_trampoline_start: u8;
        static ap_trampoline_end: u8;
    }
    let start = core::ptr::addr_of!(ap_trampoline_start);
    let end = core::ptr::addr_of!(ap_trampoline_end) as usize;
    // SAFETY: both symbols delimit the trampoline in the image's text.
    unsafe { core::slice::from_raw_parts(start, end - start as usize) }
}
