//! Runtime of the x86 test guests: entry, COM1 console, CPUID, VMCALL,
//! and a minimal GDT/IDT whose #GP handler counts the fault and skips the
//! instruction that raised it (`GP_SKIP` bytes: 2 for most probes,
//! `rdmsr`, `mov eax, [rdx]`; [`probe3`] sets 3).

// Each guest binary uses part of the runtime.
#![allow(dead_code)]

use core::arch::{asm, global_asm};
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    leaq __stack_top(%rip), %rsp
    call guest_main
1:  hlt
    jmp 1b

.section .text
.global guest_gp_handler
guest_gp_handler:
    addq $8, %rsp
    pushq %rax
    movq GP_SKIP(%rip), %rax
    addq %rax, 8(%rsp)
    popq %rax
    incl GP_COUNT(%rip)
    iretq

// Interrupt handlers that count into `counter`, then EOI through the
// x2APIC EOI MSR: timer interrupts and IPIs.
.macro counting_handler name, counter
.global \name
\name:
    pushq %rax
    pushq %rcx
    pushq %rdx
    incl \counter(%rip)
    movl $0x80b, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    popq %rdx
    popq %rcx
    popq %rax
    iretq
.endm
counting_handler guest_timer_handler, TIMER_COUNT
counting_handler guest_ipi_handler, IPI_COUNT
"#,
    options(att_syntax)
);

/// COM1.
pub const COM1: u16 = 0x3f8;
/// COM1 line status register: transmit holding register empty, transmitter
/// empty.
pub const LSR: u16 = COM1 + 5;
pub const LSR_THRE_TEMT: u8 = 0x60;
/// COM1 scratch register.
pub const SCR: u16 = COM1 + 7;
/// COM2: no device there in this VM.
pub const COM2_LSR: u16 = 0x2f8 + 5;

pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: port I/O; the hypervisor decides what it does.
    unsafe { asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack)) };
    v
}

pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O; the hypervisor decides what it does.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) };
}

/// The guest console.
pub struct Com1;

impl fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            while inb(LSR) & 0x20 == 0 {}
            outb(COM1, b);
        }
        Ok(())
    }
}

/// Defines interrupt entry `$name` (an interrupt gate's target): it saves
/// the caller-saved registers (9 pushes keep the stack 16-byte aligned
/// after the CPU's 40-byte frame), calls `extern "C" fn $target()` and
/// returns with `iretq`.
#[macro_export]
macro_rules! interrupt_entry {
    ($name:literal, $target:literal) => {
        core::arch::global_asm!(
            concat!(".global ", $name, "\n", $name, ":\n"),
            "pushq %rax",
            "pushq %rcx",
            "pushq %rdx",
            "pushq %rsi",
            "pushq %rdi",
            "pushq %r8",
            "pushq %r9",
            "pushq %r10",
            "pushq %r11",
            "cld",
            concat!("call ", $target),
            "popq %r11",
            "popq %r10",
            "popq %r9",
            "popq %r8",
            "popq %rdi",
            "popq %rsi",
            "popq %rdx",
            "popq %rcx",
            "popq %rax",
            "iretq",
            options(att_syntax)
        );
    };
}

/// Prints a line on COM1.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{ let _ = core::fmt::Write::write_fmt(&mut $crate::rt::Com1, format_args!("{}\n", format_args!($($arg)*))); }};
}

pub fn check(name: &str, ok: bool) {
    crate::println!("TEST {}: {}", name, if ok { "PASS" } else { "FAIL" });
}

