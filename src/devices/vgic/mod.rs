//! The virtual interrupt controller of one VM, independent of how its
//! registers look: which interrupts the VM owns, their enable, priority,
//! trigger and routing state, and the per-vCPU set of interrupts waiting to
//! be delivered. The register front-ends ([`gicv3`], [`gicv2`]) translate
//! guest accesses into calls here; the arch back-end ([`VgicHw`]) moves
//! pending interrupts into the hardware list registers and forwards
//! physical interrupts.
//!
//! Ownership rules (what makes this a partitioning hypervisor's GIC): a VM
//! owns its own SGIs and the PPIs of [`OWNED_PPIS`], plus exactly the SPIs its
//! config gives it (passthrough and emulated devices). Everything else reads
//! as zero and ignores writes. Routing names only the VM's own vCPUs.
//!
//! A forwarded physical SPI is either a passthrough device's line (the
//! same INTID) or, for an inter-VM doorbell, a spare line of the board's
//! GIC that no device drives: the ringer sets it pending at the physical
//! distributor (the back-end's `raise_doorbell`) and the target's core
//! forwards it like a passthrough interrupt, with no kick and no software
//! pending state.

pub mod gicv2;
pub mod gicv3;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// INTIDs below this are private to a vCPU (SGIs 0-15, PPIs 16-31).
pub const PRIVATE_INTIDS: u32 = 32;
/// SGIs are INTIDs 0..16.
pub const SGIS: u32 = 16;
/// One past the largest SPI INTID a GICv3 distributor can describe.
pub const MAX_INTIDS: u32 = 1020;
/// EL1 virtual timer PPI.
pub const VTIMER_PPI: u32 = 27;
/// EL1 physical timer PPI.
pub const PTIMER_PPI: u32 = 30;
/// PPIs a VM owns: the EL1 timers, forwarded from the hardware.
pub const OWNED_PPIS: u32 = 1 << VTIMER_PPI | 1 << PTIMER_PPI;
/// Priority of every interrupt after reset (the GIC's reset value).
const RESET_PRIORITY: u8 = 0;

/// An interrupt given to a VM by its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedSpi {
    /// INTID (32..1020).
    pub intid: u32,
    /// What raises it.
    pub source: SpiSource,
}

/// What raises an SPI a VM owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpiSource {
    /// An emulated device model, in software.
    Emulated,
    /// The physical SPI with the same INTID, driven by a passthrough
    /// device and forwarded with the HW bit.
    Passthrough,
    /// A spare physical SPI (this INTID of the board's GIC) that no device
    /// drives: a doorbell sets it pending, and it is forwarded with the HW
    /// bit. Its trigger stays edge whatever the guest configures.
    SpareLine(u32),
}

/// What the virtual GIC needs from the hardware edge. The AArch64 back-end
/// implements it with the ICH list registers and the physical distributor;
/// host tests use a recording fake.
pub trait VgicHw: Send + Sync {
    /// Whether the calling core runs the vCPU placed on `phys_cpu`.
    fn is_this_cpu(&self, phys_cpu: usize) -> bool;
    /// Moves deliverable pending interrupts of `vcpu` (running on this core)
    /// into the hardware.
    fn deliver_local(&self, vgic: &Vgic, vcpu: usize);
    /// Makes core `phys_cpu` deliver its vCPU's pending interrupts (it is
    /// another core: send it a kick).
    fn kick(&self, phys_cpu: usize);
    /// Makes `vcpu`, placed on `phys_cpu`, take its deliverable interrupts:
    /// delivered here if that is this core, else a kick. One call instead
    /// of two on the path of every software interrupt; a back-end may
    /// override it with the same meaning.
    fn signal(&self, vgic: &Vgic, phys_cpu: usize, vcpu: usize) {
        if self.is_this_cpu(phys_cpu) {
            self.deliver_local(vgic, vcpu);
        } else {
            self.kick(phys_cpu);
        }
    }
    /// Enables or disables physical SPI `intid` at the distributor.
    fn set_physical_enabled(&self, intid: u32, enabled: bool);
    /// Routes physical SPI `intid` to core `phys_cpu`.
    fn route_physical(&self, intid: u32, phys_cpu: usize);
    /// Makes physical SPI `intid` edge- (`true`) or level-triggered.
    fn set_physical_edge(&self, intid: u32, edge: bool);
    /// Quiesces physical SPI `intid` (VM reset): disabled, not pending, not
    /// active.
    fn quiesce_physical(&self, intid: u32);
}

/// The most list registers a CPU interface has (ICH_VTR_EL2.ListRegs is
/// four bits; GICv2's GICH_VTR allows 64, of which we use 16).
pub const MAX_LIST_REGS: usize = 16;

/// Interrupts taken for delivery in one go: at most one per list register.
/// Uninitialised storage, so taking a few costs no clearing of sixteen.
pub type Batch = heapless::Vec<Deliverable, MAX_LIST_REGS>;

/// One interrupt ready for a list register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deliverable {
    /// Virtual INTID.
    pub intid: u32,
    /// Priority the guest gave it.
    pub priority: u8,
    /// Physical interrupt waiting for the guest's deactivation.
    pub hw: bool,
    /// When `hw`: the physical INTID the guest's deactivation deactivates
    /// (the same as `intid` for a passthrough SPI and the timers).
    pub line: u32,
}

/// What [`Vgic::take_single`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Single {
    /// Nothing deliverable.
    Nothing,
    /// The only deliverable interrupt, now taken from the pending set.
    One(Deliverable),
    /// More than one deliverable; none taken.
    Several,
}

/// Every INTID a GIC can have, special ones included.
const INTIDS: usize = 1024;

/// Words of a bitmap over every INTID a GIC can have.
const WORDS: usize = INTIDS / 64;

