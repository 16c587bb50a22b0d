//! VMs: creation from the config, their vCPUs' power states (the PSCI
//! semantics live here, arch-neutral), stop and reset, and the end of the
//! run when every VM is off.

use crate::arch;
use crate::arch::{GuestPageTable, MemKind};
use crate::config::{EmuDeviceKind, UnhandledPolicy, VmConfig, SYSTEM};
use crate::console::VmConsole;
use crate::devices::pl011::VirtualPl011;
use crate::devices::vgic::gicv3::{Distributor, Redistributors, GICD_SIZE};
use crate::devices::vgic::{OwnedSpi, Vgic, VgicLine};
use crate::devices::{InterruptLine, MmioBus, SysRegBus, Unconnected};
use crate::exit::ExitKind;
use crate::mm::heap::HeapTables;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use spin::{Mutex, Once};

/// Power state of a vCPU (PSCI AFFINITY_INFO values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Power {
    /// Not running; its core waits parked.
    Off = 0,
    /// CPU_ON accepted, not yet running.
    OnPending = 1,
    /// Running guest code.
    On = 2,
}

/// Life cycle of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum VmState {
    /// vCPUs may run.
    Running = 0,
    /// Powering off: vCPUs are being stopped.
    Stopping = 1,
    /// Resetting: vCPUs are being stopped, then vCPU 0 restarts.
    Resetting = 2,
    /// Off for good.
    Off = 3,
    /// Every vCPU is off; one core is finishing the stop or reset.
    Finishing = 4,
}

/// How a VM ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Ending {
    /// Still running.
    None = 0,
    /// The guest asked to power off.
    PoweredOff = 1,
    /// The hypervisor stopped it (configured outcome of an unhandled exit).
    Stopped = 2,
}

/// Errors of vCPU power operations, mapped to PSCI codes by the arch layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerError {
    /// No such vCPU in this VM.
    InvalidVcpu,
    /// The vCPU is on.
    AlreadyOn,
    /// A CPU_ON for it is pending.
    OnPending,
    /// The entry point is not in the VM's RAM.
    InvalidAddress,
}

/// One virtual CPU, pinned to one physical CPU.
pub struct Vcpu {
    /// Index in its VM (also its virtual MPIDR affinity 0).
    pub id: usize,
    /// Physical CPU it runs on.
    pub phys_cpu: usize,
    power: AtomicU8,
    boot: Mutex<(u64, u64)>,
    stats: [AtomicU64; ExitKind::COUNT],
}

impl Vcpu {
    /// Counts one exit. Only this vCPU's own core writes its counters, so a
    /// plain load/store pair is enough (no atomic read-modify-write).
    #[inline(always)]
    pub fn count(&self, kind: ExitKind) {
        let c = &self.stats[kind as usize];
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Current power state.
    pub fn power(&self) -> Power {
        match self.power.load(Ordering::Acquire) {
            0 => Power::Off,
            1 => Power::OnPending,
            _ => Power::On,
        }
    }

    fn set_power(&self, p: Power) {
        self.power.store(p as u8, Ordering::Release);
    }
}

/// A running VM.
pub struct Vm {
    /// Its configuration.
    pub config: &'static VmConfig,
    /// Guest-physical MMIO devices.
    pub mmio: MmioBus,
    /// Emulated system registers.
    pub sysregs: SysRegBus,
    /// Stage-2 root table (physical).
    pub stage2_root: u64,
    /// Stage-2 VMID (config id + 1; 0 is never used for a guest).
    pub vmid: u16,
    /// The vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// Size of the RAM region holding the entry point (reported to the guest).
    pub boot_ram_size: u64,
    /// The virtual interrupt controller.
    pub vgic: &'static Vgic,
    /// Virtual counter offset of the current run (the physical count when
    /// it started, so the guest's virtual counter starts near zero).
    cntvoff: AtomicU64,
    uart: Option<&'static VirtualPl011<VmConsole>>,
    state: AtomicU8,
    ending: AtomicU8,
    resets: AtomicU32,
    unhandled_logged: AtomicU32,
}

/// Unhandled exits logged per VM before going quiet (a hostile guest must
/// not be able to flood the console).
const UNHANDLED_LOG_LIMIT: u32 = 16;

static VMS: Once<Vec<Vm>> = Once::new();
static VMS_ALIVE: AtomicUsize = AtomicUsize::new(0);

/// All VMs (after [`create_all`]).
pub fn all() -> &'static [Vm] {
    VMS.get().map(|v| v.as_slice()).unwrap_or(&[])
}

