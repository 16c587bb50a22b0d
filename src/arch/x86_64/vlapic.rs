//! A virtual local APIC, one per vCPU: the register model behind the
//! x2APIC MSRs (0x800-0x8ff), IA32_APIC_BASE and IA32_TSC_DEADLINE (SDM
//! vol. 3, chapter 11). It keeps the interrupt request and in-service
//! registers, the task priority, and the timer (one-shot, periodic and
//! TSC-deadline); the exit handler asks it which vector to inject and when
//! its timer fires next. Pure: time is passed in as a TSC value, so host
//! tests drive it directly.
//!
//! The timer counts at the TSC frequency divided by the divide
//! configuration (the virtual "bus clock" is the TSC), so a guest that
//! knows its TSC frequency knows its timer's.

/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// IA32_TSC_DEADLINE.
pub const MSR_TSC_DEADLINE: u32 = 0x6e0;
/// First and last x2APIC register MSR.
pub const MSR_X2APIC_FIRST: u32 = 0x800;
/// Last x2APIC register MSR.
pub const MSR_X2APIC_LAST: u32 = 0x8ff;
/// Guest-physical base of the xAPIC page (the reset value of the base
/// MSR; Tessera does not let a guest move it).
pub const XAPIC_BASE: u64 = 0xfee0_0000;

/// IA32_APIC_BASE bits: this is the bootstrap processor, x2APIC mode,
/// APIC global enable.
const BASE_BSP: u64 = 1 << 8;
const BASE_EXTD: u64 = 1 << 10;
const BASE_EN: u64 = 1 << 11;

/// Register numbers: the x2APIC MSR minus 0x800 (= the xAPIC MMIO offset
/// divided by 16).
mod reg {
    pub const ID: u32 = 0x02;
    pub const VERSION: u32 = 0x03;
    pub const TPR: u32 = 0x08;
    pub const PPR: u32 = 0x0a;
    pub const EOI: u32 = 0x0b;
    pub const LDR: u32 = 0x0d;
    pub const SVR: u32 = 0x0f;
    pub const ISR0: u32 = 0x10;
    pub const TMR0: u32 = 0x18;
    pub const IRR0: u32 = 0x20;
    pub const ESR: u32 = 0x28;
    pub const LVT_CMCI: u32 = 0x2f;
    pub const ICR: u32 = 0x30;
    pub const LVT_TIMER: u32 = 0x32;
    pub const LVT_ERROR: u32 = 0x37;
    pub const INITIAL_COUNT: u32 = 0x38;
    pub const CURRENT_COUNT: u32 = 0x39;
    pub const DIVIDE: u32 = 0x3e;
    pub const SELF_IPI: u32 = 0x3f;
    /// xAPIC only: destination format, ICR high half.
    pub const DFR: u32 = 0x0e;
    pub const ICR_HIGH: u32 = 0x31;
}

/// Size of the xAPIC MMIO page.
pub const XAPIC_SIZE: u64 = 0x1000;

/// Version register: version 0x14 (an integrated APIC), 7 LVT entries
/// (max LVT index 6: CMCI, timer, thermal, perf, LINT0, LINT1, error).
const VERSION: u32 = 0x14 | 6 << 16;
/// SVR bit 8: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// LVT bit 16: masked.
const LVT_MASKED: u32 = 1 << 16;
/// LVT timer mode, bits 18:17.
const LVT_TIMER_MODE: u32 = 3 << 17;
/// Writable bits of each LVT (vector, delivery mode, polarity, trigger,
/// mask, and the timer's mode), indexed by register - LVT_CMCI base; the
/// timer's mode bits are added for it.
const LVT_WRITABLE: u32 = 0xff | 7 << 8 | 1 << 13 | 1 << 15 | LVT_MASKED;

/// The timer's mode (LVT timer bits 18:17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerMode {
    /// Counts the initial count down once.
    OneShot,
    /// Reloads the initial count each time it reaches 0.
    Periodic,
    /// Fires when the TSC reaches IA32_TSC_DEADLINE.
    TscDeadline,
}