pub fn cpuid(leaf: u32) -> [u32; 4] {
    // CPUID exits to the hypervisor, which answers it.
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// VMCALL with RAX = `id`: RAX, RBX, RCX, RDX, RSI after it.
pub fn vmcall(id: u32) -> [u64; 5] {
    let (a, b, c, d, s): (u64, u64, u64, u64, u64);
    // SAFETY: VMCALL exits to the hypervisor; RBX is saved by hand since
    // LLVM reserves it.
    unsafe {
        asm!(
            "mov {tmp}, rbx",
            "vmcall",
            "xchg {tmp}, rbx",
            tmp = out(reg) b,
            inout("rax") u64::from(id) => a,
            out("rcx") c,
            out("rdx") d,
            out("rsi") s,
        )
    };
    [a, b, c, d, s]
}

/// Writes `bytes` to COM1 with one `rep outsb` (a string port instruction
/// the hypervisor emulates); returns RSI and RCX after it.
pub fn rep_outsb(bytes: &[u8]) -> (u64, u64) {
    let (rsi, rcx): (u64, u64);
    // SAFETY: reads `bytes` only; the port output exits to the hypervisor.
    unsafe {
        asm!(
            "rep outsb",
            inout("rsi") bytes.as_ptr() as u64 => rsi,
            inout("rcx") bytes.len() as u64 => rcx,
            in("dx") COM1,
            options(nostack, readonly)
        )
    };
    (rsi, rcx)
}

/// #GP faults taken (the handler's counter).
#[no_mangle]
static GP_COUNT: AtomicU32 = AtomicU32::new(0);

/// Bytes the #GP handler skips.
#[no_mangle]
static GP_SKIP: AtomicU64 = AtomicU64::new(2);

/// Runs a 3-byte probe that may #GP (the handler then skips 3 bytes).
pub fn probe3<R>(f: impl FnOnce() -> R) -> R {
    GP_SKIP.store(3, Ordering::SeqCst);
    let r = f();
    GP_SKIP.store(2, Ordering::SeqCst);
    r
}

/// #GP faults taken so far.
pub fn gp_count() -> u32 {
    GP_COUNT.load(Ordering::SeqCst)
}

#[repr(C, packed)]
struct TablePointer {
    limit: u16,
    base: u64,
}

/// Null, 64-bit code (0x08), data (0x10): the selectors the hypervisor
/// entered us with, so nothing needs reloading.
static GDT: [u64; 3] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];
/// Vectors the IDT covers (#GP at 13, the timer vectors below 0x50).
const IDT_ENTRIES: usize = 0x50;
static mut IDT: [[u64; 2]; IDT_ENTRIES] = [[0; 2]; IDT_ENTRIES];

/// Timer interrupts taken (the timer handler's counter).
#[no_mangle]
static TIMER_COUNT: AtomicU32 = AtomicU32::new(0);

/// Timer interrupts taken so far.
pub fn timer_count() -> u32 {
    TIMER_COUNT.load(Ordering::SeqCst)
}

/// IPIs taken (the IPI handler's counter).
#[no_mangle]
static IPI_COUNT: AtomicU32 = AtomicU32::new(0);

/// IPIs taken so far.
pub fn ipi_count() -> u32 {
    IPI_COUNT.load(Ordering::SeqCst)
}

extern "C" {
    fn guest_gp_handler();
    fn guest_timer_handler();
    fn guest_ipi_handler();
}

/// Points vector `v` (below `IDT_ENTRIES`) at the IPI handler.
pub fn install_ipi_vector(v: usize) {
    // SAFETY: as for `install_timer_vector`.
    unsafe {
        let idt = &raw mut IDT;
        (*idt)[v] = gate(guest_ipi_handler);
    }
}

/// An interrupt gate to `handler` in the 64-bit code segment.
fn gate(handler: unsafe extern "C" fn()) -> [u64; 2] {
    let h = handler as *const () as u64;
    [
        (h & 0xffff) | 0x08 << 16 | 0x8e << 40 | ((h >> 16) & 0xffff) << 48,
        h >> 32,
    ]
}

/// Points vector `v` (below `IDT_ENTRIES`) at `handler` (an interrupt
/// gate: it must save what it uses and end with `iretq`).
pub fn install_handler(v: usize, handler: unsafe extern "C" fn()) {
    // SAFETY: as for `install_timer_vector`.
    unsafe {
        let idt = &raw mut IDT;
        (*idt)[v] = gate(handler);
    }
}