/// Builds every VM of the config: stage-2 tables, devices, loaded images.
/// Boot core, once.
pub fn create_all() -> Result<(), &'static str> {
    crate::ivc::init();
    let mut vms = Vec::new();
    for config in SYSTEM.vms {
        vms.push(create(config)?);
    }
    VMS_ALIVE.store(vms.len(), Ordering::Release);
    VMS.call_once(|| vms);
    Ok(())
}

fn create(config: &'static VmConfig) -> Result<Vm, &'static str> {
    let mut tables = HeapTables;
    let mut s2 =
        GuestPageTable::new(&mut tables).map_err(|_| "out of memory for stage-2 tables")?;
    for r in config.memory_regions {
        s2.map(&mut tables, r.gpa, r.hpa, r.size, MemKind::Normal)
            .map_err(|_| "cannot map a memory region")?;
    }
    for d in config.passthrough_devices {
        s2.map(&mut tables, d.gpa, d.hpa, d.size, MemKind::Device)
            .map_err(|_| "cannot map a passthrough device")?;
    }
    let phys_cpus: Vec<usize> = config.phys_cpu_ids.to_vec();
    // Passthrough interrupts are forwarded physical ones; emulated devices'
    // are raised by their models.
    let spis: Vec<OwnedSpi> = config
        .passthrough_devices
        .iter()
        .flat_map(|d| d.irqs.iter().map(|&intid| OwnedSpi { intid, hw: true }))
        .chain(
            config
                .emu_devices
                .iter()
                .filter_map(|d| d.irq.map(|intid| OwnedSpi { intid, hw: false })),
        )
        .chain(crate::ivc::owned_spis(config.id))
        .collect();
    let vgic: &'static Vgic =
        Box::leak(Box::new(Vgic::new(&phys_cpus, &spis, arch::vgic_backend())));
    vgic.reset();
    let mut mmio = MmioBus::default();
    crate::ivc::attach(config.id, vgic, &mut mmio, |gpa, hpa, size, kind| {
        s2.map(&mut tables, gpa, hpa, size, kind)
            .map_err(|_| "cannot map an inter-VM channel")
    })?;
    let mut uart = None;
    for d in config.emu_devices {
        match d.kind {
            EmuDeviceKind::Pl011 => {
                let irq: &'static dyn InterruptLine = match d.irq {
                    Some(intid) => Box::leak(Box::new(VgicLine { vgic, intid })),
                    None => &Unconnected,
                };
                let dev = crate::console::vm_uart(config.name, irq)?;
                uart = Some(dev);
                mmio.add(d.gpa, d.size, dev);
            }
        }
    }
    let gic = config.vgic;
    mmio.add(
        gic.gicd_gpa,
        GICD_SIZE,
        Box::leak(Box::new(Distributor::new(vgic))),
    );
    mmio.add(
        gic.gicr_gpa,
        Redistributors::window_size(vgic),
        Box::leak(Box::new(Redistributors::new(vgic))),
    );
    let mut sysregs = SysRegBus::default();
    arch::add_arch_sysreg_devices(&mut sysregs);
    arch::add_vgic_sysreg_devices(&mut sysregs, vgic);
    let vcpus = config
        .phys_cpu_ids
        .iter()
        .enumerate()
        .map(|(id, &phys_cpu)| Vcpu {
            id,
            phys_cpu,
            power: AtomicU8::new(if id == 0 {
                Power::OnPending as u8
            } else {
                Power::Off as u8
            }),
            boot: Mutex::new((config.entry_point, config.boot_arg)),
            stats: Default::default(),
        })
        .collect();
    let boot_ram_size = config
        .memory_regions
        .iter()
        .find(|r| config.entry_point.wrapping_sub(r.gpa) < r.size)
        .map_or(0, |r| r.size);
    let vm = Vm {
        config,
        mmio,
        sysregs,
        stage2_root: s2.root(),
        vmid: config.id + 1,
        vcpus,
        boot_ram_size,
        vgic,
        cntvoff: AtomicU64::new(0),
        uart,
        state: AtomicU8::new(VmState::Running as u8),
        ending: AtomicU8::new(Ending::None as u8),
        resets: AtomicU32::new(0),
        unhandled_logged: AtomicU32::new(0),
    };
    vm.load_image();
    // The guest's clock starts when its images are in place.
    vm.cntvoff.store(arch::counter_now(), Ordering::Release);
    Ok(vm)
}