/// One byte per INTID a GIC can have: fixed-size like [`Bits`], so the
/// hot paths index it with a bound known at build time. Only entries of
/// owned interrupts are ever changed.
type ByteTable = [AtomicU8; INTIDS];

/// Bitmap over INTIDs, one atomic word per 64. Fixed-size (128 bytes), so
/// that the hot paths index it with one bound known at build time; a VM's
/// distributor uses only its first `words_for(nr_intids)` words, and only
/// bits of interrupts the VM owns are ever set.
struct Bits([AtomicU64; WORDS]);

/// Words of a [`Bits`] that hold INTIDs below `nr_intids` (at most 1024).
const fn words_for(nr_intids: u32) -> usize {
    let n = nr_intids.div_ceil(64) as usize;
    if n < WORDS {
        n
    } else {
        WORDS
    }
}

impl Bits {
    fn new() -> Self {
        Bits([const { AtomicU64::new(0) }; WORDS])
    }
    /// Word `i` (None past the last).
    #[inline(always)]
    fn word(&self, i: usize) -> Option<&AtomicU64> {
        self.0.get(i)
    }
    fn get(&self, i: u32) -> bool {
        self.word((i / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Acquire) & 1 << (i % 64) != 0)
    }
    fn set(&self, i: u32, on: bool) {
        if let Some(w) = self.word((i / 64) as usize) {
            if on {
                w.fetch_or(1 << (i % 64), Ordering::AcqRel);
            } else {
                w.fetch_and(!(1 << (i % 64)), Ordering::AcqRel);
            }
        }
    }
    fn clear_all(&self) {
        for w in &self.0 {
            w.store(0, Ordering::Release);
        }
    }
    /// The first `n` words with the INTID of their bit 0.
    fn words(&self, n: usize) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.0
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, w)| (i as u32 * 64, w.load(Ordering::Acquire)))
    }
}

/// Interrupt state of one vCPU.
struct VcpuIrqs {
    phys_cpu: usize,
    /// Pending, not yet in a list register: raised by software (SGIs,
    /// emulated devices, the guest's ISPENDR).
    pending: Bits,
    /// Pending because the physical interrupt fired and was not yet handed
    /// to the guest; it stays active at the physical GIC until the guest
    /// deactivates it.
    hw_pending: Bits,
    /// SGI and PPI enables (redistributor).
    private_enabled: AtomicU32,
    /// SGI and PPI priorities.
    private_priority: [AtomicU8; PRIVATE_INTIDS as usize],
    /// PPI trigger configuration (GICR_ICFGR1), kept for read-back.
    ppi_config: AtomicU32,
    /// GICR_WAKER.ProcessorSleep.
    asleep: AtomicBool,
}

/// The virtual GIC of one VM.
pub struct Vgic {
    vcpus: Vec<VcpuIrqs>,
    nr_intids: u32,
    /// Words of the bitmaps below `nr_intids` (at most [`WORDS`]).
    nr_words: usize,
    owned: Bits,
    /// Forwarded physical SPIs (passthrough or spare line).
    hw: Bits,
    /// SPIs carried on a spare physical line (doorbells).
    spare: Bits,
    /// Per SPI (by INTID): the physical INTID it is forwarded from, when
    /// `hw` (0 otherwise).
    line_of: [u16; INTIDS],
    /// Per physical INTID: the SPI of this VM it is forwarded as (0: none).
    spi_of_line: [u16; INTIDS],
    enabled: Bits,
    edge: Bits,
    level: Bits,
    /// SPI priorities (index by INTID; private INTIDs unused).
    priority: ByteTable,
    /// Target vCPU of each SPI (index by INTID; private INTIDs unused).
    route: ByteTable,
    group1_enabled: AtomicBool,
    backend: &'static dyn VgicHw,
}

impl Vgic {
    /// A virtual GIC for a VM whose vCPU `i` runs on `phys_cpus[i]`, owning
    /// `spis`, in its reset state.
    pub fn new(phys_cpus: &[usize], spis: &[OwnedSpi], backend: &'static dyn VgicHw) -> Self {
        let top = spis
            .iter()
            .map(|s| s.intid + 1)
            .filter(|&i| i <= MAX_INTIDS)
            .max()
            .unwrap_or(0);
        let nr_intids = top.max(PRIVATE_INTIDS).next_multiple_of(32).min(1024);
        let line = |s: &OwnedSpi| match s.source {
            SpiSource::Emulated => None,
            SpiSource::Passthrough => Some(s.intid),
            SpiSource::SpareLine(l) => Some(l),
        };
        let mut line_of = [0u16; INTIDS];
        let mut spi_of_line = [0u16; INTIDS];
        let vgic_hw = Bits::new();
        let spare = Bits::new();
        let owned = Bits::new();
        for s in spis {
            if !(PRIVATE_INTIDS..nr_intids).contains(&s.intid) {
                continue;
            }
            owned.set(s.intid, true);
            let Some(l) = line(s).filter(|&l| (PRIVATE_INTIDS..MAX_INTIDS).contains(&l)) else {
                continue;
            };
            // INTIDs are below 1020: they fit.
            if let (Some(to), Some(from)) = (
                line_of.get_mut(s.intid as usize),
                spi_of_line.get_mut(l as usize),
            ) {
                *to = l as u16;
                *from = s.intid as u16;
                vgic_hw.set(s.intid, true);
                spare.set(s.intid, matches!(s.source, SpiSource::SpareLine(_)));
            }
        }
        Vgic {
            vcpus: phys_cpus
                .iter()
                .map(|&phys_cpu| VcpuIrqs {
                    phys_cpu,
                    pending: Bits::new(),
                    hw_pending: Bits::new(),
                    private_enabled: AtomicU32::new(0),
                    private_priority: core::array::from_fn(|_| AtomicU8::new(RESET_PRIORITY)),
                    ppi_config: AtomicU32::new(0),
                    asleep: AtomicBool::new(true),
                })
                .collect(),
            nr_intids,
            nr_words: words_for(nr_intids),
            owned,
            hw: vgic_hw,
            spare,
            line_of,
            spi_of_line,
            enabled: Bits::new(),
            edge: Bits::new(),
            level: Bits::new(),
            priority: [const { AtomicU8::new(RESET_PRIORITY) }; INTIDS],
            route: [const { AtomicU8::new(0) }; INTIDS],
            group1_enabled: AtomicBool::new(false),
            backend,
        }
    }

