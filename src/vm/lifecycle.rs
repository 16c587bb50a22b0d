//! Carrying out the power-state machine's decisions ([`super::power`]):
//! PSCI CPU_ON, stop and reset requests (which kick the VM's other cores),
//! parking a vCPU, finishing a stop or reset on the last core, and the end
//! of the run with its per-VM summary; the operator's stop and restart
//! (the console monitor). Also the rate-limited log of the lines a guest
//! can cause.

use super::create::{all, Vcpu, Vm, VMS_ALIVE};
use super::log::Admit;
use super::power::{Ending, Finish, Power, PowerError, VmState, Wake};
use crate::arch;
use crate::exit::ExitKind;
use core::sync::atomic::Ordering;

/// What a guest really got for an exit nobody handled, or for a fault it
/// could not take: named in its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// A synchronous data abort was injected.
    DataAbort,
    /// A synchronous instruction abort was injected.
    InstructionAbort,
    /// An undefined-instruction exception was injected.
    Undefined,
    /// A general-protection fault was injected (x86).
    GeneralProtection,
    /// The VM was stopped.
    Stopped,
    /// The VM was reset.
    Restarted,
}

impl Given {
    fn text(self) -> &'static str {
        match self {
            Given::DataAbort => "data abort injected",
            Given::InstructionAbort => "instruction abort injected",
            Given::Undefined => "undefined instruction injected",
            Given::GeneralProtection => "#GP injected",
            Given::Stopped => "stopping VM",
            Given::Restarted => "restarting VM",
        }
    }
}

/// The kinds of guest-caused lines, each with its own rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogClass {
    /// Unhandled exits and the exceptions injected for them (warnings).
    Exit = 0,
    /// Policy stops and restarts, `reset #N` lines.
    Lifecycle = 1,
}

impl Vm {
    /// PSCI CPU_ON: start vCPU `target` at `entry` with `arg`.
    pub fn cpu_on(&self, target: usize, entry: u64, arg: u64) -> Result<(), PowerError> {
        self.power.power(target)?;
        if !self
            .config
            .memory_regions
            .iter()
            .any(|r| entry.wrapping_sub(r.gpa) < r.size)
        {
            return Err(PowerError::InvalidAddress);
        }
        self.power.cpu_on(target, entry, arg)?;
        arch::kick_cpu(self.vcpus[target].phys_cpu);
        Ok(())
    }

    /// PSCI AFFINITY_INFO for vCPU `target`.
    pub fn vcpu_power(&self, target: usize) -> Result<Power, PowerError> {
        self.power.power(target)
    }

    /// Starts powering the VM off (`Ending::PoweredOff`) or stopping it
    /// (`Ending::Stopped`); the calling vCPU must then [`park`]. Callable
    /// from any core.
    pub fn shut_down(&self, ending: Ending) {
        if self.power.request_stop(ending) {
            self.kick_all();
        }
    }

    /// Starts a reset; the calling vCPU must then [`park`]. The last vCPU
    /// to go off puts the VM back to its initial state and restarts vCPU 0.
    pub fn reset(&self) {
        if self.power.request_reset() {
            self.kick_all();
        }
    }

    /// The operator stops this VM (the monitor's `s`), from any core, at
    /// any point of its vCPUs. Every core of the VM is kicked, this one too:
    /// if it runs one of the VM's vCPUs it parks on its way back to the
    /// guest. Refused (with the VM's state) unless the VM runs.
    pub fn operator_stop(&self) -> Result<(), VmState> {
        if !self.power.request_stop(Ending::Stopped) {
            return Err(self.power.state());
        }
        self.kick_every_core();
        Ok(())
    }

