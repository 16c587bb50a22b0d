//! The power-state machine of one VM and its vCPUs, as pure logic: PSCI
//! CPU_ON / CPU_OFF / AFFINITY_INFO, stop (SYSTEM_OFF, policy) and reset
//! (SYSTEM_RESET, policy). It says what must happen; the caller does it
//! (kicks cores, reloads images, enters guests) through the arch interface.
//! Host tests drive every transition, concurrent ones from several threads.
//!
//! The VM moves `Running → Stopping|Resetting → Finishing → Off|Running`.
//! Exactly one core finishes (the CAS into `Finishing`: the last vCPU to go
//! off). A parked vCPU that wakes while the VM is `Finishing` waits: it
//! must not take part in, or end, a finish that is not its own.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};
use spin::Mutex;

/// Power state of a vCPU (PSCI AFFINITY_INFO values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Power {
    /// Not running; its core waits parked.
    Off = 0,
    /// CPU_ON accepted, not yet running.
    OnPending = 1,
    /// Running guest code (or handling one of its traps).
    On = 2,
}

/// Life cycle of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum VmState {
    /// vCPUs may run.
    Running = 0,
    /// Stopping: vCPUs are being taken off, then the VM is off.
    Stopping = 1,
    /// Resetting: vCPUs are being taken off, then vCPU 0 restarts.
    Resetting = 2,
    /// Off for good.
    Off = 3,
    /// Every vCPU is off; one core is finishing the stop or reset.
    Finishing = 4,
}

impl VmState {
    /// The state as the monitor shows it.
    pub fn name(self) -> &'static str {
        match self {
            VmState::Running => "running",
            VmState::Stopping => "stopping",
            VmState::Resetting => "resetting",
            VmState::Off => "off",
            VmState::Finishing => "finishing",
        }
    }
}

/// How a VM ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Ending {
    /// Still running.
    None = 0,
    /// The guest asked to power off (SYSTEM_OFF, or every vCPU called
    /// CPU_OFF).
    PoweredOff = 1,
    /// The hypervisor stopped it (a policy outcome).
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
    /// The VM is stopping or resetting: no vCPU may start.
    Denied,
}

/// What the last vCPU to go off must do (it alone, once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Put the VM back to its initial state, then [`PowerStates::restart`].
    Reset,
    /// The VM is off for good: account for it, then [`PowerStates::off`].
    Off(Ending),
}

/// What a parked vCPU does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Enter the guest at `entry` with first argument `arg`.
    Enter {
        /// Guest-physical entry point.
        entry: u64,
        /// x0 at entry.
        arg: u64,
    },
    /// Finish the VM's stop or reset (this core was the last one on).
    Finish(Finish),
    /// Nothing to do: wait for the next kick.
    Wait,
}

/// Power states of one VM and its vCPUs.
pub struct PowerStates {
    state: AtomicU8,
    ending: AtomicU8,
    vcpus: Vec<AtomicU8>,
    /// Entry point and argument of each vCPU's next start; also serialises
    /// CPU_ON calls for the same target.
    boot: Vec<Mutex<(u64, u64)>>,
    initial: (u64, u64),
}

impl PowerStates {
    /// A running VM of `vcpus` vCPUs with vCPU 0 about to start at
    /// `entry` with `arg`.
    pub fn new(vcpus: usize, entry: u64, arg: u64) -> Self {
        Self {
            state: AtomicU8::new(VmState::Running as u8),
            ending: AtomicU8::new(Ending::None as u8),
            vcpus: (0..vcpus)
                .map(|i| AtomicU8::new(if i == 0 { Power::OnPending } else { Power::Off } as u8))
                .collect(),
            boot: (0..vcpus).map(|_| Mutex::new((entry, arg))).collect(),
            initial: (entry, arg),
        }
    }

    /// Current VM state.
    pub fn state(&self) -> VmState {
        match self.state.load(Ordering::Acquire) {
            0 => VmState::Running,
            1 => VmState::Stopping,
            2 => VmState::Resetting,
            3 => VmState::Off,
            _ => VmState::Finishing,
        }
    }