    /// Number of INTIDs the distributor describes (a multiple of 32).
    pub fn nr_intids(&self) -> u32 {
        self.nr_intids
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> usize {
        self.vcpus.len()
    }

    /// Whether the VM owns `intid` (for private INTIDs: as seen by any of
    /// its vCPUs).
    #[inline]
    pub fn owns(&self, intid: u32) -> bool {
        if intid < SGIS {
            true
        } else if intid < PRIVATE_INTIDS {
            OWNED_PPIS & 1 << intid != 0
        } else {
            self.owned.get(intid)
        }
    }

    /// Whether `intid` is a forwarded physical interrupt.
    #[inline]
    pub fn is_hw(&self, intid: u32) -> bool {
        if intid < PRIVATE_INTIDS {
            intid >= SGIS && OWNED_PPIS & 1 << intid != 0
        } else {
            self.hw.get(intid)
        }
    }

    /// The physical INTID a forwarded interrupt comes from: a private one's
    /// own (the timers), a passthrough SPI's own, a doorbell's spare line;
    /// 0 for an SPI that is not forwarded.
    #[inline]
    pub fn line(&self, intid: u32) -> u32 {
        if intid < PRIVATE_INTIDS {
            return intid;
        }
        self.line_of
            .get(intid as usize)
            .map_or(0, |&l| u32::from(l))
    }

    /// The SPI of this VM that physical SPI `line` is forwarded as.
    #[inline]
    pub fn spi_of_line(&self, line: u32) -> Option<u32> {
        self.spi_of_line
            .get(line as usize)
            .filter(|&&v| v != 0)
            .map(|&v| u32::from(v))
    }

    /// Distributor group-1 enable (GICD_CTLR.EnableGrp1).
    pub fn group1_enabled(&self) -> bool {
        self.group1_enabled.load(Ordering::Acquire)
    }

    /// Sets GICD_CTLR.EnableGrp1; enabling delivers what was waiting.
    pub fn set_group1_enabled(&self, on: bool) {
        self.group1_enabled.store(on, Ordering::Release);
        if on {
            for v in 0..self.vcpus.len() {
                self.notify(v);
            }
        }
    }

    /// Whether `intid` is enabled for `vcpu` (SPIs: for every vCPU).
    #[inline]
    pub fn is_enabled(&self, vcpu: usize, intid: u32) -> bool {
        if intid < PRIVATE_INTIDS {
            self.vcpus
                .get(vcpu)
                .is_some_and(|v| v.private_enabled.load(Ordering::Acquire) & 1 << intid != 0)
        } else {
            self.enabled.get(intid)
        }
    }

    /// Enables or disables an owned interrupt (others: ignored).
    pub fn set_enabled(&self, vcpu: usize, intid: u32, on: bool) {
        if !self.owns(intid) {
            return;
        }
        if intid < PRIVATE_INTIDS {
            let Some(v) = self.vcpus.get(vcpu) else {
                return;
            };
            if on {
                v.private_enabled.fetch_or(1 << intid, Ordering::AcqRel);
            } else {
                v.private_enabled.fetch_and(!(1 << intid), Ordering::AcqRel);
            }
            if on {
                self.notify(vcpu);
            }
            return;
        }
        self.enabled.set(intid, on);
        if self.hw.get(intid) {
            self.backend.set_physical_enabled(self.line(intid), on);
        }
        if on {
            self.notify(self.target_of(intid));
        }
    }

    /// Priority of an interrupt as the guest set it (unowned: 0).
    #[inline]
    pub fn priority(&self, vcpu: usize, intid: u32) -> u8 {
        self.priority_slot(vcpu, intid)
            .map_or(0, |p| p.load(Ordering::Relaxed))
    }

    /// Where an owned interrupt's priority lives (private ones per vCPU).
    #[inline]
    fn priority_slot(&self, vcpu: usize, intid: u32) -> Option<&AtomicU8> {
        if !self.owns(intid) {
            None
        } else {
            self.owned_priority_slot(self.vcpus.get(vcpu)?, intid)
        }
    }

    /// [`Self::priority_slot`] of an interrupt known to be owned (pending,
    /// or forwarded from the VM's own physical line): no ownership check.
    #[inline(always)]
    fn owned_priority_slot<'a>(&'a self, v: &'a VcpuIrqs, intid: u32) -> Option<&'a AtomicU8> {
        if intid < PRIVATE_INTIDS {
            v.private_priority.get(intid as usize)
        } else {
            self.priority.get(intid as usize)
        }
    }

    /// Priority of a forwarded interrupt of `vcpu` (owned by construction:
    /// a timer PPI or the SPI of one of the VM's physical lines).
    #[inline(always)]
    pub fn forwarded_priority(&self, vcpu: usize, intid: u32) -> u8 {
        let slot = if intid < PRIVATE_INTIDS {
            self.vcpus
                .get(vcpu)
                .and_then(|v| v.private_priority.get(intid as usize))
        } else {
            self.priority.get(intid as usize)
        };
        slot.map_or(0, |p| p.load(Ordering::Relaxed))
    }

    /// Sets the priority of an owned interrupt.
    pub fn set_priority(&self, vcpu: usize, intid: u32, prio: u8) {
        if let Some(p) = self.priority_slot(vcpu, intid) {
            p.store(prio, Ordering::Relaxed);
        }
    }

    /// Whether an SPI is edge-triggered (SGIs always are; PPIs report level).
    pub fn is_edge(&self, intid: u32) -> bool {
        if intid < SGIS {
            true
        } else if intid < PRIVATE_INTIDS {
            false
        } else {
            self.owns(intid) && self.edge.get(intid)
        }
    }

    /// Configures an owned SPI's trigger.
    pub fn set_edge(&self, intid: u32, edge: bool) {
        if intid < PRIVATE_INTIDS || !self.owns(intid) {
            return;
        }
        self.edge.set(intid, edge);
        // A spare line stays edge: only software raises it.
        if self.hw.get(intid) && !self.spare.get(intid) {
            self.backend.set_physical_edge(intid, edge);
        }
    }

    /// GICR_ICFGR1 value last written for `vcpu` (PPI configuration).
    pub fn ppi_config(&self, vcpu: usize) -> u32 {
        self.vcpus
            .get(vcpu)
            .map_or(0, |v| v.ppi_config.load(Ordering::Relaxed))
    }

    /// Records GICR_ICFGR1 (the timers are level whatever is written).
    pub fn set_ppi_config(&self, vcpu: usize, value: u32) {
        if let Some(v) = self.vcpus.get(vcpu) {
            v.ppi_config.store(value, Ordering::Relaxed);
        }
    }

    /// The vCPU an SPI is routed to.
    #[inline]
    pub fn target_of(&self, intid: u32) -> usize {
        self.route
            .get(intid as usize)
            .map_or(0, |r| r.load(Ordering::Relaxed) as usize)
    }

    /// Routes an owned SPI to `vcpu`; a vCPU the VM does not have is
    /// refused (the write is ignored).
    pub fn set_target(&self, intid: u32, vcpu: usize) {
        if intid < PRIVATE_INTIDS || !self.owns(intid) || vcpu >= self.vcpus.len() {
            return;
        }
        if let Some(r) = self.route.get(intid as usize) {
            r.store(vcpu as u8, Ordering::Relaxed);
        }
        if self.hw.get(intid) {
            self.backend
                .route_physical(self.line(intid), self.vcpus[vcpu].phys_cpu);
        }
    }

    /// Routes the forwarded SPIs that target `vcpu` to its physical CPU
    /// again. Its core calls this as the vCPU starts: a GICv2 learns which
    /// CPU interface a core is only once that core has brought its
    /// interface up, after the VMs were built, so a route set before then
    /// could not name it.
    pub fn route_lines_of(&self, vcpu: usize) {
        let Some(v) = self.vcpus.get(vcpu) else {
            return;
        };
        for intid in PRIVATE_INTIDS..self.nr_intids {
            if self.hw.get(intid) && self.target_of(intid) == vcpu {
                self.backend.route_physical(self.line(intid), v.phys_cpu);
            }
        }
    }

    /// Physical CPU of `vcpu`.
    pub fn phys_cpu(&self, vcpu: usize) -> Option<usize> {
        self.vcpus.get(vcpu).map(|v| v.phys_cpu)
    }

    /// Whether `intid` waits (not yet delivered) for `vcpu` (SPIs: for
    /// their target), or an emulated level line holds it.
    pub fn is_pending(&self, vcpu: usize, intid: u32) -> bool {
        if !self.owns(intid) {
            return false;
        }
        let v = if intid < PRIVATE_INTIDS {
            vcpu
        } else {
            self.target_of(intid)
        };
        self.vcpus
            .get(v)
            .is_some_and(|v| v.pending.get(intid) || v.hw_pending.get(intid))
            || (intid >= PRIVATE_INTIDS && self.level.get(intid))
    }

    /// Makes an owned interrupt pending for `vcpu` (SPIs go to their
    /// target), as a write to ISPENDR or an SGI does, and delivers it if it
    /// can be.
    pub fn set_pending(&self, vcpu: usize, intid: u32) {
        if intid >= PRIVATE_INTIDS {
            return self.set_spi_pending(intid);
        }
        if !self.owns(intid) {
            return;
        }
        let Some(v) = self.vcpus.get(vcpu) else {
            return;
        };
        v.pending.set(intid, true);
        // Only this interrupt changed: if it cannot be delivered, nothing
        // new can (every other one was signalled when it became
        // deliverable), so the full scan of `notify` is not needed.
        if self.is_enabled(vcpu, intid) && self.group1_enabled() {
            self.signal_cpu(v.phys_cpu, vcpu);
        }
    }

    /// [`Self::set_pending`] of an SPI (a doorbell, an emulated device): one
    /// word index and mask for the ownership, pending and enable bitmaps.
    #[inline]
    fn set_spi_pending(&self, intid: u32) {
        let word = (intid / 64) as usize;
        let bit = 1u64 << (intid % 64);
        if word >= WORDS {
            return;
        }
        let is_set = |bits: &Bits| bits.0[word].load(Ordering::Acquire) & bit;
        if is_set(&self.owned) == 0 {
            return;
        }
        let target = self.target_of(intid);
        let Some(v) = self.vcpus.get(target) else {
            return;
        };
        v.pending.0[word].fetch_or(bit, Ordering::AcqRel);
        // As for private interrupts: only this one changed.
        if is_set(&self.enabled) != 0 && self.group1_enabled() {
            self.signal_cpu(v.phys_cpu, target);
        }
    }

    /// Withdraws a pending interrupt not yet delivered (ICPENDR). One already
    /// in a list register stays there.
    pub fn clear_pending(&self, vcpu: usize, intid: u32) {
        if !self.owns(intid) {
            return;
        }
        let target = if intid < PRIVATE_INTIDS {
            vcpu
        } else {
            self.target_of(intid)
        };
        if let Some(v) = self.vcpus.get(target) {
            v.pending.set(intid, false);
        }
    }

    /// A physical interrupt of the VM fired for `vcpu` and could not go
    /// straight into a list register: it waits in the pending set (still
    /// active at the physical GIC) and is delivered when possible.
    pub fn forward_physical(&self, vcpu: usize, intid: u32) {
        if let Some(v) = self.vcpus.get(vcpu) {
            v.hw_pending.set(intid, true);
            self.notify(vcpu);
        }
    }

    /// Puts back an interrupt taken by [`Self::take_deliverable`] that found
    /// no list register (no delivery is attempted).
    pub fn requeue(&self, vcpu: usize, d: &Deliverable) {
        if let Some(v) = self.vcpus.get(vcpu) {
            if d.hw {
                v.hw_pending.set(d.intid, true);
            } else {
                v.pending.set(d.intid, true);
            }
        }
    }

    /// Drives the level of an emulated device's SPI: high makes it pending
    /// (again, if the guest already took it), low withdraws it.
    pub fn set_level(&self, intid: u32, high: bool) {
        if intid < PRIVATE_INTIDS || !self.owns(intid) || self.hw.get(intid) {
            return;
        }
        self.level.set(intid, high);
        if high {
            self.set_pending(0, intid);
        } else {
            self.clear_pending(0, intid);
        }
    }

    /// Hands `vcpu`'s deliverable interrupts to the hardware: on this core
    /// directly, on another by a kick.
    fn notify(&self, vcpu: usize) {
        let Some(v) = self.vcpus.get(vcpu) else {
            return;
        };
        if self.has_deliverable(vcpu) {
            self.signal_cpu(v.phys_cpu, vcpu);
        }
    }

    /// Delivers here if `vcpu` runs on this core, else kicks its core.
    #[inline]
    fn signal_cpu(&self, phys_cpu: usize, vcpu: usize) {
        self.backend.signal(self, phys_cpu, vcpu);
    }

    /// Enable bits of INTIDs `base..base + 64`, with a vCPU's private
    /// enables in the first word.
    #[inline]
    fn enabled_word(&self, base: u32, private: u64) -> u64 {
        let spis = self
            .enabled
            .word((base / 64) as usize)
            .map_or(0, |w| w.load(Ordering::Acquire));
        if base == 0 {
            private | spis & !0xffff_ffff
        } else {
            spis
        }
    }

    /// Words of the bitmaps this distributor uses.
    #[inline(always)]
    fn nr_words(&self) -> usize {
        self.nr_words.min(WORDS)
    }

    /// Whether `vcpu` has an enabled interrupt waiting.
    pub fn has_deliverable(&self, vcpu: usize) -> bool {
        let Some(v) = self.vcpus.get(vcpu) else {
            return false;
        };
        if !self.group1_enabled() {
            return false;
        }
        let private = v.private_enabled.load(Ordering::Acquire) as u64;
        let n = self.nr_words();
        v.pending
            .words(n)
            .zip(v.hw_pending.words(n))
            .any(|((base, sw), (_, hw))| (sw | hw) & self.enabled_word(base, private) != 0)
    }

    /// Takes `vcpu`'s deliverable interrupt if it has exactly one (the
    /// usual case: one doorbell, one SGI, one timer tick), removing it from
    /// the pending set; with several it takes nothing and says so, for
    /// [`Self::take_deliverable`]. One pass over the pending words, no batch:
    /// the single-interrupt refill is about a quarter of the general one.
    #[inline]
    pub fn take_single(&self, vcpu: usize) -> Single {
        let Some(v) = self.vcpus.get(vcpu) else {
            return Single::Nothing;
        };
        if !self.group1_enabled() {
            return Single::Nothing;
        }
        // (deliverable bits, forwarded physical ones) of word `i`.
        let deliverable = |i: usize, enabled: u64| {
            let hw = v.hw_pending.0[i].load(Ordering::Acquire);
            ((v.pending.0[i].load(Ordering::Acquire) | hw) & enabled, hw)
        };
        // Word 0 holds the private interrupts, enabled per vCPU.
        let private = v.private_enabled.load(Ordering::Acquire) as u64;
        let spis = self.enabled.0[0].load(Ordering::Acquire) & !0xffff_ffff;
        let mut found = (0, deliverable(0, private | spis));
        for i in 1..self.nr_words() {
            let (bits, hw) = deliverable(i, self.enabled.0[i].load(Ordering::Acquire));
            if bits != 0 {
                if found.1 .0 != 0 {
                    return Single::Several;
                }
                found = (i, (bits, hw));
            }
        }
        let (word, (bits, hw_bits)) = found;
        if bits == 0 {
            return Single::Nothing;
        }
        if bits & (bits - 1) != 0 {
            return Single::Several;
        }
        let bit = bits.trailing_zeros();
        let intid = word as u32 * 64 + bit;
        // As in `take_deliverable`: a forwarded physical interrupt goes
        // first; a software-pending copy of the same INTID stays pending.
        let hw = hw_bits & bits != 0;
        let set = if hw { &v.hw_pending } else { &v.pending };
        set.0[word].fetch_and(!bits, Ordering::AcqRel);
        let priority = if intid < PRIVATE_INTIDS {
            v.private_priority[intid as usize].load(Ordering::Relaxed)
        } else {
            self.priority
                .get(intid as usize)
                .map_or(0, |p| p.load(Ordering::Relaxed))
        };
        Single::One(Deliverable {
            intid,
            priority,
            hw,
            line: if hw { self.line(intid) } else { 0 },
        })
    }

    /// Takes up to `limit` (at most [`MAX_LIST_REGS`]) of `vcpu`'s enabled
    /// pending interrupts into `out`, highest priority (lowest value) first
    /// when there are more, removing them from the pending set. Returns
    /// whether more remain.
    pub fn take_deliverable(&self, vcpu: usize, limit: usize, out: &mut Batch) -> bool {
        out.clear();
        let Some(v) = self.vcpus.get(vcpu) else {
            return false;
        };
        if !self.group1_enabled() {
            return false;
        }
        let limit = limit.min(out.capacity());
        let mut more = false;
        let private = v.private_enabled.load(Ordering::Acquire) as u64;
        let n = self.nr_words();
        for ((base, sw), (_, hw)) in v.pending.words(n).zip(v.hw_pending.words(n)) {
            let mut bits = (sw | hw) & self.enabled_word(base, private);
            while bits != 0 {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                let intid = base + bit;
                // Only owned interrupts are ever pending: no ownership
                // check on this path.
                let slot = self.owned_priority_slot(v, intid);
                let is_hw = hw >> bit & 1 != 0;
                let d = Deliverable {
                    intid,
                    priority: slot.map_or(0, |p| p.load(Ordering::Relaxed)),
                    hw: is_hw,
                    line: if is_hw { self.line(intid) } else { 0 },
                };
                if out.len() < limit {
                    let _ = out.push(d);
                } else {
                    more = true;
                    // Keep the highest-priority ones: replace the worst.
                    if let Some(worst) = out.iter_mut().max_by_key(|w| w.priority) {
                        if worst.priority > d.priority {
                            *worst = d;
                        }
                    }
                }
            }
        }
        for d in out.iter() {
            if d.hw {
                v.hw_pending.set(d.intid, false);
            } else {
                v.pending.set(d.intid, false);
            }
        }
        more
    }

    /// GICR_WAKER.ProcessorSleep of `vcpu`.
    pub fn is_asleep(&self, vcpu: usize) -> bool {
        self.vcpus
            .get(vcpu)
            .is_some_and(|v| v.asleep.load(Ordering::Relaxed))
    }

    /// Sets GICR_WAKER.ProcessorSleep of `vcpu`.
    pub fn set_asleep(&self, vcpu: usize, asleep: bool) {
        if let Some(v) = self.vcpus.get(vcpu) {
            v.asleep.store(asleep, Ordering::Relaxed);
        }
    }

    /// Back to the reset state (VM reset; no vCPU of the VM runs): nothing
    /// enabled or pending, SPIs routed to vCPU 0, passthrough interrupts
    /// quiesced at the physical GIC.
    pub fn reset(&self) {
        for v in &self.vcpus {
            v.pending.clear_all();
            v.hw_pending.clear_all();
            v.private_enabled.store(0, Ordering::Release);
            for p in &v.private_priority {
                p.store(RESET_PRIORITY, Ordering::Relaxed);
            }
            v.ppi_config.store(0, Ordering::Relaxed);
            v.asleep.store(true, Ordering::Relaxed);
        }
        self.enabled.clear_all();
        self.edge.clear_all();
        self.level.clear_all();
        for p in &self.priority {
            p.store(RESET_PRIORITY, Ordering::Relaxed);
        }
        self.group1_enabled.store(false, Ordering::Release);
        for intid in PRIVATE_INTIDS..self.nr_intids {
            if let Some(r) = self.route.get(intid as usize) {
                r.store(0, Ordering::Relaxed);
            }
            if self.hw.get(intid) {
                let line = self.line(intid);
                self.backend.quiesce_physical(line);
                if self.spare.get(intid) {
                    self.backend.set_physical_edge(line, true);
                }
                if let Some(v0) = self.vcpus.first() {
                    self.backend.route_physical(line, v0.phys_cpu);
                }
            }
        }
    }
}

/// An emulated device's interrupt output wired to one SPI of a VM's
/// virtual GIC.
pub struct VgicLine {
    /// The VM's virtual GIC.
    pub vgic: &'static Vgic,
    /// The SPI.
    pub intid: u32,
}

impl super::InterruptLine for VgicLine {
    fn set_level(&self, asserted: bool) {
        self.vgic.set_level(self.intid, asserted);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::boxed::Box;
    use std::sync::Mutex;

    /// Records what the model asked of the hardware; "this core" is a
    /// settable physical CPU.
    #[derive(Default)]
    pub struct FakeHw {
        pub this_cpu: Mutex<usize>,
        pub log: Mutex<Vec<String>>,
    }

    impl VgicHw for FakeHw {
        fn is_this_cpu(&self, phys_cpu: usize) -> bool {
            *self.this_cpu.lock().unwrap() == phys_cpu
        }
        fn deliver_local(&self, _: &Vgic, vcpu: usize) {
            self.log.lock().unwrap().push(format!("deliver {vcpu}"));
        }
        fn kick(&self, phys_cpu: usize) {
            self.log.lock().unwrap().push(format!("kick {phys_cpu}"));
        }
        fn set_physical_enabled(&self, intid: u32, enabled: bool) {
            self.log
                .lock()
                .unwrap()
                .push(format!("phys-enable {intid} {enabled}"));
        }
        fn route_physical(&self, intid: u32, phys_cpu: usize) {
            self.log
                .lock()
                .unwrap()
                .push(format!("phys-route {intid} {phys_cpu}"));
        }
        fn set_physical_edge(&self, intid: u32, edge: bool) {
            self.log
                .lock()
                .unwrap()
                .push(format!("phys-edge {intid} {edge}"));
        }
        fn quiesce_physical(&self, intid: u32) {
            self.log.lock().unwrap().push(format!("quiesce {intid}"));
        }
    }

    impl FakeHw {
        pub fn take_log(&self) -> Vec<String> {
            core::mem::take(&mut *self.log.lock().unwrap())
        }
    }

    /// A VM with vCPUs on physical CPUs 2 and 3, owning passthrough SPI 40
    /// and emulated SPI 33.
    pub fn vgic() -> (&'static Vgic, &'static FakeHw) {
        let hw: &'static FakeHw = Box::leak(Box::default());
        *hw.this_cpu.lock().unwrap() = 2;
        let spis = [
            OwnedSpi {
                intid: 40,
                source: SpiSource::Passthrough,
            },
            OwnedSpi {
                intid: 33,
                source: SpiSource::Emulated,
            },
        ];
        (Box::leak(Box::new(Vgic::new(&[2, 3], &spis, hw))), hw)
    }

    fn take(v: &Vgic, vcpu: usize, n: usize) -> (Vec<u32>, bool) {
        let mut out = Batch::new();
        let more = v.take_deliverable(vcpu, n, &mut out);
        (out.iter().map(|d| d.intid).collect(), more)
    }

    #[test]
    fn sizes_the_distributor_to_the_highest_owned_spi() {
        let (v, _) = vgic();
        assert_eq!(v.nr_intids(), 64);
        assert!(v.owns(40) && v.owns(33) && v.owns(5) && v.owns(27));
        assert!(!v.owns(41) && !v.owns(25) && !v.owns(26) && !v.owns(1000));
        assert!(v.is_hw(40) && !v.is_hw(33) && v.is_hw(27) && !v.is_hw(3));
    }

    #[test]
    fn unowned_interrupts_ignore_every_write() {
        let (v, hw) = vgic();
        v.set_enabled(0, 41, true);
        v.set_priority(0, 41, 0x80);
        v.set_pending(0, 41);
        v.set_target(41, 1);
        v.set_edge(41, true);
        v.set_enabled(0, 25, true);
        assert!(!v.is_enabled(0, 41) && !v.is_enabled(0, 25));
        assert_eq!(v.priority(0, 41), 0);
        assert!(!v.is_pending(0, 41));
        assert!(!v.is_edge(41));
        assert!(hw.take_log().is_empty());
    }

    #[test]
    fn routing_names_only_the_vms_own_vcpus_and_moves_the_physical_spi() {
        let (v, hw) = vgic();
        v.set_target(40, 5);
        assert_eq!(v.target_of(40), 0);
        v.set_target(40, 1);
        assert_eq!(v.target_of(40), 1);
        assert_eq!(hw.take_log(), ["phys-route 40 3"]);
    }

    #[test]
    fn pending_waits_for_enable_then_is_delivered_locally_or_by_kick() {
        let (v, hw) = vgic();
        v.set_group1_enabled(true);
        hw.take_log();
        v.set_pending(0, 33);
        assert_eq!(take(v, 0, 4), (vec![], false), "not enabled yet");
        v.set_enabled(0, 33, true); // routed to vCPU 0 = this core
        assert_eq!(hw.take_log(), ["deliver 0"]);
        assert_eq!(take(v, 0, 4), (vec![33], false));
        assert!(!v.is_pending(0, 33));
        // An SGI to vCPU 1 (on CPU 3, another core) kicks that core.
        v.set_enabled(1, 2, true);
        hw.take_log();
        v.set_pending(1, 2);
        assert_eq!(hw.take_log(), ["kick 3"]);
        assert_eq!(take(v, 1, 4), (vec![2], false));
    }

    #[test]
    fn take_single_takes_the_only_deliverable_and_leaves_several_alone() {
        let (v, hw) = vgic();
        assert_eq!(v.take_single(0), Single::Nothing, "group 1 off");
        v.set_group1_enabled(true);
        v.set_enabled(0, 33, true);
        v.set_priority(0, 33, 0x40);
        v.set_enabled(0, 2, true);
        v.set_pending(0, 5); // not enabled: never counts
        assert_eq!(v.take_single(0), Single::Nothing);
        v.set_pending(0, 33);
        let one = Deliverable {
            intid: 33,
            priority: 0x40,
            hw: false,
            line: 0,
        };
        assert_eq!(v.take_single(0), Single::One(one));
        assert!(!v.is_pending(0, 33), "taken from the pending set");
        assert_eq!(v.take_single(0), Single::Nothing);
        // Two deliverable (an SGI in the private word, an SPI): nothing
        // taken, and the batch path takes both.
        v.set_pending(0, 2);
        v.set_pending(0, 33);
        assert_eq!(v.take_single(0), Single::Several);
        assert!(v.is_pending(0, 2) && v.is_pending(0, 33));
        assert_eq!(take(v, 0, 4), (vec![2, 33], false));
        // Two in one word.
        v.set_enabled(0, 3, true);
        v.set_pending(0, 2);
        v.set_pending(0, 3);
        assert_eq!(v.take_single(0), Single::Several);
        assert_eq!(take(v, 0, 4), (vec![2, 3], false));
        // A forwarded physical interrupt keeps its HW flag.
        v.set_enabled(0, 40, true);
        v.forward_physical(0, 40);
        assert!(matches!(
            v.take_single(0),
            Single::One(Deliverable {
                intid: 40,
                hw: true,
                line: 40,
                ..
            })
        ));
        // Another vCPU's pending interrupts are not this one's.
        v.set_enabled(1, 2, true);
        v.set_pending(1, 2);
        assert_eq!(v.take_single(0), Single::Nothing);
        assert!(matches!(v.take_single(1), Single::One(d) if d.intid == 2));
        hw.take_log();
    }

    #[test]
    fn a_pending_spi_goes_to_its_routed_vcpu_and_kicks_only_when_deliverable() {
        let (v, hw) = vgic();
        v.set_group1_enabled(true);
        v.set_target(33, 1); // vCPU 1 runs on CPU 3, not this core
        hw.take_log();
        v.set_pending(0, 33);
        assert!(hw.take_log().is_empty(), "not enabled: no kick");
        assert!(v.is_pending(1, 33));
        assert_eq!(take(v, 0, 4), (vec![], false), "not vCPU 0's");
        v.set_enabled(0, 33, true);
        assert_eq!(hw.take_log(), ["kick 3"]);
        v.set_pending(0, 33);
        assert_eq!(hw.take_log(), ["kick 3"]);
        assert_eq!(take(v, 1, 4), (vec![33], false));
        // Unowned SPIs, and INTIDs past the distributor, change nothing.
        v.set_pending(0, 41);
        v.set_pending(0, 1019);
        assert!(hw.take_log().is_empty());
        assert!(!v.is_pending(0, 41) && !v.is_pending(0, 1019));
    }

    #[test]
    fn hw_spi_enable_reaches_the_physical_distributor() {
        let (v, hw) = vgic();
        v.set_enabled(0, 40, true);
        v.set_edge(40, true);
        v.set_enabled(0, 40, false);
        assert_eq!(
            hw.take_log(),
            [
                "phys-enable 40 true",
                "phys-edge 40 true",
                "phys-enable 40 false"
            ]
        );
    }

    #[test]
    fn physical_interrupts_are_delivered_with_the_hw_flag() {
        let (v, _) = vgic();
        v.set_group1_enabled(true);
        v.forward_physical(0, 27);
        assert!(!v.has_deliverable(0), "timer PPI not enabled");
        v.set_enabled(0, 27, true);
        let mut out = Batch::new();
        assert!(!v.take_deliverable(0, 2, &mut out));
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0],
            Deliverable {
                intid: 27,
                priority: 0,
                hw: true,
                line: 27,
            }
        );
    }

