//! The hypervisor's own descriptor tables: a GDT with a TSS (VMX needs a
//! non-null host TR) and an IDT whose exception handlers report and stop —
//! an exception in VMX root is a hypervisor bug, never a guest's doing.

use core::arch::global_asm;
use core::cell::UnsafeCell;
use x86::dtables::{lgdt, lidt, DescriptorTablePointer};
use x86::segmentation::SegmentSelector;
use x86::Ring;

/// Code segment selector (same as the boot trampoline's GDT).
pub const CODE_SELECTOR: u16 = 0x08;
/// Data segment selector.
pub const DATA_SELECTOR: u16 = 0x10;
/// TSS selector.
pub const TSS_SELECTOR: u16 = 0x18;

/// 64-bit TSS (SDM 8.7): we use no stack switching; the I/O map base
/// points past the end (no I/O permission bitmap).
#[repr(C, align(16))]
struct Tss([u32; 26]);

/// Tables one core owns, written once before they are loaded.
struct Tables {
    gdt: [u64; 5],
    tss: Tss,
    idt: [[u64; 2]; 32],
}

struct PerCpu(UnsafeCell<[Tables; tessera_config::MAX_CPUS]>);
// SAFETY: each core only touches its own entry, once, at boot.
unsafe impl Sync for PerCpu {}

static TABLES: PerCpu = PerCpu(UnsafeCell::new(
    [const {
        Tables {
            gdt: [0; 5],
            tss: Tss([0; 26]),
            idt: [[0; 2]; 32],
        }
    }; tessera_config::MAX_CPUS],
));

global_asm!(
    r#"
.section .text
.balign 16
.global tessera_x86_exception_stubs
tessera_x86_exception_stubs:
.set vector, 0
.rept 32
.balign 16
    pushq $vector
    jmp tessera_x86_exception_common
.set vector, vector + 1
.endr

tessera_x86_exception_common:
    movq (%rsp), %rdi
    leaq 8(%rsp), %rsi
    andq $-16, %rsp
    call tessera_x86_exception
1:  cli
    hlt
    jmp 1b
"#,
    options(att_syntax)
);

/// Vectors that push an error code.
const fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

#[no_mangle]
extern "C" fn tessera_x86_exception(vector: u64, frame: *const u64) -> ! {
    let skip = usize::from(has_error_code(vector));
    // SAFETY: the CPU pushed [error code,] RIP, CS, RFLAGS, RSP, SS at `frame`.
    let (rip, error) = unsafe { (*frame.add(skip), if skip == 1 { *frame } else { 0 }) };
    // SAFETY: reading CR2 has no side effect.
    let cr2 = unsafe { x86::controlregs::cr2() };
    crate::console::print_emergency(format_args!(
        "PANIC: CPU exception {} in the hypervisor at rip {:#x} (error {:#x}, cr2 {:#x})",
        vector, rip, error, cr2
    ));
    super::interface::fail_stop(2)
}

fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    let low = (limit & 0xffff)
        | (base & 0xff_ffff) << 16
        | 0x89 << 40 // present, 64-bit TSS (available)
        | ((limit >> 16) & 0xf) << 48
        | ((base >> 24) & 0xff) << 56;
    [low, base >> 32]
}

fn interrupt_gate(handler: u64) -> [u64; 2] {
    let low = (handler & 0xffff)
        | u64::from(CODE_SELECTOR) << 16
        | 0x8e << 40 // present, DPL 0, 64-bit interrupt gate
        | ((handler >> 16) & 0xffff) << 48;
    [low, handler >> 32]
}

/// Loads this core's GDT (with its TSS) and IDT. Once per core, at boot.
pub fn init(cpu: usize) {
    extern "C" {
        static tessera_x86_exception_stubs: u8;
    }
    let stubs = core::ptr::addr_of!(tessera_x86_exception_stubs) as u64;
    // SAFETY: core `cpu` is the only one writing its entry, before loading it.
    let t = unsafe { &mut (*TABLES.0.get())[cpu % tessera_config::MAX_CPUS] };
    t.tss.0[25] = (core::mem::size_of::<Tss>() as u32) << 16; // I/O map base
    let tss = tss_descriptor(&t.tss as *const Tss as u64);
    t.gdt = [
        0,
        0x00af_9a00_0000_ffff, // 64-bit code
        0x00cf_9200_0000_ffff, // data
        tss[0],
        tss[1],
    ];
    for (i, gate) in t.idt.iter_mut().enumerate() {
        *gate = interrupt_gate(stubs + 16 * i as u64);
    }
    let gdt = DescriptorTablePointer::new_from_slice(&t.gdt);
    let idt = DescriptorTablePointer::new_from_slice(&t.idt);
    // SAFETY: the tables are static and complete; the code and data
    // selectors are those already loaded, so no segment reload is needed;
    // the TSS descriptor is fresh (not busy).
    unsafe {
        lgdt(&gdt);
        lidt(&idt);
        x86::task::load_tr(SegmentSelector::new(TSS_SELECTOR / 8, Ring::Ring0));
    }
}

/// Base of this core's GDT, IDT and TSS (VMCS host state).
pub fn bases(cpu: usize) -> (u64, u64, u64) {
    // SAFETY: read-only after `init`.
    let t = unsafe { &(*TABLES.0.get())[cpu % tessera_config::MAX_CPUS] };
    (
        t.gdt.as_ptr() as u64,
        t.idt.as_ptr() as u64,
        &t.tss as *const Tss as u64,
    )
}
