//! Stable allocation of class IDs, VRF IDs and VNIs across compiles.
//!
//! The previous allocation is an input: an object keeps its number while it exists
//! (and, for a class, while it stays in the same VRF and range); a number is handed
//! out again only once its owner is gone. Exhaustion is an error at admission time.

use crate::rules::ClassId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use weft_model::{EpgPath, ObjectPath};

/// Largest VXLAN network identifier / VRF identifier (24 bits).
const MAX_24BIT: u32 = 0x00FF_FFFF;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("no free {range} class ID left for EPG {epg}")]
    ClassesExhausted { range: &'static str, epg: EpgPath },
    #[error("no free 24-bit identifier left for {object}")]
    IdsExhausted { object: ObjectPath },
}

/// Every number handed out so far. Persist it beside the model and pass it back in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// EPG → class. Local classes are unique per VRF; global ones everywhere.
    pub classes: BTreeMap<EpgPath, ClassId>,
    pub vrf_ids: BTreeMap<ObjectPath, u32>,
    pub vnis: BTreeMap<ObjectPath, u32>,
}

/// What the compiler needs numbered for one EPG.
#[derive(Debug, Clone)]
pub(crate) struct ClassRequest {
    pub epg: EpgPath,
    pub vrf: ObjectPath,
    pub global: bool,
}

impl Allocation {
    /// Numbers the given objects, keeping every previous number that is still valid.
    pub(crate) fn assign(
        previous: &Allocation,
        epgs: &[ClassRequest],
        vrfs: &[ObjectPath],
        bridge_domains: &[ObjectPath],
    ) -> Result<Allocation, AllocationError> {
        Ok(Allocation {
            classes: assign_classes(previous, epgs)?,
            vrf_ids: assign_ids(&previous.vrf_ids, vrfs)?,
            vnis: assign_ids(&previous.vnis, bridge_domains)?,
        })
    }
}

fn range_of(global: bool) -> (RangeInclusive<u16>, &'static str) {
    if global {
        (ClassId::GLOBAL, "global")
    } else {
        (ClassId::LOCAL, "VRF-local")
    }
}

fn assign_classes(
    previous: &Allocation,
    requests: &[ClassRequest],
) -> Result<BTreeMap<EpgPath, ClassId>, AllocationError> {
    let mut global_used: BTreeSet<u16> = BTreeSet::new();
    let mut local_used: BTreeMap<&ObjectPath, BTreeSet<u16>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let mut pending = Vec::new();

    // Keep previous numbers first, so that a new EPG never steals a live one.
    for req in requests {
        let (range, _) = range_of(req.global);
        let kept = previous
            .classes
            .get(&req.epg)
            .filter(|c| range.contains(&c.0))
            .filter(|c| {
                if req.global {
                    global_used.insert(c.0)
                } else {
                    local_used.entry(&req.vrf).or_default().insert(c.0)
                }
            });
        match kept {
            Some(class) => {
                out.insert(req.epg.clone(), *class);
            }
            None => pending.push(req),
        }
    }
    for req in pending {
        let (range, name) = range_of(req.global);
        let used = if req.global {
            &mut global_used
        } else {
            local_used.entry(&req.vrf).or_default()
        };
        let free = lowest_free(range, used).ok_or_else(|| AllocationError::ClassesExhausted {
            range: name,
            epg: req.epg.clone(),
        })?;
        used.insert(free);
        out.insert(req.epg.clone(), ClassId(free));
    }
    Ok(out)
}

fn lowest_free(range: RangeInclusive<u16>, used: &BTreeSet<u16>) -> Option<u16> {
    let mut candidate = *range.start();
    for &u in used.range(range.clone()) {
        if u != candidate {
            break;
        }
        candidate = candidate.checked_add(1)?;
    }
    range.contains(&candidate).then_some(candidate)
}

fn assign_ids(
    previous: &BTreeMap<ObjectPath, u32>,
    objects: &[ObjectPath],
) -> Result<BTreeMap<ObjectPath, u32>, AllocationError> {
    let mut used = BTreeSet::new();
    let mut out = BTreeMap::new();
    for object in objects {
        if let Some(&id) = previous.get(object)
            && used.insert(id)
        {
            out.insert(object.clone(), id);
        }
    }
    let mut next = 1u32;
    for object in objects {
        if out.contains_key(object) {
            continue;
        }
        while used.contains(&next) {
            next += 1;
        }
        if next > MAX_24BIT {
            return Err(AllocationError::IdsExhausted {
                object: object.clone(),
            });
        }
        used.insert(next);
        out.insert(object.clone(), next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(epg: &str, vrf: &str, global: bool) -> ClassRequest {
        ClassRequest {
            epg: epg.parse().unwrap(),
            vrf: ObjectPath::tenant(vrf),
            global,
        }
    }

    #[test]
    fn keeps_previous_classes_and_reuses_only_after_delete() {
        let first = Allocation::assign(
            &Allocation::default(),
            &[req("t/a/x", "v", false), req("t/a/y", "v", false)],
            &[],
            &[],
        )
        .unwrap();
        let x = first.classes[&"t/a/x".parse().unwrap()];
        let y = first.classes[&"t/a/y".parse().unwrap()];
        assert_eq!((x.0, y.0), (16386, 16387));

        // A new EPG sorted before x must not take x's number.
        let second = Allocation::assign(
            &first,
            &[
                req("t/a/a", "v", false),
                req("t/a/x", "v", false),
                req("t/a/y", "v", false),
            ],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(second.classes[&"t/a/x".parse().unwrap()], x);
        assert_eq!(second.classes[&"t/a/a".parse().unwrap()].0, 16388);

        // x deleted: its number is free again.
        let third = Allocation::assign(
            &second,
            &[
                req("t/a/a", "v", false),
                req("t/a/y", "v", false),
                req("t/a/z", "v", false),
            ],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(third.classes[&"t/a/z".parse().unwrap()], x);
    }

    #[test]
    fn local_classes_repeat_across_vrfs_global_ones_do_not() {
        let a = Allocation::assign(
            &Allocation::default(),
            &[
                req("t/a/x", "v1", false),
                req("t/a/y", "v2", false),
                req("t/a/g", "v1", true),
            ],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(
            a.classes[&"t/a/x".parse().unwrap()],
            a.classes[&"t/a/y".parse().unwrap()]
        );
        assert!(a.classes[&"t/a/g".parse().unwrap()].is_global());
    }

    #[test]
    fn exhaustion_is_an_error() {
        let used: BTreeSet<u16> = ClassId::GLOBAL.collect();
        assert_eq!(lowest_free(ClassId::GLOBAL, &used), None);
        let mut previous = Allocation::default();
        let mut requests = Vec::new();
        for i in ClassId::GLOBAL {
            let epg: EpgPath = format!("t/a/e{i}").parse().unwrap();
            previous.classes.insert(epg.clone(), ClassId(i));
            requests.push(ClassRequest {
                epg,
                vrf: ObjectPath::tenant("v"),
                global: true,
            });
        }
        requests.push(req("t/a/one-too-many", "v", true));
        let err = Allocation::assign(&previous, &requests, &[], &[]).unwrap_err();
        assert!(matches!(
            err,
            AllocationError::ClassesExhausted {
                range: "global",
                ..
            }
        ));
    }
}
