//! Bring-up: the boot core sets up the machine and the VMs, then starts the
//! other cores (PSCI or spin table, as the firmware's device tree says,
//! `platform`); every core then runs its vCPU or idles.

use super::{boot, cpu, gic, mmu, vgic_hw};
use crate::platform::{self, firmware, firmware::FirmwareBoot, firmware::StartMethod};
use crate::config::SYSTEM;
use crate::vcpu::CpuLocal;
use crate::{mm, println, vm};
use alloc::boxed::Box;

/// Stops the boot with a plain error line (no panic location: these are
/// machine/config mismatches, not bugs) and ends an emulator run with status 2.
macro_rules! boot_error {
    ($($arg:tt)*) => {{
        println!("boot error: {}", format_args!($($arg)*));
        super::interface::fail_stop(2)
    }};
}

/// Whether `[addr, addr + len)` is mapped by the EL2 map: a board RAM bank
/// or the low device window (read there byte by byte, so no alignment
/// fault).
fn el2_mapped(addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    end <= super::el2_map::DEVICE_WINDOW_END
        || SYSTEM
            .board
            .memory
            .iter()
            .any(|m| addr >= m.base && end <= m.end())
}

/// The firmware's device tree at `dtb`, if it has the magic.
fn firmware_tree(dtb: u64) -> Option<FirmwareBoot> {
    if dtb == 0 || !dtb.is_multiple_of(8) || !el2_mapped(dtb, 8) {
        return None;
    }
    // SAFETY: firmware passes a device tree in x0; the 8-byte header is
    // mapped (checked above) and only read before the magic and size are
    // known.
    let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, 8) };
    let size = firmware::total_size(header).ok()?;
    if size > firmware::MAX_TREE || !el2_mapped(dtb, size as u64) {
        return None;
    }
    // SAFETY: the `size` bytes the firmware says the tree has, mapped
    // (checked above) and not written by anyone while they are read.
    let blob = unsafe { core::slice::from_raw_parts(dtb as *const u8, size) };
    FirmwareBoot::parse(blob).ok()
}

fn check_firmware_tree(dtb: u64) {
    let Some(fw) = firmware_tree(dtb) else {
        log::warn!(
            "no valid device tree from firmware at {:#x}; trusting the board description \
             and assuming PSCI",
            dtb
        );
        platform::record_firmware(FirmwareBoot::without_device_tree());
        return;
    };
    let cpus = fw.cpu_count;
    if cpus < SYSTEM.board.cpu_mpidrs.len() {
        boot_error!(
            "firmware reports {} CPUs, board {} describes {}",
            cpus,
            SYSTEM.board.name,
            SYSTEM.board.cpu_mpidrs.len()
        );
    }
    for bank in SYSTEM.board.memory {
        if !fw
            .memory
            .iter()
            .any(|&(b, s)| bank.base >= b && bank.end() <= b.saturating_add(s))
        {
            boot_error!(
                "board RAM [{:#x}, {:#x}) is not in the firmware's memory map {:x?}",
                bank.base,
                bank.end(),
                &fw.memory[..]
            );
        }
    }
    println!(
        "firmware tree: {} CPUs, memory {:x?}, PSCI {}",
        cpus,
        &fw.memory[..],
        if fw.psci { "yes" } else { "no" }
    );
    // Kept now: the tree may lie in memory the heap or a VM takes later.
    platform::record_firmware(fw);
}

/// The board's spare SPIs (inter-VM doorbell lines) must exist in this
/// GIC: a ring on a line past its last INTID would be lost.
fn check_spare_spis() {
    let gic = &SYSTEM.board.gic;
    if gic.spare_spi_count == 0 {
        return;
    }
    let end = gic.spare_spi_first.saturating_add(gic.spare_spi_count);
    let implemented = super::gicd_spi::implemented_intids();
    if end > implemented {
        boot_error!(
            "board {} gives doorbells spare SPIs {}..{}, but the GIC implements INTIDs below {} only",
            SYSTEM.board.name,
            gic.spare_spi_first,
            end - 1,
            implemented
        );
    }
}