    /// Whether vCPUs may run.
    #[inline(always)]
    pub fn is_running(&self) -> bool {
        self.state.load(Ordering::Acquire) == VmState::Running as u8
    }

    /// How the VM ended (`Ending::None` while it has not).
    pub fn ending(&self) -> Ending {
        match self.ending.load(Ordering::Acquire) {
            0 => Ending::None,
            1 => Ending::PoweredOff,
            _ => Ending::Stopped,
        }
    }

    /// Power state of vCPU `id` (PSCI AFFINITY_INFO).
    pub fn power(&self, id: usize) -> Result<Power, PowerError> {
        let p = self.vcpus.get(id).ok_or(PowerError::InvalidVcpu)?;
        Ok(match p.load(Ordering::Acquire) {
            0 => Power::Off,
            1 => Power::OnPending,
            _ => Power::On,
        })
    }

    fn set(&self, id: usize, p: Power) {
        if let Some(v) = self.vcpus.get(id) {
            v.store(p as u8, Ordering::Release);
        }
    }

    /// PSCI CPU_ON of vCPU `target` at `entry` with `arg` (the entry point
    /// already checked against the VM's RAM). On success the caller kicks
    /// the target's core.
    pub fn cpu_on(&self, target: usize, entry: u64, arg: u64) -> Result<(), PowerError> {
        let boot = self.boot.get(target).ok_or(PowerError::InvalidVcpu)?;
        let mut boot = boot.lock();
        if !self.is_running() {
            return Err(PowerError::Denied);
        }
        match self.power(target)? {
            Power::On => return Err(PowerError::AlreadyOn),
            Power::OnPending => return Err(PowerError::OnPending),
            Power::Off => {}
        }
        *boot = (entry, arg);
        self.set(target, Power::OnPending);
        Ok(())
    }

