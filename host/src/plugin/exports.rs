//! A plugin's two exports, `on-load` and `on-upgrade`: found by index once per
//! loaded component, type-checked on the first instance, and taken from every
//! later instance without checking again.
//!
//! Why: the generated bindings type-check every export on every instantiation,
//! and a fresh instance serves each upgrade; the check (the `peer`, the
//! request head, the `outcome` variant, walked type by type) was a measurable
//! part of the per-upgrade plugin overhead. Every instance of one
//! [`InstancePre`] has the same export types, so one check covers them all.
//!
//! `unsafe_code` is allowed here, and only here, for
//! [`TypedFunc::new_unchecked`]; its safety argument is at the call.
#![allow(unsafe_code)]

use std::sync::{Arc, OnceLock};
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre, TypedFunc};
use wasmtime::Store;

use super::bindings::{Outcome, Peer, RequestHead};
use super::state::CallState;

/// `on-load`'s signature.
pub(super) type OnLoad = TypedFunc<(), (Result<(), String>,)>;
/// `on-upgrade`'s signature.
pub(super) type OnUpgrade<'a> = TypedFunc<(&'a Peer, &'a RequestHead), (Outcome,)>;

/// The export indices of one loaded component, and whether its types were checked.
#[derive(Clone)]
pub(crate) struct Exports {
    on_load: ComponentExportIndex,
    on_upgrade: ComponentExportIndex,
    /// Set once an instance of this component passed the type check.
    checked: Arc<OnceLock<()>>,
}

impl Exports {
    /// Finds both exports of the component `pre` instantiates.
    pub(crate) fn new(pre: &InstancePre<CallState>) -> Result<Exports, String> {
        let component = pre.component();
        let index = |name: &str| {
            component
                .get_export_index(None, name)
                .ok_or_else(|| format!("the component does not export `{name}`"))
        };
        Ok(Exports {
            on_load: index("on-load")?,
            on_upgrade: index("on-upgrade")?,
            checked: Arc::default(),
        })
    }

    /// `on-load` of `instance`.
    pub(super) fn on_load(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> wasmtime::Result<OnLoad> {
        self.check(store, instance)?;
        let func = instance
            .get_func(&mut *store, self.on_load)
            .ok_or_else(|| wasmtime::format_err!("no `on-load` export"))?;
        // SAFETY: `check` passed for an instance of the same component (same
        // `InstancePre`, so the same export types), with exactly this signature.
        Ok(unsafe { OnLoad::new_unchecked(func) })
    }

    /// `on-upgrade` of `instance`.
    pub(super) fn on_upgrade<'a>(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> wasmtime::Result<OnUpgrade<'a>> {
        self.check(store, instance)?;
        let func = instance
            .get_func(&mut *store, self.on_upgrade)
            .ok_or_else(|| wasmtime::format_err!("no `on-upgrade` export"))?;
        // SAFETY: as in `on_load`: checked once for this component, with this signature.
        Ok(unsafe { OnUpgrade::new_unchecked(func) })
    }

    /// Type-checks both exports on the component's first instance.
    fn check(&self, store: &mut Store<CallState>, instance: &Instance) -> wasmtime::Result<()> {
        if self.checked.get().is_some() {
            return Ok(());
        }
        instance.get_typed_func::<(), (Result<(), String>,)>(&mut *store, self.on_load)?;
        instance
            .get_typed_func::<(&Peer, &RequestHead), (Outcome,)>(&mut *store, self.on_upgrade)?;
        let _ = self.checked.set(());
        Ok(())
    }
}