/// Boot core entry from `boot.rs`, MMU off, on the boot stack.
#[no_mangle]
extern "C" fn tessera_primary_main(dtb: u64) -> ! {
    // SAFETY: boot core, first thing, no MMU on anywhere yet.
    unsafe { mmu::build(SYSTEM.board.memory) };
    mmu::enable();
    cpu::init_el2();
    cpu::clear_local();
    // Timers firmware may have left armed would assert forwarded PPIs.
    cpu::stop_guest_timers();
    platform::prepare_console();
    crate::console::init();
    println!(
        "Tessera {} on {} ({} CPUs, {} VMs)",
        env!("CARGO_PKG_VERSION"),
        SYSTEM.board.name,
        SYSTEM.board.cpu_mpidrs.len(),
        SYSTEM.vms.len()
    );
    if cpu::current_el() != 2 {
        boot_error!("not running at EL2");
    }
    if let Some((tx, rx)) = platform::console_pins() {
        // 4 = alternate function 0: the PL011's TXD0/RXD0.
        println!("console: PL011 UART0 on GPIO14/15 (functions {tx}, {rx}; 4 = ALT0)");
    }
    match mmu::check_protection() {
        Ok(guards) => println!(
            "EL2 map: text RX, rodata R, data and all RAM RW XN, WXN on, {} stack guard pages",
            guards
        ),
        Err(e) => boot_error!("EL2 map protection: {}", e),
    }
    if !super::vectors::serror_windows_in_place() {
        boot_error!("the EL2 vectors' SError window is not where the SError vector looks");
    }
    check_firmware_tree(dtb);
    // The top `channel_bytes` of the region back inter-VM channels.
    // SAFETY: from the image's end to the channels, the hypervisor's
    // reserved region (the board keeps VMs out of it, the linker script
    // keeps the image below it) is RAM the EL2 map has read-write; boot
    // core, once.
    unsafe {
        mm::heap::init(
            boot::image_end(),
            SYSTEM.board.hypervisor.end() - SYSTEM.channel_bytes,
        )
    };
    gic::init_distributor();
    check_spare_spis();
    let me = super::interface::this_cpu();
    if me == usize::MAX {
        boot_error!(
            "boot CPU {:#x} is not in the board description",
            cpu::mpidr()
        );
    }
    if !gic::init_this_cpu(me, cpu::mpidr()) {
        boot_error!("no GIC redistributor for the boot CPU");
    }
    vgic_hw::init_this_cpu();
    if let Err(e) = vm::create_all() {
        boot_error!("creating VMs: {}", e);
    }
    if let Some(irq) = SYSTEM.board.console_irq {
        // Console input interrupts the boot core (parked or not, it takes
        // them: see `interface::drain_kicks`).
        gic::quiesce_spi(irq);
        gic::set_spi_edge(irq, false);
        gic::route_spi(irq, me);
        gic::set_spi_enabled(irq, true);
        crate::console::enable_rx_interrupt();
    }
    let (used, free) = mm::heap::usage();
    println!(
        "VMs ready; heap {} KiB used, {} KiB free",
        used / 1024,
        free / 1024
    );
    for (cpu_index, &mpidr) in SYSTEM.board.cpu_mpidrs.iter().enumerate() {
        if cpu_index == me {
            continue;
        }
        let entry = boot::tessera_secondary_entry as *const () as u64;
        // SAFETY: `entry` is the secondary entry point, written for a core
        // that starts at EL2 with its MMU off.
        match unsafe { platform::start_secondary(cpu_index, mpidr, entry) } {
            Ok(StartMethod::SpinTable { release_addr }) => println!(
                "CPU {} (mpidr {:#x}) released from the spin table at {:#x}",
                cpu_index, mpidr, release_addr
            ),
            Ok(_) => {}
            Err(e) => log::warn!(
                "starting CPU {} (mpidr {:#x}) failed: {:?}",
                cpu_index,
                mpidr,
                e
            ),
        }
    }
    run_this_cpu(me, boot::boot_stack_top())
}

/// Secondary core entry from `boot.rs`, MMU off, on its own stack.
#[no_mangle]
extern "C" fn tessera_secondary_main(cpu_index: usize) -> ! {
    mmu::enable();
    cpu::init_el2();
    cpu::clear_local();
    // Timers firmware may have left armed would assert forwarded PPIs.
    cpu::stop_guest_timers();
    if !gic::init_this_cpu(cpu_index, cpu::mpidr()) {
        boot_error!("no GIC redistributor for CPU {}", cpu_index);
    }
    vgic_hw::init_this_cpu();
    run_this_cpu(cpu_index, boot::cpu_stack_top(cpu_index))
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
        // No vCPU here: still serve the interrupts routed to this core (the
        // console's, on the boot core).
        loop {
            super::interface::wait_for_kick();
        }
    };
    let local: &'static CpuLocal = Box::leak(Box::new(CpuLocal {
        cpu: cpu_index,
        vm,
        vcpu,
        stack_top,
    }));
    cpu::set_local(local);
    cpu::configure_for_vm(vm.stage2_root, vm.vmid, vcpu.id, vm.config.pmu);
    if vcpu.id == 0 {
        println!(
            "vm {}: vCPU 0 starting on CPU {} at {:#x} (counter {})",
            vm.config.name,
            cpu_index,
            vm.config.entry_point,
            vm.counter_offset()
        );
    }
    vm::park(vm, vcpu, stack_top)
}