    #[test]
    fn overflow_keeps_the_highest_priorities_and_reports_more() {
        let (v, _) = vgic();
        v.set_group1_enabled(true);
        for sgi in 0..6 {
            v.set_enabled(0, sgi, true);
            v.set_priority(0, sgi, 0xf0 - sgi as u8 * 0x10);
            v.set_pending(0, sgi);
        }
        let (mut got, more) = take(v, 0, 4);
        got.sort();
        assert_eq!(got, vec![2, 3, 4, 5]);
        assert!(more);
        let (rest, more) = take(v, 0, 4);
        assert_eq!(rest, vec![0, 1]);
        assert!(!more);
    }

    #[test]
    fn level_lines_pend_and_withdraw() {
        let (v, _) = vgic();
        v.set_group1_enabled(true);
        v.set_enabled(0, 33, true);
        v.set_level(33, true);
        assert!(v.is_pending(0, 33));
        v.set_level(33, false);
        assert!(!v.is_pending(0, 33));
        assert_eq!(take(v, 0, 4), (vec![], false));
        v.set_level(40, true); // a passthrough SPI has no emulated level
        assert!(!v.is_pending(0, 40));
    }

    #[test]
    fn group1_disabled_delivers_nothing() {
        let (v, _) = vgic();
        v.set_enabled(0, 1, true);
        v.set_pending(0, 1);
        assert!(!v.has_deliverable(0));
        v.set_group1_enabled(true);
        assert!(v.has_deliverable(0));
    }

