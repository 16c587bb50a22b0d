//! Entry from firmware: the arm64 `Image` header (so QEMU `-kernel`, U-Boot
//! `booti` and the Raspberry Pi firmware can start us), the boot core's path
//! into Rust, and the entry point secondary cores get from PSCI CPU_ON or a
//! spin table (they find their CPU index, and so their stack, from MPIDR).

use super::el2_map::ImageLayout;
use crate::config::{MemRange, SYSTEM};
use core::arch::global_asm;
use tessera_config::MAX_CPUS;

/// The board's MPIDR affinity values in CPU-index order, unused slots
/// `u64::MAX` (no MPIDR has every bit set): what a secondary core searches
/// for its own index before it has a stack.
#[no_mangle]
static TESSERA_CPU_MPIDRS: [u64; MAX_CPUS] = {
    let mut t = [u64::MAX; MAX_CPUS];
    let mut i = 0;
    while i < SYSTEM.board.cpu_mpidrs.len() {
        t[i] = SYSTEM.board.cpu_mpidrs[i];
        i += 1;
    }
    t
};

/// Entries of [`TESSERA_CPU_MPIDRS`] in use.
#[no_mangle]
static TESSERA_CPU_COUNT: u64 = SYSTEM.board.cpu_mpidrs.len() as u64;

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
    // Started by PSCI CPU_ON or released from a spin table, MMU off. The
    // CPU index is where MPIDR_EL1's affinity (Aff3, Aff2..Aff0) sits in the
    // board's table, whoever started the core; its stack slot is
    // 1 + index, the stack top the slot's end. A core at another EL or
    // not in the table parks.
    msr     daifset, #0xf
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    4f
    mrs     x1, mpidr_el1
    and     x2, x1, #0xffffff
    ubfx    x1, x1, #32, #8
    orr     x1, x2, x1, lsl #32
    adrp    x3, TESSERA_CPU_MPIDRS
    add     x3, x3, :lo12:TESSERA_CPU_MPIDRS
    adrp    x4, TESSERA_CPU_COUNT
    ldr     x4, [x4, :lo12:TESSERA_CPU_COUNT]
    mov     x0, #0
5:  cmp     x0, x4
    b.hs    4f
    ldr     x5, [x3, x0, lsl #3]
    cmp     x5, x1
    b.eq    6f
    add     x0, x0, #1
    b       5b
6:  adrp    x1, __cpu_stacks
    add     x1, x1, :lo12:__cpu_stacks
    movz    x2, #:abs_g1:__stack_stride
    movk    x2, #:abs_g0_nc:__stack_stride
    madd    x1, x0, x2, x1
    add     sp, x1, x2
    bl      tessera_secondary_main
4:  wfe
    b       4b
"#
);

extern "C" {
    /// Entry of secondary cores (physical address: we run identity-mapped).
    pub fn tessera_secondary_entry();
    static __image_start: u8;
    static __image_end: u8;
    static __boot_stack_top: u8;
    static __cpu_stacks: u8;
    static __stacks_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
}

/// The value of an absolute linker-script symbol (a constant the linker
/// script defines and Rust reads, so it is defined once).
macro_rules! linker_constant {
    ($sym:literal) => {{
        let v: u64;
        // SAFETY: loads an absolute symbol's value into a register; no memory
        // access.
        unsafe {
            core::arch::asm!(
                concat!("movz {0}, #:abs_g1:", $sym),
                concat!("movk {0}, #:abs_g0_nc:", $sym),
                out(reg) v,
                options(nomem, nostack, pure)
            )
        };
        v
    }};
}

/// Distance between stacks: a guard page plus the stack.
fn stack_stride() -> u64 {
    linker_constant!("__stack_stride")
}

/// Top of physical CPU `cpu`'s EL2 stack.
pub fn cpu_stack_top(cpu: usize) -> u64 {
    core::ptr::addr_of!(__cpu_stacks) as u64 + (cpu as u64 + 1) * stack_stride()
}

/// Where the image's parts lie, for the EL2 map.
pub fn image_layout() -> ImageLayout {
    let start = core::ptr::addr_of!(__image_start) as u64;
    let text_end = core::ptr::addr_of!(__text_end) as u64;
    let ro_start = core::ptr::addr_of!(__rodata_start) as u64;
    let ro_end = core::ptr::addr_of!(__rodata_end) as u64;
    ImageLayout {
        text: MemRange {
            base: start,
            size: text_end - start,
        },
        rodata: MemRange {
            base: ro_start,
            size: ro_end - ro_start,
        },
        first_guard: core::ptr::addr_of!(__stacks_start) as u64,
        guard_stride: stack_stride(),
        stacks: linker_constant!("__stack_slots") as usize,
    }
}

/// Top of the boot core's stack.
pub fn boot_stack_top() -> u64 {
    core::ptr::addr_of!(__boot_stack_top) as u64
}

/// First byte after the hypervisor image, its bss and its stacks.
pub fn image_end() -> u64 {
    core::ptr::addr_of!(__image_end) as u64
}
