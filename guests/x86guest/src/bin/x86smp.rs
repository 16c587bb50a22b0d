//! Tessera's x86 SMP guest: a VM with two vCPUs. vCPU 0 starts vCPU 1 the
//! way a PC's firmware or OS does — INIT, then a start-up IPI to a
//! real-mode trampoline at 0x8000 that goes through protected mode to
//! long mode — then exchanges IPIs with it (x2APIC ICR): one that wakes
//! it from HLT, one that must interrupt a loop of its that never exits
//! (only the hypervisor's kick can bring it in), and one back. It powers
//! the VM off while vCPU 1 still spins (the kick must stop it).
#![no_std]
#![no_main]

#[path = "../rt.rs"]
#[macro_use]
mod rt;

use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use rt::*;
use tessera_abi::{psci, tessera};

/// Where the trampoline runs: SIPI vector 8.
const TRAMPOLINE: u64 = 0x8000;
/// x2APIC MSRs.
const APIC_BASE: u32 = 0x1b;
const SVR: u32 = 0x80f;
const ICR: u32 = 0x830;
/// IPI vectors: to vCPU 1, and back to vCPU 0.
const TO_AP: u64 = 0x40;
const TO_BSP: u64 = 0x41;
/// TSC budget for each wait (Bochs: instructions).
const BUDGET: u64 = 20_000_000;

/// CR3 for the AP (the BSP's tables), read by the trampoline's 32-bit
/// part by absolute address.
#[no_mangle]
static AP_CR3: AtomicU64 = AtomicU64::new(0);
/// The AP's stack top.
#[no_mangle]
static AP_STACK: AtomicU64 = AtomicU64::new(0);
/// What the AP reports: its APIC id + 1 once up, and how far it got.
static AP_ID: AtomicU32 = AtomicU32::new(0);
static AP_PHASE: AtomicU32 = AtomicU32::new(0);

#[repr(C, align(16))]
struct Stack([u8; 0x4000]);
static mut AP_STACK_MEM: Stack = Stack([0; 0x4000]);

global_asm!(
    r#"
.set TRAMP, 0x8000
.section .text
.code16
.global ap_tramp_start
ap_tramp_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl (ap_gdtr - ap_tramp_start + TRAMP)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x18, $(ap_pm - ap_tramp_start + TRAMP)
.code32
ap_pm:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4
    movl AP_CR3, %eax
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
ap_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00cf9a000000ffff
ap_gdtr:
    .word ap_gdtr - ap_gdt - 1
    .long ap_gdt - ap_tramp_start + TRAMP
.global ap_tramp_end
ap_tramp_end:
.code64
ap_long:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq AP_STACK(%rip), %rsp
    call ap_main
1:  hlt
    jmp 1b
"#,
    options(att_syntax)
);

extern "C" {
    static ap_tramp_start: u8;
    static ap_tramp_end: u8;
}

/// Waits until `done()` or the budget runs out; whether it got done.
fn wait(done: impl Fn() -> bool) -> bool {
    let start = rdtsc();
    while !done() && rdtsc() - start < BUDGET {
        core::hint::spin_loop();
    }
    done()
}

/// x2APIC mode, software-enabled.
fn enable_x2apic() {
    wrmsr(APIC_BASE, rdmsr_value(APIC_BASE) | 1 << 10);
    wrmsr(SVR, 0x1ff);
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    println!("x86smp: vCPU 0 up, {} vCPUs", vmcall(tessera::VM_INFO)[2]);
    install_gp_handler();
    install_ipi_vector(TO_AP as usize);
    install_timer_vector(TO_BSP as usize);
    enable_x2apic();

    // The trampoline, its page tables and stack.
    // SAFETY: the trampoline is position-independent up to its far jump
    // to `ap_long`; 0x8000 is RAM nothing else uses; the stack is the
    // AP's alone.
    unsafe {
        let start = &raw const ap_tramp_start;
        let len = (&raw const ap_tramp_end) as usize - start as usize;
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE as *mut u8, len);
        let cr3: u64;
        core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack));
        AP_CR3.store(cr3, Ordering::SeqCst);
        let stack = &raw mut AP_STACK_MEM;
        AP_STACK.store(stack as u64 + 0x4000, Ordering::SeqCst);
    }
    // INIT (assert, de-assert), then two start-up IPIs as the MP spec
    // says (the second finds the AP running and does nothing).
    wrmsr(ICR, 1 << 32 | 5 << 8 | 1 << 14);
    wrmsr(ICR, 1 << 32 | 5 << 8 | 1 << 15);
    for _ in 0..2 {
        wrmsr(ICR, 1 << 32 | 6 << 8 | 1 << 14 | TRAMPOLINE >> 12);
    }
    check(
        "smp-ap-started-by-init-sipi",
        wait(|| AP_ID.load(Ordering::SeqCst) != 0) && AP_ID.load(Ordering::SeqCst) == 2,
    );

    // The AP halts: a fixed IPI wakes it.
    wait(|| AP_PHASE.load(Ordering::SeqCst) == 1);
    wrmsr(ICR, 1 << 32 | TO_AP);
    check(
        "smp-ipi-wakes-halted-ap",
        wait(|| AP_PHASE.load(Ordering::SeqCst) >= 2),
    );

    // The AP spins without exiting: only a kick brings the IPI in.
    wait(|| AP_PHASE.load(Ordering::SeqCst) == 3);
    wrmsr(ICR, 1 << 32 | TO_AP);
    check(
        "smp-ipi-kicks-running-ap",
        wait(|| AP_PHASE.load(Ordering::SeqCst) >= 4),
    );

    // The AP sends one back while this vCPU halts.
    let start = rdtsc();
    while timer_count() == 0 && rdtsc() - start < BUDGET {
        sti_hlt();
    }
    cli();
    check("smp-ipi-to-bsp", timer_count() == 1);

    // Power off while the AP spins in its guest code.
    wait(|| AP_PHASE.load(Ordering::SeqCst) == 5);
    println!("x86smp: done, powering off with vCPU 1 spinning");
    vmcall(psci::SYSTEM_OFF);
    println!("x86smp: still running after SYSTEM_OFF");
    loop {
        core::hint::spin_loop();
    }
}

/// vCPU 1, in long mode on the BSP's page tables.
#[no_mangle]
extern "C" fn ap_main() -> ! {
    install_gp_handler(); // loads the shared GDT and IDT
    let [_, b, _, _] = cpuid(1);
    enable_x2apic();
    AP_ID.store((b >> 24) + 1, Ordering::SeqCst);
    AP_PHASE.store(1, Ordering::SeqCst);
    while ipi_count() < 1 {
        sti_hlt();
    }
    AP_PHASE.store(2, Ordering::SeqCst);
    // Interrupts on, no exits: RDTSC and PAUSE do not exit.
    sti_nop();
    AP_PHASE.store(3, Ordering::SeqCst);
    while ipi_count() < 2 {
        core::hint::spin_loop();
    }
    AP_PHASE.store(4, Ordering::SeqCst);
    wrmsr(ICR, TO_BSP); // APIC id 0
    AP_PHASE.store(5, Ordering::SeqCst);
    loop {
        core::hint::spin_loop();
    }
}