/// Why an access is refused: the guest gets #GP (the SDM's answer for a
/// reserved x2APIC register, a read-only write, reserved bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// What an ICR write asks the caller to do (IPIs reach other vCPUs, which
/// only the back-end can find).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipi {
    /// A fixed interrupt `vector` to the vCPU with APIC id `dest`.
    Fixed {
        /// Destination APIC id.
        dest: u32,
        /// Vector.
        vector: u8,
    },
    /// A fixed interrupt to every vCPU but the sender.
    AllButSelf {
        /// Vector.
        vector: u8,
    },
    /// INIT to the vCPU with APIC id `dest`.
    Init {
        /// Destination APIC id.
        dest: u32,
    },
    /// Start-up IPI to `dest`: start at `vector << 12`.
    Startup {
        /// Destination APIC id.
        dest: u32,
        /// Start page.
        vector: u8,
    },
}

/// Timer divide configuration (bits 0, 1, 3) as a divisor.
pub const fn divisor(dcr: u32) -> u64 {
    let code = (dcr & 3) | (dcr >> 1 & 4);
    if code == 7 {
        1
    } else {
        2 << code
    }
}

/// The register state of one virtual local APIC.
#[derive(Debug, Clone)]
pub struct Lapic {
    id: u32,
    base: u64,
    tpr: u32,
    svr: u32,
    esr: u32,
    irr: [u64; 4],
    isr: [u64; 4],
    /// Trigger mode: vectors accepted as level-triggered (from the I/O
    /// APIC), whose EOI is reported to it.
    tmr: [u64; 4],
    /// A level-triggered vector the guest ended, not yet handed to the
    /// I/O APIC ([`Lapic::take_level_eoi`]).
    level_eoi: Option<u8>,
    /// Registers 0x2f..=0x37: LVT CMCI, (ICR and a hole: unused here),
    /// timer, thermal, perf, LINT0, LINT1, error.
    lvt: [u32; 9],
    icr: u64,
    initial_count: u32,
    dcr: u32,
    tsc_deadline: u64,
    /// When the armed timer fires next (TSC), if it is armed.
    fire_at: Option<u64>,
    /// xAPIC logical destination and destination format registers
    /// (x2APIC derives the logical id from the APIC id instead).
    ldr_xapic: u32,
    dfr: u32,
}

fn bit(v: u8) -> (usize, u64) {
    (usize::from(v >> 6), 1 << (v & 63))
}

fn highest(bits: &[u64; 4]) -> Option<u8> {
    (0..4)
        .rev()
        .find(|&i| bits[i] != 0)
        .map(|i| (i * 64 + 63 - bits[i].leading_zeros() as usize) as u8)
}

impl Lapic {
    /// The APIC of vCPU `vcpu` (its APIC id) after RESET or INIT: xAPIC
    /// mode, enabled in IA32_APIC_BASE, software-disabled (SVR = 0xff),
    /// every LVT masked, timer disarmed.
    pub fn new(vcpu: u32) -> Self {
        let bsp = if vcpu == 0 { BASE_BSP } else { 0 };
        Self {
            id: vcpu,
            base: XAPIC_BASE | BASE_EN | bsp,
            tpr: 0,
            svr: 0xff,
            esr: 0,
            irr: [0; 4],
            isr: [0; 4],
            tmr: [0; 4],
            level_eoi: None,
            lvt: [LVT_MASKED; 9],
            icr: 0,
            initial_count: 0,
            dcr: 0,
            tsc_deadline: 0,
            fire_at: None,
            ldr_xapic: 0,
            dfr: u32::MAX,
        }
    }

    /// Whether the guest switched to x2APIC mode (the MSR interface).
    pub fn x2apic(&self) -> bool {
        self.base & (BASE_EN | BASE_EXTD) == BASE_EN | BASE_EXTD
    }

    fn enabled(&self) -> bool {
        self.base & BASE_EN != 0 && self.svr & SVR_ENABLE != 0
    }

    fn lvt_timer(&self) -> u32 {
        self.lvt[(reg::LVT_TIMER - reg::LVT_CMCI) as usize]
    }

    /// The timer's mode.
    pub fn timer_mode(&self) -> TimerMode {
        match (self.lvt_timer() & LVT_TIMER_MODE) >> 17 {
            0 => TimerMode::OneShot,
            1 => TimerMode::Periodic,
            _ => TimerMode::TscDeadline,
        }
    }

    fn period(&self) -> u64 {
        u64::from(self.initial_count) * divisor(self.dcr)
    }

