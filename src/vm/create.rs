//! Creating the VMs from the config: stage-2 tables, devices, the virtual
//! GIC, and loading their images, each verified against the SHA-256 the
//! build computed before every load.

use super::log::LogBucket;
use super::power::PowerStates;
use super::progress::Progress;
use crate::arch;
use crate::arch::{GuestPageTable, MemKind};
use crate::config::{Arch, EmuDeviceKind, GicVersion, GuestImage, VmConfig, SYSTEM};
use crate::console::VmConsole;
use crate::devices::pl011::VirtualPl011;
use crate::devices::vgic::gicv2;
use crate::devices::vgic::gicv3::{Distributor, Redistributors, GICD_SIZE};
use crate::devices::vgic::{OwnedSpi, SpiSource, Vgic, VgicLine};
use crate::devices::{InterruptLine, MmioBus, SysRegBus, Unconnected};
use crate::exit::ExitKind;
use crate::mm::heap::HeapTables;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use sha2::{Digest, Sha256};
use spin::{Mutex, Once};

/// One virtual CPU, pinned to one physical CPU. Its power state lives in
/// its VM's [`PowerStates`].
pub struct Vcpu {
    /// Index in its VM (also its virtual MPIDR affinity 0).
    pub id: usize,
    /// Physical CPU it runs on.
    pub phys_cpu: usize,
    pub(super) stats: [AtomicU64; ExitKind::COUNT],
    /// Injections that made no progress (see [`super::progress`]).
    pub progress: Progress,
}

impl Vcpu {
    /// Counts one exit. Only this vCPU's own core writes its counters, so a
    /// plain load/store pair is enough (no atomic read-modify-write).
    #[inline(always)]
    pub fn count(&self, kind: ExitKind) {
        let c = &self.stats[kind as usize];
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
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
    /// Power states of the VM and its vCPUs.
    pub power: PowerStates,
    /// Virtual counter offset of the current run (the physical count when
    /// it started, so the guest's virtual counter starts near zero).
    pub(super) cntvoff: AtomicU64,
    pub(super) uart: Option<&'static VirtualPl011<VmConsole>>,
    pub(super) resets: AtomicU32,
    /// Rate limiters of the log lines this VM causes, by
    /// [`super::lifecycle::LogClass`]: a flood of exit lines cannot
    /// silence the line that says the VM was stopped or restarted.
    pub(super) log: [Mutex<LogBucket>; 2],
    /// Heap bytes free right after the first reset finished (0: none yet),
    /// for the summary: later resets must not change it.
    pub(super) heap_after_first_reset: AtomicUsize,
}

static VMS: Once<Vec<Vm>> = Once::new();
/// VMs not yet off; the last one to go off ends the run.
pub(super) static VMS_ALIVE: AtomicUsize = AtomicUsize::new(0);

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
    let (_, free) = crate::mm::heap::usage();
    crate::println!("heap free after creating the VMs: {}", free);
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
        .flat_map(|d| {
            d.irqs.iter().map(|&intid| OwnedSpi {
                intid,
                source: SpiSource::Passthrough,
            })
        })
        .chain(config.emu_devices.iter().filter_map(|d| {
            d.irq.map(|intid| OwnedSpi {
                intid,
                source: SpiSource::Emulated,
            })
        }))
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
            EmuDeviceKind::IvcPci => mmio.add(d.gpa, d.size, crate::ivc::pci_host(config.id)?),
        }
    }
    let gic = config.vgic;
    // x86 boards have no GIC: their VMs get no GIC windows.
    let arm = SYSTEM.board.arch == Arch::Aarch64;
    if arm && SYSTEM.board.gic.version == GicVersion::V2 {
        // GICv2: an emulated distributor; the guest's CPU interface is the
        // physical virtual CPU interface (GICV), mapped in stage 2.
        mmio.add(
            gic.gicd_gpa,
            gicv2::GICD_SIZE,
            Box::leak(Box::new(gicv2::Distributor::new(vgic))),
        );
        s2.map(
            &mut tables,
            gic.gicr_gpa,
            SYSTEM.board.gic.gicv_base,
            gicv2::GICC_SIZE,
            MemKind::Device,
        )
        .map_err(|_| "cannot map the virtual CPU interface")?;
    } else if arm {
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
    }
    let mut sysregs = SysRegBus::default();
    arch::add_arch_sysreg_devices(&mut sysregs);
    arch::add_vgic_sysreg_devices(&mut sysregs, vgic);
    let vcpus: Vec<Vcpu> = config
        .phys_cpu_ids
        .iter()
        .enumerate()
        .map(|(id, &phys_cpu)| Vcpu {
            id,
            phys_cpu,
            stats: Default::default(),
            progress: Progress::new(),
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
        power: PowerStates::new(vcpus.len(), config.entry_point, config.boot_arg),
        vcpus,
        boot_ram_size,
        vgic,
        cntvoff: AtomicU64::new(0),
        uart,
        resets: AtomicU32::new(0),
        log: [
            Mutex::new(LogBucket::new(arch::counter_now())),
            Mutex::new(LogBucket::new(arch::counter_now())),
        ],
        heap_after_first_reset: AtomicUsize::new(0),
    };
    for image in config.images {
        crate::println!(
            "vm {}: image {} ({} bytes) sha256 {}",
            config.name,
            image.name,
            image.data.len(),
            Hex(&image.sha256)
        );
    }
    vm.load_images()
        .map_err(|_| "an image does not match its build-time SHA-256")?;
    // The guest's clock starts when its images are in place.
    vm.cntvoff.store(arch::counter_now(), Ordering::Release);
    Ok(vm)
}

impl Vm {
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
        self.power.is_running()
    }

    /// Zeroes the VM's RAM, verifies each image against its build-time
    /// SHA-256 and copies it in, and makes the RAM visible to a guest
    /// running with caches off. A mismatch refuses the load (the RAM stays
    /// zeroed) and names the image.
    pub(super) fn load_images(&self) -> Result<(), &'static GuestImage> {
        let c = self.config;
        let mut refused = None;
        for image in c.images {
            let digest: [u8; 32] = Sha256::digest(image.data).into();
            if digest != image.sha256 {
                crate::println!(
                    "vm {}: image {} fails its SHA-256 check (got {}): not loaded",
                    c.name,
                    image.name,
                    Hex(&digest)
                );
                refused = Some(image);
                break;
            }
        }
        for r in c.memory_regions {
            // SAFETY: the region is host RAM given to this VM alone
            // (validated at build time), identity-mapped at EL2, and no vCPU
            // of the VM runs while it is loaded.
            unsafe { arch::scrub_guest_memory(r.hpa, r.size) };
            for image in c.images.iter().filter(|_| refused.is_none()) {
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
            // SAFETY: the VM's RAM region, in the board's RAM banks
            // (build-time validation), which the hypervisor maps.
            unsafe { arch::make_coherent_for_guest(r.hpa, r.size) };
        }
        refused.map_or(Ok(()), Err)
    }
}

/// Bytes as lowercase hex.
pub(super) struct Hex<'a>(pub &'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}
