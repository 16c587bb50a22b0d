//! What the monitor of either console (`physical.rs` on AArch64,
//! `lines.rs` on x86) says about the VMs.

/// Whether VM `name` can still take input (it is not off for good).
pub fn vm_alive(name: &str) -> bool {
    crate::vm::all()
        .iter()
        .find(|vm| vm.config.name == name)
        .is_some_and(|vm| vm.power.state() != crate::vm::VmState::Off)
}

/// The monitor's `l`: one line per VM with its state; `target` is the VM
/// that has input.
pub fn list_vms(target: Option<&str>) {
    use crate::vm::VmState;
    for vm in crate::vm::all() {
        let state = match vm.power.state() {
            VmState::Running => "running",
            VmState::Stopping => "stopping",
            VmState::Resetting => "resetting",
            VmState::Off => "off",
            VmState::Finishing => "finishing",
        };
        crate::println!(
            "  vm {}: {}, {} vCPU(s), resets={}{}",
            vm.config.name,
            state,
            vm.vcpus.len(),
            vm.resets(),
            if target == Some(vm.config.name) {
                ", has input"
            } else {
                ""
            }
        );
    }
}
