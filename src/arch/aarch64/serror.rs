//! Classifying an SError by where it was taken and its syndrome (ESR_EL2,
//! EC 0x2f): can it be contained to the VM that was running, or may it have
//! corrupted state the other VMs or the hypervisor depend on?
//!
//! Where: on every exit from a guest, after a DSB, the vectors
//! (`vectors.rs`) unmask SError in a one-instruction window, so an SError
//! the guest's accesses raised is taken then and charged to that guest; it
//! stays unmasked while the hypervisor handles the trap, so one the
//! hypervisor's own work raises is taken at EL2 outside the window and
//! never charged to the guest about to run.

/// ISS.IDS: the syndrome is implementation defined.
const IDS: u64 = 1 << 24;
/// ISS.DFSC value of an asynchronous SError with an architected syndrome.
const DFSC_ASYNC_SERROR: u64 = 0b01_0001;
/// ISS.AET: Uncontainable.
const AET_UC: u64 = 0b000;

/// What an SError allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SErrorKind {
    /// Confined to the VM that ran: its `on_fault` policy applies.
    Containable,
    /// The error may have spread beyond the VM: the machine stops.
    Uncontainable,
}

/// Classifies the SError with syndrome `esr`. Only an architected RAS
/// syndrome that says "uncontainable" stops the machine; an SError with no
/// RAS information (implementation-defined or uncategorised syndrome, as on
/// cores without RAS) was raised while the guest ran and is charged to it.
pub fn classify(esr: u64) -> SErrorKind {
    let dfsc = esr & 0x3f;
    let aet = (esr >> 10) & 0b111;
    if esr & IDS == 0 && dfsc == DFSC_ASYNC_SERROR && aet == AET_UC {
        SErrorKind::Uncontainable
    } else {
        SErrorKind::Containable
    }
}

/// Where an SError was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SErrorOrigin {
    /// While a guest ran: its own SError vector, or the guest-exit window.
    Guest,
    /// At EL2 anywhere else (during the hypervisor's work): the
    /// hypervisor's own.
    Hypervisor,
}

/// What an SError leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SErrorOutcome {
    /// The running VM's `on_fault` policy (stop or restart it).
    VmPolicy,
    /// The machine stops with one clear line.
    StopMachine,
}

/// The outcome of an SError with syndrome `esr` taken at `origin`. A
/// guest's containable one is its VM's business; an uncontainable one, or
/// any of the hypervisor's own, leaves no state to trust.
pub fn outcome(origin: SErrorOrigin, esr: u64) -> SErrorOutcome {
    match (origin, classify(esr)) {
        (SErrorOrigin::Guest, SErrorKind::Containable) => SErrorOutcome::VmPolicy,
        _ => SErrorOutcome::StopMachine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC_SERROR: u64 = 0x2f << 26 | 1 << 25;

    #[test]
    fn ras_syndromes() {
        let ras = |aet: u64| EC_SERROR | aet << 10 | DFSC_ASYNC_SERROR;
        assert_eq!(classify(ras(0b000)), SErrorKind::Uncontainable);
        for aet in [0b001, 0b010, 0b011, 0b110] {
            assert_eq!(classify(ras(aet)), SErrorKind::Containable, "AET {aet:#b}");
        }
    }

    #[test]
    fn no_ras_information_is_charged_to_the_guest() {
        assert_eq!(classify(EC_SERROR), SErrorKind::Containable);
        assert_eq!(classify(EC_SERROR | IDS), SErrorKind::Containable);
        assert_eq!(
            classify(EC_SERROR | IDS | DFSC_ASYNC_SERROR),
            SErrorKind::Containable
        );
    }

    #[test]
    fn only_a_guests_containable_serror_is_left_to_its_vm() {
        let contained = EC_SERROR | 0b010 << 10 | DFSC_ASYNC_SERROR;
        let uc = EC_SERROR | DFSC_ASYNC_SERROR;
        let plain = EC_SERROR;
        assert_eq!(
            outcome(SErrorOrigin::Guest, contained),
            SErrorOutcome::VmPolicy
        );
        assert_eq!(outcome(SErrorOrigin::Guest, plain), SErrorOutcome::VmPolicy);
        assert_eq!(outcome(SErrorOrigin::Guest, uc), SErrorOutcome::StopMachine);
        for esr in [contained, uc, plain] {
            assert_eq!(
                outcome(SErrorOrigin::Hypervisor, esr),
                SErrorOutcome::StopMachine,
                "the hypervisor's own SError {esr:#x} is never a VM's"
            );
        }
    }
}
