//! A plugin's two exports, `on-load` and `on-upgrade`: found and type-checked
//! once per loaded component, then taken from every fresh instance without
//! checking again.
//!
//! Why: the generated bindings type-check every export on every instantiation,
//! and a fresh instance serves each upgrade; the check (the `peer`, the
//! request head, the `outcome` variant, walked type by type) was a measurable
//! part of the per-upgrade plugin overhead. Every instance of one
//! [`InstancePre`] has the same export types, so the check at load covers them
//! all, and a component whose exports have the wrong types is refused at load.
//!
//! `unsafe_code` is allowed here, and only here, for
//! [`TypedFunc::new_unchecked`]; its safety argument is at the call.
#![allow(unsafe_code)]

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre, TypedFunc};
use wasmtime::Store;

use super::bindings::{Outcome, Peer, RequestHead};
use super::state::CallState;

/// `on-load`'s signature.
pub(super) type OnLoad = TypedFunc<(), (Result<(), String>,)>;
/// `on-upgrade`'s signature.
pub(super) type OnUpgrade<'a> = TypedFunc<(&'a Peer, &'a RequestHead), (Outcome,)>;

/// The export indices of one loaded component, whose types were checked.
#[derive(Clone)]
pub(crate) struct Exports {
    on_load: ComponentExportIndex,
    on_upgrade: ComponentExportIndex,
}

impl Exports {
    /// Finds both exports of the component `pre` instantiates and checks
    /// their types against the signatures above (as the generated bindings'
    /// own check does).
    pub(crate) fn new(pre: &InstancePre<CallState>) -> Result<Exports, String> {
        let component = pre.component();
        let types = pre.instance_type();
        let find = |name: &str| {
            let (item, index) = component
                .get_export(None, name)
                .ok_or_else(|| format!("the component does not export `{name}`"))?;
            match item {
                ComponentItem::ComponentFunc(func) => Ok((func, index)),
                _ => Err(format!("the export `{name}` is not a function")),
            }
        };
        let wrong = |name: &str, e: wasmtime::Error| {
            format!("the export `{name}` has the wrong type: {e:#}")
        };
        let (func, on_load) = find("on-load")?;
        func.typecheck::<(), (Result<(), String>,)>(&types)
            .map_err(|e| wrong("on-load", e))?;
        let (func, on_upgrade) = find("on-upgrade")?;
        func.typecheck::<(&Peer, &RequestHead), (Outcome,)>(&types)
            .map_err(|e| wrong("on-upgrade", e))?;
        Ok(Exports {
            on_load,
            on_upgrade,
        })
    }

    /// `on-load` of `instance`.
    pub(super) fn on_load(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> wasmtime::Result<OnLoad> {
        let func = instance
            .get_func(&mut *store, self.on_load)
            .ok_or_else(|| wasmtime::format_err!("no `on-load` export"))?;
        // SAFETY: `Exports::new` checked this export's type against exactly
        // this signature, for the `InstancePre` every instance of this plugin
        // comes from (the same component, so the same export types).
        Ok(unsafe { OnLoad::new_unchecked(func) })
    }

    /// `on-upgrade` of `instance`.
    pub(super) fn on_upgrade<'a>(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> wasmtime::Result<OnUpgrade<'a>> {
        let func = instance
            .get_func(&mut *store, self.on_upgrade)
            .ok_or_else(|| wasmtime::format_err!("no `on-upgrade` export"))?;
        // SAFETY: as in `on_load`: checked at load, for this component, with this signature.
        Ok(unsafe { OnUpgrade::new_unchecked(func) })
    }
}