    /// Processor priority: the higher of the task priority and the class
    /// of the highest in-service vector.
    pub fn ppr(&self) -> u32 {
        let isrv = highest(&self.isr).map_or(0, u32::from);
        if self.tpr >> 4 >= isrv >> 4 {
            self.tpr & 0xff
        } else {
            isrv & 0xf0
        }
    }

    /// Makes `vector` pending (an interrupt accepted by this APIC).
    /// Vectors 0-15 are illegal and set the receive-illegal-vector error.
    pub fn raise(&mut self, vector: u8) {
        if vector < 16 {
            self.esr |= 1 << 6;
            return;
        }
        let (i, b) = bit(vector);
        self.irr[i] |= b;
    }

    /// The vector the vCPU should take next, if one is pending above the
    /// processor priority.
    pub fn pending(&self) -> Option<u8> {
        let v = highest(&self.irr)?;
        (u32::from(v) >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// Whether anything may need the exit path's attention before entry
    /// (a pending request or an armed timer).
    pub fn busy(&self) -> bool {
        self.fire_at.is_some() || self.irr.iter().any(|&w| w != 0)
    }

    /// Makes `vector` pending as a level-triggered interrupt from the I/O
    /// APIC: its EOI is reported ([`Lapic::take_level_eoi`]).
    pub fn raise_level(&mut self, vector: u8) {
        if vector >= 16 {
            let (i, b) = bit(vector);
            self.tmr[i] |= b;
        }
        self.raise(vector);
    }

    /// The level-triggered vector the guest ended since the last call,
    /// if any (the EOI message the I/O APIC waits for).
    pub fn take_level_eoi(&mut self) -> Option<u8> {
        self.level_eoi.take()
    }

    /// The vCPU took `vector` (it was injected): request to in-service.
    pub fn accept(&mut self, vector: u8) {
        let (i, b) = bit(vector);
        self.irr[i] &= !b;
        self.isr[i] |= b;
    }

    /// End of interrupt: the highest in-service vector is done.
    pub fn eoi(&mut self) {
        if let Some(v) = highest(&self.isr) {
            let (i, b) = bit(v);
            self.isr[i] &= !b;
            if self.tmr[i] & b != 0 {
                self.tmr[i] &= !b;
                self.level_eoi = Some(v);
            }
        }
    }

    /// The TSC value the timer fires at, if it is armed.
    pub fn next_fire(&self) -> Option<u64> {
        self.fire_at
    }

    /// Fires the timer if its time `now` has come: its vector becomes
    /// pending unless masked, and a periodic timer re-arms (periods missed
    /// while the vCPU was away are coalesced into this one interrupt).
    pub fn poll(&mut self, now: u64) {
        let Some(at) = self.fire_at.filter(|&at| now >= at) else {
            return;
        };
        let lvt = self.lvt_timer();
        if lvt & LVT_MASKED == 0 && self.enabled() {
            self.raise(lvt as u8);
        }
        self.fire_at = match self.timer_mode() {
            TimerMode::Periodic if self.period() != 0 => {
                let next = at.saturating_add(self.period());
                Some(if next > now {
                    next
                } else {
                    now.saturating_add(self.period())
                })
            }
            TimerMode::TscDeadline => {
                self.tsc_deadline = 0;
                None
            }
            _ => None,
        };
    }

    fn current_count(&self, now: u64) -> u32 {
        match (self.timer_mode(), self.fire_at) {
            (TimerMode::TscDeadline, _) | (_, None) => 0,
            (_, Some(at)) => {
                let left = at.saturating_sub(now).div_ceil(divisor(self.dcr));
                left.min(u64::from(self.initial_count)) as u32
            }
        }
    }

    /// Reads register `r` (x2APIC MSR - 0x800) at TSC `now`.
    pub fn read(&self, r: u32, now: u64) -> Result<u64, Refused> {
        let v = match r {
            reg::ID => self.id,
            reg::VERSION => VERSION,
            reg::TPR => self.tpr,
            reg::PPR => self.ppr(),
            reg::LDR => self.logical_id(),
            reg::SVR => self.svr,
            r if (reg::ISR0..reg::ISR0 + 8).contains(&r) => word(&self.isr, r - reg::ISR0),
            r if (reg::TMR0..reg::TMR0 + 8).contains(&r) => word(&self.tmr, r - reg::TMR0),
            r if (reg::IRR0..reg::IRR0 + 8).contains(&r) => word(&self.irr, r - reg::IRR0),
            reg::ESR => self.esr,
            reg::ICR => return Ok(self.icr),
            r if (reg::LVT_CMCI..=reg::LVT_ERROR).contains(&r) && r != reg::ICR + 1 => {
                self.lvt[(r - reg::LVT_CMCI) as usize]
            }
            reg::INITIAL_COUNT => self.initial_count,
            reg::CURRENT_COUNT => self.current_count(now),
            reg::DIVIDE => self.dcr,
            _ => return Err(Refused),
        };
        Ok(u64::from(v))
    }

    /// x2APIC logical id: cluster (id / 16) in bits 31:16, one bit of 16
    /// for the position in the cluster.
    fn logical_id(&self) -> u32 {
        (self.id >> 4) << 16 | 1 << (self.id & 0xf)
    }

    /// Writes register `r` (x2APIC MSR - 0x800) at TSC `now`. An ICR or
    /// self-IPI write that targets other vCPUs comes back as an [`Ipi`]
    /// for the caller to deliver.
    pub fn write(&mut self, r: u32, value: u64, now: u64) -> Result<Option<Ipi>, Refused> {
        let v32 = value as u32;
        let high_clear = value >> 32 == 0;
        match r {
            reg::ICR => return Ok(self.send(value)),
            _ if !high_clear => return Err(Refused),
            reg::TPR => self.tpr = v32 & 0xff,
            reg::EOI if v32 == 0 => self.eoi(),
            reg::SVR => {
                self.svr = v32 & (0xff | SVR_ENABLE | 1 << 12);
                if self.svr & SVR_ENABLE == 0 {
                    self.lvt.iter_mut().for_each(|l| *l |= LVT_MASKED);
                }
            }
            reg::ESR if v32 == 0 => self.esr = 0,
            r if (reg::LVT_CMCI..=reg::LVT_ERROR).contains(&r) && r != reg::ICR + 1 => {
                let mut keep = LVT_WRITABLE;
                if r == reg::LVT_TIMER {
                    keep |= LVT_TIMER_MODE;
                }
                let mut new = v32 & keep;
                if self.svr & SVR_ENABLE == 0 {
                    new |= LVT_MASKED;
                }
                let i = (r - reg::LVT_CMCI) as usize;
                let mode_changed = (self.lvt[i] ^ new) & LVT_TIMER_MODE != 0;
                self.lvt[i] = new;
                if r == reg::LVT_TIMER && mode_changed {
                    // A mode change disarms the timer (SDM 11.5.4.1).
                    self.fire_at = None;
                    self.tsc_deadline = 0;
                }
            }
            reg::INITIAL_COUNT => {
                self.initial_count = v32;
                if self.timer_mode() != TimerMode::TscDeadline {
                    self.fire_at = (v32 != 0).then(|| now.saturating_add(self.period()));
                }
            }
            reg::DIVIDE => self.dcr = v32 & 0xb,
            reg::SELF_IPI => self.raise(v32 as u8),
            _ => return Err(Refused),
        }
        Ok(None)
    }

    /// An ICR write: a fixed interrupt to this vCPU is raised here; the
    /// rest goes to the caller.
    fn send(&mut self, icr: u64) -> Option<Ipi> {
        self.icr = icr & !(1 << 12); // delivery status: always idle
        let vector = icr as u8;
        let dest = (icr >> 32) as u32;
        let mode = (icr >> 8) & 7;
        let shorthand = (icr >> 18) & 3;
        match (shorthand, mode) {
            (1, 0) => {
                self.raise(vector);
                None
            }
            (2, 0) => {
                self.raise(vector);
                Some(Ipi::AllButSelf { vector })
            }
            (3, 0) => Some(Ipi::AllButSelf { vector }),
            (0, 0) if dest == self.id => {
                self.raise(vector);
                None
            }
            (0, 0) => Some(Ipi::Fixed { dest, vector }),
            // INIT level de-assert (level 0, trigger level): nothing.
            (0, 5) if icr & 1 << 14 == 0 && icr & 1 << 15 != 0 => None,
            (0, 5) => Some(Ipi::Init { dest }),
            (0, 6) => Some(Ipi::Startup { dest, vector }),
            // Lowest priority, SMI, NMI, other shorthands: not modelled.
            _ => None,
        }
    }

    /// Whether the xAPIC MMIO page is there: the APIC is enabled and not
    /// in x2APIC mode.
    pub fn xapic(&self) -> bool {
        self.base & (BASE_EN | BASE_EXTD) == BASE_EN
    }

    /// A read of `width` (1, 2 or 4) bytes at `offset` in the xAPIC MMIO
    /// page at TSC `now`. Registers are 32 bits at 16-byte steps; a read
    /// may take part of one register, never cross into the next 16 bytes.
    /// Reserved registers read 0, as on hardware.
    pub fn read_xapic(&self, offset: u64, width: u64, now: u64) -> Result<u32, Refused> {
        let within = offset & 0xf;
        if !self.xapic()
            || offset >= XAPIC_SIZE
            || !matches!(width, 1 | 2 | 4)
            || within + width > 4
        {
            return Err(Refused);
        }
        let r = (offset >> 4) as u32;
        let v = match r {
            reg::ID => self.id << 24,
            reg::LDR => self.ldr_xapic,
            reg::DFR => self.dfr,
            reg::ICR => self.icr as u32,
            reg::ICR_HIGH => ((self.icr >> 32) as u32) << 24,
            reg::SELF_IPI => 0,
            _ => self.read(r, now).map_or(0, |v| v as u32),
        };
        let v = v >> (within * 8);
        Ok(if width == 4 {
            v
        } else {
            v & ((1 << (width * 8)) - 1)
        })
    }

    /// A write of `width` bytes of `value` at `offset` in the xAPIC MMIO
    /// page at TSC `now`: only whole 4-byte registers are written (the
    /// SDM leaves anything else undefined; Tessera refuses it). Writes to
    /// read-only and reserved registers are ignored, as on hardware. An
    /// ICR low write sends the IPI with the destination of ICR high.
    pub fn write_xapic(
        &mut self,
        offset: u64,
        width: u64,
        value: u32,
        now: u64,
    ) -> Result<Option<Ipi>, Refused> {
        if !self.xapic() || offset >= XAPIC_SIZE || width != 4 || offset & 0xf != 0 {
            return Err(Refused);
        }
        let r = (offset >> 4) as u32;
        match r {
            reg::LDR => self.ldr_xapic = value & 0xff00_0000,
            reg::DFR => self.dfr = value | 0x0fff_ffff,
            reg::ICR_HIGH => self.icr = u64::from(value >> 24) << 32 | (self.icr & 0xffff_ffff),
            reg::ICR => return Ok(self.send((self.icr & !0xffff_ffff) | u64::from(value))),
            reg::EOI => self.eoi(),
            reg::SELF_IPI => {}
            _ => return Ok(self.write(r, u64::from(value), now).unwrap_or(None)),
        }
        Ok(None)
    }

    /// IA32_APIC_BASE.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// A WRMSR to IA32_APIC_BASE: the guest may switch the APIC from
    /// xAPIC to x2APIC mode and disable it; it may not move it, change the
    /// BSP flag, or go back from x2APIC to xAPIC without disabling first
    /// (the SDM's invalid transitions, #GP). Disabling resets the APIC.
    pub fn write_base(&mut self, value: u64) -> Result<(), Refused> {
        let fixed = XAPIC_BASE | BASE_BSP;
        if (value ^ self.base) & fixed != 0 || value & !(fixed | BASE_EN | BASE_EXTD) != 0 {
            return Err(Refused);
        }
        let to = value & (BASE_EN | BASE_EXTD);
        let from = self.base & (BASE_EN | BASE_EXTD);
        let ok = match (from, to) {
            (a, b) if a == b => true,
            (_, BASE_EXTD) => false, // x2APIC without enable
            (f, BASE_EN) if f == BASE_EN | BASE_EXTD => false,
            (0, x) if x == BASE_EN | BASE_EXTD => false,
            _ => true,
        };
        if !ok {
            return Err(Refused);
        }
        if to & BASE_EN == 0 {
            *self = Self::new(self.id);
        }
        self.base = (self.base & fixed) | to;
        Ok(())
    }

    /// IA32_TSC_DEADLINE (0 unless the timer is in TSC-deadline mode).
    pub fn tsc_deadline(&self) -> u64 {
        self.tsc_deadline
    }

    /// A WRMSR to IA32_TSC_DEADLINE: arms the timer (0 disarms) in
    /// TSC-deadline mode, ignored in the other modes.
    pub fn write_tsc_deadline(&mut self, value: u64) {
        if self.timer_mode() == TimerMode::TscDeadline {
            self.tsc_deadline = value;
            self.fire_at = (value != 0).then_some(value);
        }
    }
}

/// 32-bit word `i` of a 256-bit register.
fn word(bits: &[u64; 4], i: u32) -> u32 {
    let w = bits[(i / 2) as usize & 3];
    (w >> (32 * (i % 2))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const LVT_PERIODIC: u64 = 1 << 17;
    const LVT_DEADLINE: u64 = 2 << 17;

    fn enabled() -> Lapic {
        let mut l = Lapic::new(0);
        l.write_base(XAPIC_BASE | BASE_BSP | BASE_EN | BASE_EXTD)
            .unwrap();
        l.write(reg::SVR, 0x1ff, 0).unwrap();
        l
    }

    #[test]
    fn divisors_follow_the_sdm_encoding() {
        assert_eq!(divisor(0b0000), 2);
        assert_eq!(divisor(0b0011), 16);
        assert_eq!(divisor(0b1000), 32);
        assert_eq!(divisor(0b1010), 128);
        assert_eq!(divisor(0b1011), 1);
    }

    #[test]
    fn periodic_timer_fires_and_rearms_and_counts_down() {
        let mut l = enabled();
        l.write(reg::DIVIDE, 0xb, 0).unwrap();
        l.write(reg::LVT_TIMER, LVT_PERIODIC | 0x40, 0).unwrap();
        l.write(reg::INITIAL_COUNT, 1000, 100).unwrap();
        assert_eq!(l.next_fire(), Some(1100));
        assert_eq!(l.read(reg::CURRENT_COUNT, 600), Ok(500));
        l.poll(1099);
        assert_eq!(l.pending(), None);
        l.poll(1100);
        assert_eq!(l.pending(), Some(0x40));
        assert_eq!(l.next_fire(), Some(2100));
        // Far behind: the missed periods coalesce.
        l.poll(10_000);
        assert_eq!(l.next_fire(), Some(11_000));
        assert_eq!(l.read(reg::IRR0 + 2, 0), Ok(1));
    }

    #[test]
    fn one_shot_and_masked_timers() {
        let mut l = enabled();
        l.write(reg::DIVIDE, 0, 0).unwrap(); // divide by 2
        l.write(reg::LVT_TIMER, 0x30, 0).unwrap();
        l.write(reg::INITIAL_COUNT, 50, 0).unwrap();
        assert_eq!(l.next_fire(), Some(100));
        l.poll(100);
        assert_eq!(l.pending(), Some(0x30));
        assert_eq!(l.next_fire(), None);
        assert_eq!(l.read(reg::CURRENT_COUNT, 150), Ok(0));
        // Masked: it runs out but raises nothing.
        let mut m = enabled();
        m.write(reg::LVT_TIMER, u64::from(LVT_MASKED) | 0x30, 0)
            .unwrap();
        m.write(reg::INITIAL_COUNT, 10, 0).unwrap();
        m.poll(1000);
        assert_eq!(m.pending(), None);
        assert!(!m.busy());
    }

    #[test]
    fn tsc_deadline_mode() {
        let mut l = enabled();
        l.write_tsc_deadline(500); // one-shot mode: ignored
        assert_eq!(l.next_fire(), None);
        l.write(reg::LVT_TIMER, LVT_DEADLINE | 0x50, 0).unwrap();
        l.write_tsc_deadline(500);
        assert_eq!(l.tsc_deadline(), 500);
        l.poll(499);
        assert_eq!(l.pending(), None);
        l.poll(500);
        assert_eq!(l.pending(), Some(0x50));
        assert_eq!(l.tsc_deadline(), 0, "the MSR clears when it fires");
        // Changing the mode disarms.
        l.write_tsc_deadline(900);
        l.write(reg::LVT_TIMER, 0x50, 0).unwrap();
        assert_eq!(l.next_fire(), None);
    }

    #[test]
    fn priorities_in_service_and_eoi() {
        let mut l = enabled();
        l.raise(0x41);
        l.raise(0x92);
        assert_eq!(l.pending(), Some(0x92));
        l.accept(0x92);
        assert_eq!(l.ppr(), 0x90);
        // 0x41 is below the in-service class: it waits.
        assert_eq!(l.pending(), None);
        l.raise(0xa0);
        assert_eq!(l.pending(), Some(0xa0), "a higher class nests");
        l.write(reg::EOI, 0, 0).unwrap();
        assert_eq!(l.ppr(), 0);
        assert_eq!(l.pending(), Some(0xa0));
        l.accept(0xa0);
        l.eoi();
        // The task priority holds back a class.
        l.write(reg::TPR, 0x50, 0).unwrap();
        assert_eq!(l.pending(), None);
        l.write(reg::TPR, 0x30, 0).unwrap();
        assert_eq!(l.pending(), Some(0x41));
        // Illegal vectors set the error register instead.
        l.raise(3);
        assert_eq!(l.read(reg::ESR, 0), Ok(1 << 6));
    }

    #[test]
    fn software_disabled_apic_masks_and_raises_nothing() {
        let mut l = Lapic::new(0);
        l.write(reg::LVT_TIMER, 0x40, 0).unwrap();
        assert_eq!(l.read(reg::LVT_TIMER, 0), Ok(u64::from(LVT_MASKED) | 0x40));
        l.write(reg::INITIAL_COUNT, 1, 0).unwrap();
        l.poll(100);
        assert_eq!(l.pending(), None);
    }

    #[test]
    fn registers_ids_and_refusals() {
        let mut l = Lapic::new(17);
        assert_eq!(l.read(reg::ID, 0), Ok(17));
        assert_eq!(l.read(reg::LDR, 0), Ok(1 << 16 | 1 << 1));
        assert_eq!(l.read(reg::VERSION, 0), Ok(0x6_0014));
        assert_eq!(l.write(reg::ID, 3, 0), Err(Refused), "read-only");
        assert_eq!(l.write(reg::EOI, 1, 0), Err(Refused), "EOI must be 0");
        assert_eq!(l.read(0x31, 0), Err(Refused), "no ICR high in x2APIC");
        assert_eq!(l.read(reg::EOI, 0), Err(Refused), "write-only");
        assert_eq!(l.write(reg::TPR, 1 << 32, 0), Err(Refused));
    }

    #[test]
    fn icr_self_and_other_targets() {
        let mut l = enabled();
        assert_eq!(l.write(reg::SELF_IPI, 0x61, 0), Ok(None));
        assert_eq!(l.pending(), Some(0x61));
        assert_eq!(l.write(reg::ICR, 0x62, 0), Ok(None), "fixed, to itself");
        assert_eq!(
            l.write(reg::ICR, 1 << 32 | 0x63, 0),
            Ok(Some(Ipi::Fixed {
                dest: 1,
                vector: 0x63
            }))
        );
        assert_eq!(
            l.write(reg::ICR, 2 << 32 | 5 << 8 | 1 << 14, 0),
            Ok(Some(Ipi::Init { dest: 2 }))
        );
        assert_eq!(
            l.write(reg::ICR, 2 << 32 | 5 << 8 | 1 << 15, 0),
            Ok(None),
            "INIT level de-assert"
        );
        assert_eq!(
            l.write(reg::ICR, 2 << 32 | 6 << 8 | 0x08, 0),
            Ok(Some(Ipi::Startup { dest: 2, vector: 8 }))
        );
        assert_eq!(
            l.write(reg::ICR, 3 << 18 | 0x70, 0),
            Ok(Some(Ipi::AllButSelf { vector: 0x70 }))
        );
    }

    #[test]
    fn xapic_page_registers_and_widths() {
        let mut l = Lapic::new(2);
        assert_eq!(l.read_xapic(0x20, 4, 0), Ok(2 << 24), "ID in bits 31:24");
        assert_eq!(l.read_xapic(0x30, 4, 0), Ok(0x6_0014));
        assert_eq!(l.read_xapic(0x30, 1, 0), Ok(0x14));
        assert_eq!(l.read_xapic(0x32, 2, 0), Ok(0x6));
        assert_eq!(
            l.read_xapic(0x33, 2, 0),
            Err(Refused),
            "crosses the register"
        );
        assert_eq!(l.read_xapic(0x30, 8, 0), Err(Refused));
        assert_eq!(l.read_xapic(0x34, 4, 0), Err(Refused), "past the 32 bits");
        assert_eq!(l.read_xapic(0x40, 4, 0), Ok(0), "reserved reads 0");
        assert_eq!(l.read_xapic(0x1000, 4, 0), Err(Refused));
        // Stores: whole registers only; read-only ones ignore them.
        assert_eq!(l.write_xapic(0x80, 4, 0xf0, 0), Ok(None));
        assert_eq!(l.read_xapic(0x80, 4, 0), Ok(0xf0));
        assert_eq!(l.write_xapic(0x80, 1, 0x10, 0), Err(Refused));
        assert_eq!(l.write_xapic(0x84, 4, 0x10, 0), Err(Refused));
        assert_eq!(l.write_xapic(0x30, 4, 0, 0), Ok(None));
        assert_eq!(l.read_xapic(0x30, 4, 0), Ok(0x6_0014));
        // The timer through the page, and EOI with any value.
        l.write_xapic(0xf0, 4, 0x1ff, 0).unwrap();
        l.write_xapic(0x3e0, 4, 0xb, 0).unwrap();
        l.write_xapic(0x320, 4, 0x40, 0).unwrap();
        l.write_xapic(0x380, 4, 100, 0).unwrap();
        assert_eq!(l.read_xapic(0x390, 4, 40), Ok(60));
        l.write_xapic(0x80, 4, 0, 0).unwrap();
        l.poll(100);
        assert_eq!(l.pending(), Some(0x40));
        l.accept(0x40);
        l.write_xapic(0xb0, 4, 0x1234, 0).unwrap();
        assert_eq!(l.ppr(), 0);
        // ICR: high half first, then the low half sends.
        l.write_xapic(0x310, 4, 5 << 24, 0).unwrap();
        assert_eq!(
            l.write_xapic(0x300, 4, 0x45, 0),
            Ok(Some(Ipi::Fixed {
                dest: 5,
                vector: 0x45
            }))
        );
        assert_eq!(l.read_xapic(0x310, 4, 0), Ok(5 << 24));
        // Gone in x2APIC mode.
        l.write_base(XAPIC_BASE | BASE_EN | BASE_EXTD).unwrap();
        assert_eq!(l.read_xapic(0x30, 4, 0), Err(Refused));
        assert_eq!(l.write_xapic(0x80, 4, 0, 0), Err(Refused));
    }

    #[test]
    fn level_interrupts_report_their_eoi() {
        let mut a = enabled();
        a.raise_level(0x50);
        a.raise(0x60);
        assert_eq!(a.read(reg::TMR0 + 2, 0), Ok(1 << 16), "TMR bit of 0x50");
        a.accept(0x60);
        a.eoi();
        assert_eq!(a.take_level_eoi(), None, "0x60 is edge");
        a.accept(0x50);
        a.eoi();
        assert_eq!(a.take_level_eoi(), Some(0x50));
        assert_eq!(a.take_level_eoi(), None, "reported once");
        assert_eq!(a.read(reg::TMR0 + 2, 0), Ok(0));
    }

    #[test]
    fn apic_base_transitions() {
        let mut l = Lapic::new(0);
        let en = XAPIC_BASE | BASE_BSP | BASE_EN;
        assert_eq!(l.base(), en);
        assert!(!l.x2apic());
        assert_eq!(l.write_base(en | BASE_EXTD), Ok(()));
        assert!(l.x2apic());
        assert_eq!(l.write_base(en), Err(Refused), "x2APIC back to xAPIC");
        assert_eq!(
            l.write_base(0xfec0_0000 | BASE_BSP | BASE_EN | BASE_EXTD),
            Err(Refused)
        );
        assert_eq!(l.write_base(en | BASE_EXTD), Ok(()), "no change");
        assert_eq!(l.write_base((en | BASE_EXTD) & !BASE_BSP), Err(Refused));
        l.raise(0x40);
        assert_eq!(l.write_base(XAPIC_BASE | BASE_BSP), Ok(()), "disable");
        assert_eq!(l.pending(), None, "disabling resets the APIC");
        assert_eq!(
            l.write_base(XAPIC_BASE | BASE_BSP | BASE_EXTD),
            Err(Refused)
        );
        assert_eq!(l.write_base(en), Ok(()));
    }
}