    #[test]
    fn reset_clears_state_and_quiesces_passthrough() {
        let (v, hw) = vgic();
        v.set_group1_enabled(true);
        v.set_enabled(0, 40, true);
        v.set_target(40, 1);
        v.set_enabled(1, 3, true);
        v.set_pending(1, 3);
        hw.take_log();
        v.reset();
        assert!(!v.is_enabled(0, 40) && !v.is_enabled(1, 3) && !v.is_pending(1, 3));
        assert_eq!(v.target_of(40), 0);
        assert!(!v.group1_enabled());
        assert_eq!(hw.take_log(), ["quiesce 40", "phys-route 40 2"]);
    }

    /// A doorbell SPI 48 carried on spare physical line 300: enabling,
    /// routing and reset act on the line, which stays edge whatever the
    /// guest says; the line arriving is forwarded as SPI 48 with the line
    /// as physical INTID.
    #[test]
    fn a_doorbell_on_a_spare_line_is_raised_and_forwarded_through_the_line() {
        let hw: &'static FakeHw = Box::leak(Box::default());
        *hw.this_cpu.lock().unwrap() = 2;
        let spis = [
            OwnedSpi {
                intid: 48,
                source: SpiSource::SpareLine(300),
            },
            OwnedSpi {
                intid: 33,
                source: SpiSource::Emulated,
            },
        ];
        let v: &'static Vgic = Box::leak(Box::new(Vgic::new(&[2, 3], &spis, hw)));
        assert_eq!(v.nr_intids(), 64, "sized by the virtual INTIDs");
        assert!(v.owns(48) && v.is_hw(48) && !v.owns(300));
        assert_eq!((v.line(48), v.line(33), v.line(27)), (300, 0, 27));
        assert_eq!(v.spi_of_line(300), Some(48));
        assert_eq!(v.spi_of_line(48), None, "not a line of this VM");
        assert_eq!(v.spi_of_line(2000), None);
        v.reset();
        assert_eq!(
            hw.take_log(),
            ["quiesce 300", "phys-edge 300 true", "phys-route 300 2"]
        );
        v.set_group1_enabled(true);
        v.set_enabled(0, 48, true);
        v.set_edge(48, false);
        v.set_target(48, 1);
        assert_eq!(hw.take_log(), ["phys-enable 300 true", "phys-route 300 3"]);
        // A vCPU starting routes again the lines that target it, and only
        // those.
        v.route_lines_of(0);
        assert!(hw.take_log().is_empty(), "nothing targets vCPU 0");
        v.route_lines_of(1);
        assert_eq!(hw.take_log(), ["phys-route 300 3"]);
        v.route_lines_of(7);
        assert!(hw.take_log().is_empty(), "no such vCPU");
        v.forward_physical(1, 48);
        assert!(matches!(
            v.take_single(1),
            Single::One(Deliverable {
                intid: 48,
                hw: true,
                line: 300,
                ..
            })
        ));
    }
}