    /// The operator restarts this VM (the monitor's `r`): a reset if it
    /// runs; if it is off, a fresh start the reset way (images reloaded,
    /// vCPU 0 at its entry), the VM counted alive again. Refused (with
    /// the VM's state) while a stop or reset is under way, and once the
    /// run has ended.
    pub fn operator_restart(&self) -> Result<(), VmState> {
        if self.power.request_reset() {
            self.kick_every_core();
            return Ok(());
        }
        if !self.power.request_start() {
            return Err(self.power.state());
        }
        // Zero: the last VM went off and the run is ending; nothing may
        // start any more (the machine is being switched off).
        if VMS_ALIVE
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > 0).then_some(n + 1)
            })
            .is_err()
        {
            return Err(VmState::Off);
        }
        arch::kick_cpu(self.vcpus[0].phys_cpu);
        Ok(())
    }

    fn kick_every_core(&self) {
        for v in &self.vcpus {
            arch::kick_cpu(v.phys_cpu);
        }
    }

    /// The VM's counters, as ` name=value` pairs: exits by kind, summed
    /// over its vCPUs, and the lines it caused, printed and suppressed
    /// (the monitor's list and the end-of-run summary).
    pub fn counters(&self) -> heapless::String<320> {
        let mut line = heapless::String::new();
        for kind in ExitKind::ALL {
            let n: u64 = self
                .vcpus
                .iter()
                .map(|v| v.stats[kind as usize].load(Ordering::Relaxed))
                .sum();
            let _ = core::fmt::write(&mut line, format_args!(" {}={}", kind.name(), n));
        }
        let (logged, suppressed) = self.log.iter().fold((0, 0), |(l, s), b| {
            let b = b.lock();
            (l + b.logged, s + b.suppressed)
        });
        let _ = core::fmt::write(
            &mut line,
            format_args!(" log_lines={} log_suppressed={}", logged, suppressed),
        );
        line
    }

    fn kick_all(&self) {
        let me = arch::this_cpu();
        for v in self.vcpus.iter().filter(|v| v.phys_cpu != me) {
            arch::kick_cpu(v.phys_cpu);
        }
    }

    /// Logs a line the guest caused, within the VM's rate for its class
    /// (see [`super::log`]); the first line after a suppressed stretch says
    /// how many lines went missing. Exit lines are warnings, lifecycle
    /// lines plain events.
    pub fn log_guest_caused(&self, class: LogClass, line: core::fmt::Arguments) {
        self.limited(class, class == LogClass::Exit, line);
    }

    fn limited(&self, class: LogClass, warn: bool, line: core::fmt::Arguments) {
        let admit = self.log[class as usize]
            .lock()
            .admit(arch::counter_now(), arch::counter_frequency());
        let name = self.config.name;
        if let Admit::Log { .. } = admit {
            // The VM's own output from before the event goes out first.
            crate::console::settle();
        }
        match admit {
            Admit::Log { dropped } if dropped > 0 => {
                log::warn!("vm {}: {} earlier lines suppressed", name, dropped)
            }
            _ => {}
        }
        match admit {
            Admit::Log { .. } if warn => log::warn!("vm {}: {}", name, line),
            Admit::Log { .. } => crate::println!("vm {}: {}", name, line),
            Admit::Suppress => {}
        }
    }

    /// Logs (as a warning) an exit nobody handled, or a fault the guest
    /// could not take, with the outcome the guest really got. Policy
    /// outcomes go on the lifecycle rate, so an exit flood cannot hide
    /// them.
    pub fn report(&self, what: core::fmt::Arguments, outcome: Given) {
        let class = match outcome {
            Given::Stopped | Given::Restarted => LogClass::Lifecycle,
            _ => LogClass::Exit,
        };
        self.limited(class, true, format_args!("{}: {}", what, outcome.text()));
    }

    /// Carries out a finish the power-state machine gave this core.
    fn finish(&self, finish: Finish) {
        if let Some(u) = self.uart {
            u.flush();
        }
        match finish {
            Finish::Reset => self.finish_reset(),
            Finish::Off(ending) => self.finish_off(ending),
        }
    }

    fn finish_reset(&self) {
        let n = self.resets.fetch_add(1, Ordering::Relaxed) + 1;
        // No vCPU of the VM runs: put back what it could have changed.
        crate::ivc::depart(self.config.id);
        self.vgic.reset();
        self.mmio.reset_all();
        arch::flush_guest_tlb();
        if self.load_images().is_err() {
            self.finish_off(Ending::Stopped);
            return;
        }
        if n == 1 {
            let (_, free) = crate::mm::heap::usage();
            self.heap_after_first_reset.store(free, Ordering::Relaxed);
        }
        self.log_guest_caused(LogClass::Lifecycle, format_args!("reset #{}", n));
        self.cntvoff.store(arch::counter_now(), Ordering::Release);
        self.power.restart();
        let v0 = self.vcpus[0].phys_cpu;
        if v0 != arch::this_cpu() {
            arch::kick_cpu(v0);
        }
    }

    fn finish_off(&self, ending: Ending) {
        self.power.off(ending);
        crate::ivc::depart(self.config.id);
        let how = if ending == Ending::PoweredOff {
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

/// Takes this core's vCPU off and waits until it is started again (CPU_ON,
/// VM reset); then enters the guest. Never returns. Every parked vCPU and
/// every halted idle core waits in WFI, so parked cores execute nothing.
pub fn park(vm: &'static Vm, v: &'static Vcpu, stack_top: u64) -> ! {
    if vm.power.power(v.id) == Ok(Power::On) {
        if let Some(finish) = vm.power.vcpu_off(v.id) {
            vm.finish(finish);
        }
    }
    loop {
        match vm.power.wake(v.id) {
            Wake::Enter { entry, arg } => {
                v.progress.clear();
                let cntvoff = vm.cntvoff.load(Ordering::Acquire);
                arch::enter_vcpu(stack_top, entry, arg, cntvoff);
            }
            Wake::Finish(finish) => vm.finish(finish),
            Wake::Wait => arch::wait_for_kick(),
        }
    }
}

fn end_of_run() -> ! {
    let mut clean = true;
    for vm in all() {
        let mut line = vm.counters();
        if vm.resets() > 0 {
            let free = vm.heap_after_first_reset.load(Ordering::Relaxed);
            let _ = core::fmt::write(&mut line, format_args!(" heap_free_after_reset_1={}", free));
        }
        let ending = vm.power.ending();
        clean &= ending == Ending::PoweredOff;
        let how = if ending == Ending::PoweredOff {
            "powered-off"
        } else {
            "stopped"
        };
        crate::println!(
            "summary vm {} ({}, resets={}):{}",
            vm.config.name,
            how,
            vm.resets(),
            line
        );
    }
    let (_, free) = crate::mm::heap::usage();
    crate::println!("heap free at the end: {}", free);
    if clean {
        crate::println!("all VMs powered off; system off");
    } else {
        crate::println!("all VMs ended, not all by powering off; exiting with failure");
    }
    arch::system_off(clean)
}