/// Points vector `v` (below `IDT_ENTRIES`) at the timer handler.
pub fn install_timer_vector(v: usize) {
    // SAFETY: single vCPU; the vector is not in use while it changes
    // (interrupts are off or the timer is not armed on it).
    unsafe {
        let idt = &raw mut IDT;
        (*idt)[v] = gate(guest_timer_handler);
    }
}

/// Installs the GDT and an IDT with the #GP handler, so `iretq` works.
pub fn install_gp_handler() {
    // SAFETY: single vCPU, before any interrupt can use the table.
    unsafe {
        let idt = &raw mut IDT;
        (*idt)[13] = gate(guest_gp_handler);
        let gdtr = TablePointer {
            limit: (core::mem::size_of_val(&GDT) - 1) as u16,
            base: GDT.as_ptr() as u64,
        };
        let idtr = TablePointer {
            limit: (core::mem::size_of::<[[u64; 2]; IDT_ENTRIES]>() - 1) as u16,
            base: idt as u64,
        };
        asm!("lgdt [{}]", "lidt [{}]", in(reg) &gdtr, in(reg) &idtr, options(nostack));
    }
}

/// RDMSR of `msr` (2 bytes: a #GP skips it).
pub fn rdmsr(msr: u32) {
    // SAFETY: RDMSR exits to the hypervisor; a #GP is handled above.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") _, out("edx") _, options(nostack)) };
}

/// RDMSR of `msr`: EDX:EAX.
pub fn rdmsr_value(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDMSR exits to the hypervisor.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nostack)) };
    u64::from(hi) << 32 | u64::from(lo)
}

/// WRMSR of `value` to `msr` (2 bytes: a #GP skips it).
pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: WRMSR exits to the hypervisor, which allows or refuses it.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack))
    };
}

/// A 4-byte load from guest-physical (= virtual) `addr` (2 bytes:
/// `mov eax, [rdx]`).
pub fn load(addr: u64) -> u32 {
    let v: u32;
    // SAFETY: the identity map covers `addr`; outside RAM the hypervisor
    // injects #GP, which the handler skips (EAX then stays 0).
    unsafe {
        asm!("mov eax, [rdx]", in("rdx") addr, inout("eax") 0u32 => v, options(nostack, readonly))
    };
    v
}

/// The time stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the counter (it does not exit).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Enables interrupts and halts until one is taken (STI's shadow covers
/// HLT, so none slips in between).
pub fn sti_hlt() {
    // SAFETY: the IDT has handlers for every vector the guest arms.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
}

/// Interrupts off.
pub fn cli() {
    // SAFETY: only masks interrupts.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// Interrupts on, and one instruction for a pending one to be taken.
pub fn sti_nop() {
    // SAFETY: the IDT has handlers for every vector the guest arms.
    unsafe { asm!("sti", "nop", options(nomem, nostack)) };
}

/// The xAPIC MMIO page.
pub const XAPIC: u64 = 0xfee0_0000;

#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut XAPIC_PD: Table = Table([0; 512]);

/// Maps the xAPIC page (in the 4th GiB, beyond the identity-mapped first
/// GiB the hypervisor enters us with) with a 2 MiB uncacheable page of a
/// page directory of ours, hooked into the entry tables.
pub fn map_xapic_page() {
    map_device_2m(XAPIC);
}

/// The I/O APIC's MMIO page.
pub const IOAPIC: u64 = 0xfec0_0000;

/// Maps the I/O APIC page as [`map_xapic_page`] maps the xAPIC's.
pub fn map_ioapic_page() {
    map_device_2m(IOAPIC);
}

/// Maps the 2 MiB page of `addr` (in the 4th GiB) identity, uncacheable.
fn map_device_2m(addr: u64) {
    const P_RW: u64 = 0b11;
    const PS: u64 = 1 << 7;
    const PWT_PCD: u64 = 0b11 << 3;
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    // SAFETY: the entry tables are in our RAM (identity-mapped) and only
    // gain an entry for an unused GiB; CR3 is reloaded to flush the TLB.
    unsafe {
        let cr3: u64;
        asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack));
        let pml4 = (cr3 & ADDR) as *const u64;
        let pdpt = (*pml4 & ADDR) as *mut u64;
        let pd = &raw mut XAPIC_PD;
        let page = addr & !0x1f_ffff;
        (*pd).0[(page >> 21) as usize & 511] = page | P_RW | PS | PWT_PCD;
        *pdpt.add(3) = pd as u64 | P_RW;
        asm!("mov cr3, {}", in(reg) cr3, options(nostack));
    }
}