    /// Asks the VM to stop with `ending` (true if this call started it; a
    /// stop or reset already under way wins). The caller then kicks every
    /// other core of the VM and parks its own vCPU.
    pub fn request_stop(&self, ending: Ending) -> bool {
        let started = self
            .state
            .compare_exchange(
                VmState::Running as u8,
                VmState::Stopping as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if started {
            self.ending.store(ending as u8, Ordering::Release);
        }
        started
    }

    /// Asks the VM to reset (true if this call started it).
    pub fn request_reset(&self) -> bool {
        self.state
            .compare_exchange(
                VmState::Running as u8,
                VmState::Resetting as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Asks a VM that is off to start again (the operator's restart): it
    /// goes the reset way, reloaded and vCPU 0 started at its initial
    /// entry. True if this call started it. Every vCPU is off, so none
    /// will claim the finish by going off: the caller kicks vCPU 0's core,
    /// whose [`Self::wake`] claims it.
    pub fn request_start(&self) -> bool {
        self.state
            .compare_exchange(
                VmState::Off as u8,
                VmState::Resetting as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// vCPU `id` goes off (CPU_OFF, or parked by a stop or reset). Returns
    /// the finish this core must carry out if it was the last one on.
    pub fn vcpu_off(&self, id: usize) -> Option<Finish> {
        self.set(id, Power::Off);
        self.try_finish()
    }

    /// If every vCPU is off, claims the finish (once, whichever core gets
    /// here first). A running VM whose vCPUs are all off has powered off.
    fn try_finish(&self) -> Option<Finish> {
        if self
            .vcpus
            .iter()
            .any(|p| p.load(Ordering::Acquire) != Power::Off as u8)
        {
            return None;
        }
        let state = self.state();
        let finish = match state {
            VmState::Resetting => Finish::Reset,
            VmState::Stopping => Finish::Off(self.ending()),
            VmState::Running => Finish::Off(Ending::PoweredOff),
            VmState::Off | VmState::Finishing => return None,
        };
        self.state
            .compare_exchange(
                state as u8,
                VmState::Finishing as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .ok()?;
        if state == VmState::Running {
            self.ending
                .store(Ending::PoweredOff as u8, Ordering::Release);
        }
        Some(finish)
    }

    /// What parked vCPU `id` does when its core wakes.
    pub fn wake(&self, id: usize) -> Wake {
        if self.power(id) != Ok(Power::OnPending) {
            // A reset with every vCPU already off (a VM that was off being
            // started again) has nobody going off to claim its finish: a
            // woken core does (the claim is a CAS, so once).
            if self.state() == VmState::Resetting {
                return self.try_finish().map_or(Wake::Wait, Wake::Finish);
            }
            return Wake::Wait;
        }
        match self.state() {
            VmState::Running => {
                let Some(boot) = self.boot.get(id) else {
                    return Wake::Wait;
                };
                let (entry, arg) = *boot.lock();
                // CAS: only a pending start turns into a run.
                let ok = self.vcpus[id]
                    .compare_exchange(
                        Power::OnPending as u8,
                        Power::On as u8,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
                if ok && self.is_running() {
                    Wake::Enter { entry, arg }
                } else if ok {
                    // A stop or reset began between the two reads: this
                    // vCPU never ran, so it simply goes off again.
                    self.vcpu_off(id).map_or(Wake::Wait, Wake::Finish)
                } else {
                    Wake::Wait
                }
            }
            // A start that was pending when the stop or reset began is
            // cancelled.
            VmState::Stopping | VmState::Resetting => {
                self.vcpu_off(id).map_or(Wake::Wait, Wake::Finish)
            }
            // Someone else is finishing (and will start vCPU 0 itself), or
            // the VM is over: nothing for this core.
            VmState::Finishing | VmState::Off => Wake::Wait,
        }
    }

    /// Ends a [`Finish::Reset`]: vCPU 0 pending at the initial entry point,
    /// the VM running. The caller then kicks vCPU 0's core.
    pub fn restart(&self) {
        if let Some(b) = self.boot.first() {
            *b.lock() = self.initial;
        }
        self.ending.store(Ending::None as u8, Ordering::Release);
        self.set(0, Power::OnPending);
        self.state.store(VmState::Running as u8, Ordering::Release);
    }

    /// Ends a finish with the VM off for good, ended by `ending` (the one
    /// [`Finish::Off`] named, or `Stopped` when a reset could not
    /// complete).
    pub fn off(&self, ending: Ending) {
        self.ending.store(ending as u8, Ordering::Release);
        self.state.store(VmState::Off as u8, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    const ENTRY: u64 = 0x4000_0000;

    /// vCPU `id` wakes and enters; panics if it does not.
    fn enter(p: &PowerStates, id: usize) -> (u64, u64) {
        match p.wake(id) {
            Wake::Enter { entry, arg } => (entry, arg),
            other => panic!("vCPU {id} did not enter: {other:?}"),
        }
    }

    #[test]
    fn boot_cpu_on_affinity_and_errors() {
        let p = PowerStates::new(2, ENTRY, 7);
        assert_eq!(p.power(0), Ok(Power::OnPending));
        assert_eq!(p.wake(1), Wake::Wait, "vCPU 1 not started yet");
        assert_eq!(enter(&p, 0), (ENTRY, 7));
        assert_eq!(p.power(0), Ok(Power::On));
        assert_eq!(p.cpu_on(0, ENTRY, 0), Err(PowerError::AlreadyOn));
        assert_eq!(p.cpu_on(2, ENTRY, 0), Err(PowerError::InvalidVcpu));
        assert_eq!(p.power(9), Err(PowerError::InvalidVcpu));
        assert_eq!(p.cpu_on(1, ENTRY + 8, 3), Ok(()));
        assert_eq!(p.cpu_on(1, ENTRY, 0), Err(PowerError::OnPending));
        assert_eq!(p.power(1), Ok(Power::OnPending));
        assert_eq!(enter(&p, 1), (ENTRY + 8, 3));
        assert_eq!(
            p.wake(1),
            Wake::Wait,
            "a running vCPU's stray kick is ignored"
        );
    }

    #[test]
    fn all_vcpus_cpu_off_means_powered_off() {
        let p = PowerStates::new(2, ENTRY, 0);
        enter(&p, 0);
        p.cpu_on(1, ENTRY, 0).unwrap();
        enter(&p, 1);
        assert_eq!(p.vcpu_off(0), None, "vCPU 1 still on");
        assert_eq!(p.state(), VmState::Running);
        assert_eq!(p.vcpu_off(1), Some(Finish::Off(Ending::PoweredOff)));
        assert_eq!(p.state(), VmState::Finishing);
        p.off(Ending::PoweredOff);
        assert_eq!(p.state(), VmState::Off);
        assert_eq!(p.ending(), Ending::PoweredOff);
        assert_eq!(p.cpu_on(0, ENTRY, 0), Err(PowerError::Denied));
    }

    #[test]
    fn cpu_off_with_a_start_pending_does_not_end_the_vm() {
        let p = PowerStates::new(2, ENTRY, 0);
        enter(&p, 0);
        p.cpu_on(1, ENTRY, 0).unwrap();
        assert_eq!(p.vcpu_off(0), None, "vCPU 1 is pending");
        enter(&p, 1);
        assert_eq!(p.vcpu_off(1), Some(Finish::Off(Ending::PoweredOff)));
    }

    #[test]
    fn stop_takes_every_vcpu_off_and_the_last_finishes() {
        let p = PowerStates::new(3, ENTRY, 0);
        enter(&p, 0);
        p.cpu_on(1, ENTRY, 0).unwrap();
        enter(&p, 1);
        p.cpu_on(2, ENTRY, 0).unwrap(); // pending when the stop begins
        assert!(p.request_stop(Ending::Stopped));
        assert!(
            !p.request_stop(Ending::PoweredOff),
            "the first request wins"
        );
        assert!(!p.request_reset());
        assert_eq!(p.cpu_on(2, ENTRY, 0), Err(PowerError::Denied));
        assert_eq!(p.vcpu_off(0), None);
        assert_eq!(
            p.wake(2),
            Wake::Wait,
            "pending start cancelled, vCPU 1 still on"
        );
        assert_eq!(p.power(2), Ok(Power::Off));
        assert_eq!(p.vcpu_off(1), Some(Finish::Off(Ending::Stopped)));
        assert_eq!(p.vcpu_off(1), None, "finish claimed once");
        p.off(Ending::Stopped);
        assert_eq!(p.ending(), Ending::Stopped);
    }

    #[test]
    fn reset_restarts_vcpu0_at_the_initial_entry() {
        let p = PowerStates::new(2, ENTRY, 5);
        enter(&p, 0);
        p.cpu_on(1, ENTRY + 0x100, 1).unwrap();
        enter(&p, 1);
        assert!(p.request_reset());
        assert!(!p.is_running());
        assert_eq!(p.vcpu_off(1), None);
        assert_eq!(p.vcpu_off(0), Some(Finish::Reset));
        p.restart();
        assert_eq!(p.state(), VmState::Running);
        assert_eq!(p.power(1), Ok(Power::Off), "secondaries stay off");
        assert_eq!(enter(&p, 0), (ENTRY, 5));
    }

    /// The old race: during a reset's finish, vCPU 0 is pending before the
    /// VM is running again. A core that wakes then must wait, not mark the
    /// VM off.
    #[test]
    fn a_wake_during_finishing_waits() {
        let p = PowerStates::new(1, ENTRY, 0);
        enter(&p, 0);
        assert!(p.request_reset());
        assert_eq!(p.vcpu_off(0), Some(Finish::Reset));
        // Mid-finish, vCPU 0 made pending by hand (as restart does first).
        p.set(0, Power::OnPending);
        assert_eq!(p.wake(0), Wake::Wait);
        assert_eq!(p.state(), VmState::Finishing);
        p.restart();
        assert_eq!(enter(&p, 0), (ENTRY, 0));
    }

    #[test]
    fn a_vm_that_is_off_starts_again_through_the_reset_path() {
        for ending in [Ending::PoweredOff, Ending::Stopped] {
            let p = PowerStates::new(2, ENTRY, 9);
            enter(&p, 0);
            assert!(!p.request_start(), "a running VM cannot be started");
            if ending == Ending::Stopped {
                assert!(p.request_stop(ending));
            }
            assert_eq!(p.vcpu_off(0), Some(Finish::Off(ending)));
            assert!(!p.request_start(), "not while its stop is finished");
            p.off(ending);
            assert_eq!(p.wake(1), Wake::Wait, "off: a stray kick does nothing");
            assert!(p.request_start());
            assert!(!p.request_start(), "once");
            assert_eq!(p.cpu_on(1, ENTRY, 0), Err(PowerError::Denied));
            assert_eq!(p.wake(0), Wake::Finish(Finish::Reset));
            assert_eq!(p.wake(1), Wake::Wait, "the finish is claimed once");
            p.restart();
            assert_eq!(p.ending(), Ending::None);
            assert_eq!(enter(&p, 0), (ENTRY, 9));
            assert_eq!(p.power(1), Ok(Power::Off));
        }
    }

    /// Two cores start a VM that is off and wake its vCPUs at once:
    /// exactly one start and one finish.
    #[test]
    fn concurrent_starts_of_a_vm_that_is_off_finish_once() {
        for _ in 0..2000 {
            let p = Arc::new(PowerStates::new(2, ENTRY, 0));
            enter(&p, 0);
            p.vcpu_off(0);
            p.off(Ending::PoweredOff);
            let (starts, finishes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let threads: Vec<_> = (0..2)
                .map(|id| {
                    let (p, starts, finishes) =
                        (Arc::clone(&p), Arc::clone(&starts), Arc::clone(&finishes));
                    std::thread::spawn(move || {
                        if p.request_start() {
                            starts.fetch_add(1, Ordering::SeqCst);
                        }
                        if let Wake::Finish(Finish::Reset) = p.wake(id) {
                            finishes.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(starts.load(Ordering::SeqCst), 1);
            assert_eq!(finishes.load(Ordering::SeqCst), 1);
            assert_eq!(p.state(), VmState::Finishing);
        }
    }

    /// Two cores: one requests stops and resets, the other races CPU_ON,
    /// CPU_OFF and wakes. Exactly one finish per request, and the VM ends
    /// each round consistent (all off, finished once).
    #[test]
    fn concurrent_stop_reset_and_cpu_on_from_two_cores() {
        for round in 0..2000u64 {
            let p = Arc::new(PowerStates::new(2, ENTRY, 0));
            enter(&p, 0);
            p.cpu_on(1, ENTRY, 0).unwrap();
            let finishes = Arc::new(AtomicUsize::new(0));
            let reset = round % 2 == 0;
            let t = {
                let (p, finishes) = (Arc::clone(&p), Arc::clone(&finishes));
                std::thread::spawn(move || {
                    // vCPU 1: wakes, maybe runs, then parks when told.
                    let mut on = false;
                    loop {
                        if on {
                            if !p.is_running() {
                                if p.vcpu_off(1).is_some() {
                                    finishes.fetch_add(1, Ordering::SeqCst);
                                }
                                return;
                            }
                            std::hint::spin_loop();
                            continue;
                        }
                        match p.wake(1) {
                            Wake::Enter { .. } => {
                                on = true;
                                let _ = p.cpu_on(0, ENTRY, 0);
                            }
                            Wake::Finish(_) => {
                                finishes.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Wake::Wait if p.power(1) == Ok(Power::Off) && !p.is_running() => return,
                            Wake::Wait => std::hint::spin_loop(),
                        }
                    }
                })
            };
            if reset {
                assert!(p.request_reset());
            } else {
                assert!(p.request_stop(Ending::Stopped));
            }
            if p.vcpu_off(0).is_some() {
                finishes.fetch_add(1, Ordering::SeqCst);
            }
            t.join().unwrap();
            assert_eq!(finishes.load(Ordering::SeqCst), 1, "round {round}");
            assert_eq!(p.state(), VmState::Finishing);
            assert_eq!(p.power(0), Ok(Power::Off));
            assert_eq!(p.power(1), Ok(Power::Off));
        }
    }
}
