//! Bring-up: the boot CPU sets up the console, its descriptor tables, the
//! heap (after checking the multiboot2 memory map against the board), VMX
//! root and the VMs, then starts the other CPUs with INIT-SIPI-SIPI; every
//! CPU then enters VMX root and runs its vCPU or idles.

use super::{boot, cpu, desc, ioapic, smp, vmexit, vmx};
use crate::config::SYSTEM;
use crate::vcpu::CpuLocal;
use crate::{mm, println, vm};
use alloc::boxed::Box;

/// Multiboot2 boot-loader magic in EAX.
const MB2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;
/// Multiboot2 tag type of the memory map.
const MB2_TAG_MMAP: u32 = 6;
/// Memory-map entry type of available RAM.
const MB2_MEMORY_AVAILABLE: u32 = 1;

/// Stops the boot with one plain line (a machine or config mismatch, not a
/// bug) and halts.
macro_rules! boot_error {
    ($($arg:tt)*) => {{
        println!("boot error: {}", format_args!($($arg)*));
        super::interface::fail_stop(2)
    }};
}

/// Up to 16 RAM ranges from the multiboot2 memory map.
fn memory_map(info: u64) -> heapless::Vec<(u64, u64), 16> {
    let mut out = heapless::Vec::new();
    // SAFETY: GRUB passes the boot information (a u32 total size, a u32
    // reserved, then 8-byte aligned tags ending with type 0) in
    // identity-mapped low memory; every read stays inside `total`.
    unsafe {
        let total = u64::from(*(info as *const u32));
        let mut tag = info + 8;
        while tag + 8 <= info + total {
            let ty = *(tag as *const u32);
            let size = u64::from(*((tag + 4) as *const u32));
            if ty == 0 || size < 8 {
                break;
            }
            if ty == MB2_TAG_MMAP && size >= 16 {
                let entry_size = u64::from(*((tag + 8) as *const u32)).max(24);
                let mut e = tag + 16;
                while e + 24 <= tag + size {
                    let base = *(e as *const u64);
                    let len = *((e + 8) as *const u64);
                    let kind = *((e + 16) as *const u32);
                    if kind == MB2_MEMORY_AVAILABLE {
                        let _ = out.push((base, len));
                    }
                    e += entry_size;
                }
            }
            tag += (size + 7) & !7;
        }
    }
    out
}

fn check_memory_map(magic: u32, info: u64) {
    if magic != MB2_BOOTLOADER_MAGIC {
        log::warn!("not started by a multiboot2 loader (magic {:#x}); trusting the board description", magic);
        return;
    }
    let ram = memory_map(info);
    for bank in SYSTEM.board.memory {
        if !ram.iter().any(|&(b, s)| bank.base >= b && bank.end() <= b + s) {
            boot_error!(
                "board RAM [{:#x}, {:#x}) is not in the firmware's memory map {:x?}",
                bank.base,
                bank.end(),
                ram
            );
        }
    }
    println!("firmware memory map: {:x?}", ram);
}

/// Mask both 8259 PICs: the hypervisor takes no legacy interrupts, and a
/// pending one would make every VM entry exit at once.
fn mask_legacy_pics() {
    // SAFETY: the PIC data ports; masking has no other effect.
    unsafe {
        x86::io::outb(0x21, 0xff);
        x86::io::outb(0xa1, 0xff);
    }
}

/// Boot CPU entry from `boot/x86_64/entry.S`, in long mode on the boot stack.
#[no_mangle]
extern "C" fn tessera_x86_main(magic: u32, info: u32) -> ! {
    crate::console::init();
    println!(
        "Tessera {} on {} ({} CPUs, {} VMs)",
        env!("CARGO_PKG_VERSION"),
        SYSTEM.board.name,
        SYSTEM.board.cpu_mpidrs.len(),
        SYSTEM.vms.len()
    );
    let me = cpu::index();
    if me == usize::MAX {
        boot_error!("boot CPU (APIC id {}) is not in the board description", cpu::apic_id());
    }
    desc::init(me);
    mask_legacy_pics();
    if let Some(pins) = ioapic::init() {
        println!("I/O APIC: {} inputs, all masked until a VM unmasks its own", pins);
    }
    smp::enable_local_apic();
    // The CPU first: without VMX nothing else matters.
    if let Err(e) = vmx::check_cpu() {
        boot_error!("{}", e);
    }
    check_memory_map(magic, u64::from(info));
    // SAFETY: the hypervisor's reserved region after the image is RAM
    // (checked against the memory map just above), identity-mapped, used by
    // nothing else; boot core, once.
    unsafe { mm::heap::init(boot::image_end(), SYSTEM.board.hypervisor.end()) };
    if let Err(e) = vmx::enable_on_this_core() {
        boot_error!("{}", e);
    }
    println!("VMX root operation on CPU {}", me);
    if let Err(e) = vm::create_all() {
        boot_error!("creating VMs: {}", e);
    }
    vmexit::VM_DEVICES.call_once(|| vm::all().iter().map(vmexit::build_devices).collect());
    let (used, free) = mm::heap::usage();
    println!(
        "VMs ready; heap {} KiB used, {} KiB free",
        used / 1024,
        free / 1024
    );
    let others = SYSTEM.board.cpu_mpidrs.len() - 1;
    if others > 0 {
        let started = smp::start_aps(me);
        println!("{} of {} other CPUs started", started, others);
    }
    run_this_cpu(me, boot::boot_stack_top())
}

/// Application processor entry from the trampoline in entry.S, in long
/// mode on its own stack.
#[no_mangle]
extern "C" fn tessera_x86_ap_main(cpu_index: u64) -> ! {
    let cpu_index = cpu_index as usize;
    smp::arrived(cpu_index);
    desc::init(cpu_index);
    smp::enable_local_apic();
    if let Err(e) = vmx::enable_on_this_core() {
        println!("CPU {}: {}; it stays idle", cpu_index, e);
        cpu::halt();
    }
    println!("VMX root operation on CPU {}", cpu_index);
    run_this_cpu(cpu_index, boot::stack_top(cpu_index))
}

/// Runs the vCPU assigned to this core, or idles forever.
fn run_this_cpu(cpu_index: usize, stack_top: u64) -> ! {
    let assigned = vm::all().iter().find_map(|vm| {
        vm.vcpus
            .iter()
            .find(|v| v.phys_cpu == cpu_index)
            .map(|v| (vm, v))
    });
    let Some((vm, vcpu)) = assigned else {
        cpu::halt();
    };
    let local: &'static CpuLocal = Box::leak(Box::new(CpuLocal {
        cpu: cpu_index,
        vm,
        vcpu,
        stack_top,
    }));
    cpu::set_local(cpu_index, local as *const CpuLocal as *const ());
    let bitmaps = match vmx::io_bitmaps(vm) {
        Ok(b) => b,
        Err(e) => boot_error!("{}", e),
    };
    if let Err(e) = vmx::setup_vmcs(cpu_index, vm, bitmaps) {
        boot_error!("{}", e);
    }
    if vcpu.id == 0 {
        println!(
            "vm {}: vCPU 0 starting on CPU {} at {:#x}",
            vm.config.name, cpu_index, vm.config.entry_point
        );
    }
    vm::park(vm, vcpu, stack_top)
}