/// The MMIO probes, each one instruction with `rdx` as the address (so
/// their encodings are the ones named).
pub mod mmio {
    use core::arch::asm;

    /// `mov eax, [rdx]` (8b 02).
    pub fn load32(a: u64) -> u32 {
        let v: u32;
        // SAFETY: a device access the hypervisor emulates (or #GP, skipped).
        unsafe { asm!("mov eax, [rdx]", in("rdx") a, inout("eax") 0 => v, options(nostack)) };
        v
    }
    /// `movzx eax, byte [rdx]`.
    pub fn load8_zx(a: u64) -> u32 {
        let v: u32;
        // SAFETY: as above.
        unsafe { asm!("movzx eax, byte ptr [rdx]", in("rdx") a, out("eax") v, options(nostack)) };
        v
    }
    /// `movsx eax, byte [rdx]`.
    pub fn load8_sx(a: u64) -> u32 {
        let v: u32;
        // SAFETY: as above.
        unsafe { asm!("movsx eax, byte ptr [rdx]", in("rdx") a, out("eax") v, options(nostack)) };
        v
    }
    /// `mov ax, [rdx]` into a RAX of all ones: the upper bytes stay.
    pub fn load16(a: u64) -> u64 {
        let v: u64;
        // SAFETY: as above.
        unsafe { asm!("mov ax, [rdx]", in("rdx") a, inout("rax") u64::MAX => v, options(nostack)) };
        v
    }
    /// `mov ah, [rdx]` into a RAX of zero.
    pub fn load_ah(a: u64) -> u64 {
        let v: u64;
        // SAFETY: as above.
        unsafe { asm!("mov ah, [rdx]", in("rdx") a, inout("rax") 0u64 => v, options(nostack)) };
        v
    }
    /// `mov rax, [rdx]` (3 bytes; 0 when it faults).
    pub fn load64(a: u64) -> u64 {
        let v: u64;
        // SAFETY: as above.
        unsafe { asm!("mov rax, [rdx]", in("rdx") a, inout("rax") 0u64 => v, options(nostack)) };
        v
    }
    /// `mov dword [rdx], ecx`.
    pub fn store32(a: u64, v: u32) {
        // SAFETY: as above.
        unsafe { asm!("mov [rdx], ecx", in("rdx") a, in("ecx") v, options(nostack)) };
    }
    /// `mov dword [rdx], 0xf0`.
    pub fn store32_imm_f0(a: u64) {
        // SAFETY: as above.
        unsafe { asm!("mov dword ptr [rdx], 0xf0", in("rdx") a, options(nostack)) };
    }
    /// `mov [rdx], al` (2 bytes).
    pub fn store8(a: u64, v: u8) {
        // SAFETY: as above.
        unsafe { asm!("mov [rdx], al", in("rdx") a, in("al") v, options(nostack)) };
    }
    /// `add [rdx], eax` (2 bytes): read-modify-write.
    pub fn add32(a: u64, v: u32) {
        // SAFETY: as above.
        unsafe { asm!("add [rdx], eax", in("rdx") a, in("eax") v, options(nostack)) };
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    crate::println!("x86guest: panic");
    vmcall(tessera_abi::psci::SYSTEM_OFF);
    loop {
        core::hint::spin_loop();
    }
}
