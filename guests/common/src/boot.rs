//! Entry point: per-vCPU stacks, BSS zeroing and the hand-off to Rust.

use crate::{smp, MAX_CPUS};

core::arch::global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    // x0 = context id (0 for the boot vCPU); keep it for the Rust entry.
    mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    cmp     x1, #{max_cpus}
    b.hs    2f

    // sp = __stacks_start + (cpu + 1) * STACK_SIZE
    adrp    x2, __stacks_start
    add     x2, x2, :lo12:__stacks_start
    add     x3, x1, #1
    lsl     x3, x3, #{stack_shift}
    add     sp, x2, x3

    adrp    x2, __tessera_vectors
    add     x2, x2, :lo12:__tessera_vectors
    msr     vbar_el1, x2
    isb

    // Only vCPU 0 zeroes BSS: the others are started later by it.
    cbnz    x1, 1f
    adrp    x2, __bss_start
    add     x2, x2, :lo12:__bss_start
    adrp    x3, __bss_end
    add     x3, x3, :lo12:__bss_end
0:  cmp     x2, x3
    b.hs    1f
    str     xzr, [x2], #8
    b       0b

1:  bl      {rust_entry}
    // Not reached: the Rust entry never returns.
2:  wfe
    b       2b
"#,
    max_cpus = const MAX_CPUS,
    stack_shift = const STACK_SHIFT,
    rust_entry = sym rust_entry,
);

/// log2 of the per-vCPU stack size; must match `STACK_SIZE` in guest.ld.
const STACK_SHIFT: u32 = 14;

extern "C" {
    /// First instruction of the image (defined in the assembly above).
    fn _start();
    static __image_end: u8;
}

/// Guest-physical address of `_start`, used as the CPU_ON entry point.
pub fn entry_address() -> u64 {
    _start as *const () as u64
}

/// First byte after the image, its BSS and all vCPU stacks (page aligned).
pub fn image_end() -> u64 {
    // Only the address of the linker symbol is taken, never its value.
    core::ptr::addr_of!(__image_end) as u64
}

extern "Rust" {
    /// The guest's main function, defined by [`entry!`](crate::entry).
    fn __tessera_guest_main() -> !;
}

/// Called by `_start` with the PSCI context id and this vCPU's index.
extern "C" fn rust_entry(context_id: u64, cpu: u64) -> ! {
    if cpu == 0 {
        // SAFETY: `entry!` defines this symbol with exactly this signature.
        unsafe { __tessera_guest_main() }
    } else {
        smp::secondary_entry(cpu as usize, context_id)
    }
}

/// Names the guest's main function, `fn() -> !`, run on vCPU 0 after boot.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[doc(hidden)]
        #[no_mangle]
        pub fn __tessera_guest_main() -> ! {
            let main: fn() -> ! = $main;
            main()
        }
    };
}