impl Vm {
    /// Current state.
    pub fn state(&self) -> VmState {
        match self.state.load(Ordering::Acquire) {
            0 => VmState::Running,
            1 => VmState::Stopping,
            2 => VmState::Resetting,
            3 => VmState::Off,
            _ => VmState::Finishing,
        }
    }

    /// The system counter value the VM's current run started at (its
    /// CNTVOFF: the guest's virtual counter counts from there).
    pub fn counter_offset(&self) -> u64 {
        self.cntvoff.load(Ordering::Acquire)
    }

    /// How many times the VM has been reset.
    pub fn resets(&self) -> u32 {
        self.resets.load(Ordering::Relaxed)
    }

    /// Whether vCPUs may run.
    #[inline(always)]
    pub fn is_running(&self) -> bool {
        self.state.load(Ordering::Acquire) == VmState::Running as u8
    }

    /// Zeroes the VM's RAM, copies its images in and makes them visible to
    /// a guest running with caches off.
    fn load_image(&self) {
        let c = self.config;
        for r in c.memory_regions {
            // SAFETY: the region is host RAM given to this VM alone
            // (validated at build time), identity-mapped at EL2, and no vCPU
            // of the VM runs while it is loaded.
            unsafe { arch::scrub_guest_memory(r.hpa, r.size) };
            for image in c.images {
                if let Some(off) = image.gpa.checked_sub(r.gpa).filter(|&o| o < r.size) {
                    let dst = r.hpa + off;
                    // SAFETY: build-time validation guarantees each image
                    // fits in the region that holds its first byte.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            image.data.as_ptr(),
                            dst as *mut u8,
                            image.data.len(),
                        )
                    };
                }
            }
            arch::make_coherent_for_guest(r.hpa, r.size);
        }
    }

    /// PSCI CPU_ON: start vCPU `target` at `entry` with `arg`.
    pub fn cpu_on(&self, target: usize, entry: u64, arg: u64) -> Result<(), PowerError> {
        let v = self.vcpus.get(target).ok_or(PowerError::InvalidVcpu)?;
        if !self
            .config
            .memory_regions
            .iter()
            .any(|r| entry.wrapping_sub(r.gpa) < r.size)
        {
            return Err(PowerError::InvalidAddress);
        }
        {
            let mut boot = v.boot.lock();
            match v.power() {
                Power::On => return Err(PowerError::AlreadyOn),
                Power::OnPending => return Err(PowerError::OnPending),
                Power::Off => {}
            }
            *boot = (entry, arg);
            v.set_power(Power::OnPending);
        }
        arch::kick_cpu(v.phys_cpu);
        Ok(())
    }

    /// PSCI AFFINITY_INFO for vCPU `target`.
    pub fn vcpu_power(&self, target: usize) -> Result<Power, PowerError> {
        self.vcpus
            .get(target)
            .map(|v| v.power())
            .ok_or(PowerError::InvalidVcpu)
    }

    /// Starts powering the VM off (`Ending::PoweredOff`) or stopping it
    /// (`Ending::Stopped`); the calling vCPU must then [`park`].
    pub fn shut_down(&self, ending: Ending) {
        if self
            .state
            .compare_exchange(
                VmState::Running as u8,
                VmState::Stopping as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.ending.store(ending as u8, Ordering::Release);
            self.kick_all();
        }
    }

    /// Starts a reset; the calling vCPU must then [`park`]. The last vCPU to
    /// stop reloads the image and restarts vCPU 0 at the entry point.
    pub fn reset(&self) {
        if self
            .state
            .compare_exchange(
                VmState::Running as u8,
                VmState::Resetting as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.kick_all();
        }
    }

    fn kick_all(&self) {
        for v in &self.vcpus {
            if v.phys_cpu != arch::this_cpu() {
                arch::kick_cpu(v.phys_cpu);
            }
        }
    }

    /// Logs an exit nobody handled (rate-limited) and says what the
    /// configured outcome is.
    pub fn report_unhandled(&self, what: core::fmt::Arguments) -> UnhandledPolicy {
        let policy = self.config.on_unhandled;
        let n = self.unhandled_logged.fetch_add(1, Ordering::Relaxed);
        if n < UNHANDLED_LOG_LIMIT {
            let outcome = match policy {
                UnhandledPolicy::InjectAbort => "abort injected",
                UnhandledPolicy::StopVm => "stopping VM",
                UnhandledPolicy::RestartVm => "restarting VM",
            };
            log::warn!("vm {}: {}: {}", self.config.name, what, outcome);
        } else if n == UNHANDLED_LOG_LIMIT {
            log::warn!(
                "vm {}: further unhandled exits not logged",
                self.config.name
            );
        }
        policy
    }

    /// Called on the core of vCPU `v` when it has just gone off.
    fn vcpu_stopped(&self, v: &Vcpu) {
        v.set_power(Power::Off);
        let state = self.state();
        if state == VmState::Running || self.vcpus.iter().any(|v| v.power() != Power::Off) {
            return;
        }
        // Every vCPU is off and the VM is stopping or resetting: finish it,
        // once (the CAS picks one core).
        let next = if state == VmState::Resetting {
            VmState::Running
        } else {
            VmState::Off
        };
        if self
            .state
            .compare_exchange(
                state as u8,
                VmState::Finishing as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return;
        }
        if let Some(u) = self.uart {
            u.flush();
        }
        if next == VmState::Running {
            let n = self.resets.fetch_add(1, Ordering::Relaxed) + 1;
            crate::println!("vm {}: reset #{}", self.config.name, n);
            self.vgic.reset();
            self.mmio.reset_all();
            self.load_image();
            self.cntvoff.store(arch::counter_now(), Ordering::Release);
            let v0 = &self.vcpus[0];
            *v0.boot.lock() = (self.config.entry_point, self.config.boot_arg);
            v0.set_power(Power::OnPending);
            self.state.store(VmState::Running as u8, Ordering::Release);
            arch::kick_cpu(v0.phys_cpu);
        } else {
            self.state.store(VmState::Off as u8, Ordering::Release);
            let how = if self.ending.load(Ordering::Acquire) == Ending::PoweredOff as u8 {
                "powered off"
            } else {
                "stopped"
            };
            crate::println!("vm {}: {}", self.config.name, how);
            if VMS_ALIVE.fetch_sub(1, Ordering::AcqRel) == 1 {
                end_of_run();
            }
        }
    }
}

