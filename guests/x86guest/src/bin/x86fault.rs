//! Tessera's x86 fault guest: on its first boot it triple-faults (UD2
//! with no IDT: #UD cannot be delivered, nor the #DF that follows); the
//! hypervisor must contain it per the VM's policy. Run with
//! `on_unhandled = "restart-vm"`, the reset brings it back, sees
//! `resets = 1` in VM_INFO, says so and powers off.
#![no_std]
#![no_main]

#[path = "../rt.rs"]
#[macro_use]
mod rt;

use rt::*;
use tessera_abi::{psci, tessera};

#[no_mangle]
extern "C" fn guest_main() -> ! {
    let resets = vmcall(tessera::VM_INFO)[4];
    if resets == 0 {
        println!("x86fault: first boot, triple-faulting");
        // SAFETY: deliberately faults; the hypervisor contains it.
        unsafe { core::arch::asm!("ud2") };
    }
    println!("x86fault: boot after reset {}", resets);
    check("triple-fault-contained", resets == 1);
    vmcall(psci::SYSTEM_OFF);
    loop {
        // SAFETY: HLT exits to the hypervisor.
        unsafe { core::arch::asm!("hlt") };
    }
}