/// Takes this core's vCPU off and waits until it is started again (CPU_ON,
/// VM reset); then enters the guest. Never returns. Every parked vCPU and
/// every halted idle core waits in WFI, so parked cores execute nothing.
pub fn park(vm: &'static Vm, v: &'static Vcpu, stack_top: u64) -> ! {
    if v.power() == Power::On {
        vm.vcpu_stopped(v);
    }
    loop {
        if v.power() == Power::OnPending {
            if vm.is_running() {
                let (entry, arg) = *v.boot.lock();
                v.set_power(Power::On);
                let cntvoff = vm.cntvoff.load(Ordering::Acquire);
                arch::enter_vcpu(stack_top, entry, arg, cntvoff);
            } else if vm.state() != VmState::Off {
                vm.vcpu_stopped(v);
                continue;
            }
        }
        arch::wait_for_kick();
    }
}

fn end_of_run() -> ! {
    let mut clean = true;
    for vm in all() {
        let mut line: heapless::String<256> = heapless::String::new();
        for kind in ExitKind::ALL {
            let n: u64 = vm
                .vcpus
                .iter()
                .map(|v| v.stats[kind as usize].load(Ordering::Relaxed))
                .sum();
            let _ = core::fmt::write(&mut line, format_args!(" {}={}", kind.name(), n));
        }
        let ending = vm.ending.load(Ordering::Acquire);
        clean &= ending == Ending::PoweredOff as u8;
        let how = if ending == Ending::PoweredOff as u8 {
            "powered-off"
        } else {
            "stopped"
        };
        crate::println!(
            "summary vm {} ({}, resets={}):{}",
            vm.config.name,
            how,
            vm.resets.load(Ordering::Relaxed),
            line
        );
    }
    if clean {
        crate::println!("all VMs powered off; system off");
    } else {
        crate::println!("all VMs ended, not all by powering off; exiting with failure");
    }
    arch::system_off(clean)
}
