//! Properties over generated positions (the order's laws, join, the text round trip) and over
//! arbitrary text (the parser never panics, and what it reads prints back to itself).

use std::cmp::Ordering;
use std::hash::{BuildHasher, RandomState};

use proptest::prelude::*;

use super::super::{Position, Repr};

const UUIDS: [&str; 3] = [
    "3E11FA47-71CA-11E1-9E33-C80AA9429562",
    "2174b383-5441-11e8-b90a-c80aa9429562",
    "00000000-0000-0000-0000-000000000001",
];
const TAGS: [&str; 3] = ["", "tag_a", "B"];

fn parsed(text: &str) -> Position {
    match text.parse() {
        Ok(position) => position,
        Err(error) => panic!("generated {text:?} does not parse: {error}"),
    }
}

/// LSNs, mostly close together, in the text forms PostgreSQL may print.
fn lsn() -> impl Strategy<Value = Position> {
    (prop_oneof![0u64..6, any::<u64>()], any::<bool>()).prop_map(|(lsn, padded)| {
        let (high, low) = (lsn >> 32, lsn & 0xFFFF_FFFF);
        parsed(&if padded {
            format!("{high:x}/{low:08x}")
        } else {
            format!("{high:X}/{low:X}")
        })
    })
}

/// Aurora PostgreSQL LSNs, mostly close together, as `aurora-pg:` and the `bigint` (sometimes
/// with the whitespace the parser ignores).
fn aurora() -> impl Strategy<Value = Position> {
    (prop_oneof![0u64..6, any::<u64>()], any::<bool>()).prop_map(|(lsn, spaced)| {
        parsed(&if spaced {
            format!(" aurora-pg: {lsn}\n")
        } else {
            format!("aurora-pg:{lsn}")
        })
    })
}

/// MariaDB positions over a few domains, servers and sequence numbers (so that many pairs
/// compare), and over any.
fn mariadb() -> impl Strategy<Value = Position> {
    let few = prop::collection::btree_map(0u32..3, (1u32..3, 0u64..4), 0..4);
    let any = prop::collection::btree_map(any::<u32>(), (any::<u32>(), any::<u64>()), 0..4);
    prop_oneof![4 => few, 1 => any].prop_map(|domains| {
        let entries: Vec<String> = domains
            .iter()
            .map(|(domain, (server, seq))| format!("{domain}-{server}-{seq}"))
            .collect();
        parsed(&entries.join(","))
    })
}

/// MySQL sets over a few sources and small intervals (so that many pairs compare), and over
/// any UUID and interval.
fn mysql() -> impl Strategy<Value = Position> {
    let few = prop::collection::vec((0usize..3, 0usize..3, 1u64..12, 0u64..4), 0..5).prop_map(
        |intervals| {
            intervals
                .into_iter()
                .map(|(uuid, tag, start, len)| {
                    (UUIDS[uuid].to_string(), TAGS[tag], start, start + len)
                })
                .collect::<Vec<_>>()
        },
    );
    let any = prop::collection::vec(
        (
            any::<u128>(),
            prop::sample::select(&TAGS[..]),
            1..=i64::MAX as u64,
            any::<u64>(),
        ),
        0..4,
    )
    .prop_map(|intervals| {
        intervals
            .into_iter()
            .map(|(uuid, tag, start, len)| {
                let h = format!("{uuid:032X}");
                let uuid = format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                );
                let end = start.saturating_add(len % 1000).min(i64::MAX as u64);
                (uuid, tag, start, end)
            })
            .collect::<Vec<_>>()
    });
    prop_oneof![4 => few, 1 => any].prop_map(|intervals| {
        let entries: Vec<String> = intervals
            .iter()
            .map(|(uuid, tag, start, end)| match *tag {
                "" => format!("{uuid}:{start}-{end}"),
                tag => format!("{uuid}:{tag}:{start}-{end}"),
            })
            .collect();
        parsed(&entries.join(",\n"))
    })
}

fn position() -> impl Strategy<Value = Position> {
    prop_oneof![lsn(), aurora(), mariadb(), mysql()]
}

/// Three positions, mostly of one engine (so that chains occur), sometimes mixed.
fn three() -> impl Strategy<Value = (Position, Position, Position)> {
    prop_oneof![
        (lsn(), lsn(), lsn()),
        (aurora(), aurora(), aurora()),
        (mariadb(), mariadb(), mariadb()),
        (mysql(), mysql(), mysql()),
        (position(), position(), position()),
    ]
}

/// Text that looks like positions of every engine, or almost.
fn positionish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fA-F/]{0,20}",
        "[0-9,\\- ]{0,30}",
        "([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(:[0-9a-z_\\-]{0,6}){0,4}[,\n ]{0,2}){0,3}",
        "[0-9a-f:,/\\-_xé \n]{0,40}",
        "(aurora-pg:| aurora-pg:|aurora:|aurora-pg)[0-9/+\\- ]{0,24}",
    ]
}

/// The laws `PartialOrd` and `PartialEq` promise, for one pair.
fn pair_laws(a: &Position, b: &Position) -> Result<(), TestCaseError> {
    let ordering = a.partial_cmp(b);
    prop_assert_eq!(ordering, b.partial_cmp(a).map(Ordering::reverse), "duality");
    prop_assert_eq!(a == b, ordering == Some(Ordering::Equal), "== agrees");
    prop_assert_eq!(a <= b, a.reached_by(b));
    prop_assert_eq!(
        a <= b,
        matches!(ordering, Some(Ordering::Less | Ordering::Equal))
    );
    prop_assert_eq!(
        a >= b,
        matches!(ordering, Some(Ordering::Greater | Ordering::Equal))
    );
    prop_assert_eq!(a < b, ordering == Some(Ordering::Less));
    prop_assert_eq!(a > b, ordering == Some(Ordering::Greater));
    if a <= b && b <= a {
        prop_assert_eq!(a, b, "antisymmetric");
    }
    Ok(())
}

/// `join` is the least upper bound among the positions given.
fn join_laws(a: &Position, b: &Position, others: &[&Position]) -> Result<(), TestCaseError> {
    let join = a.join(b);
    prop_assert_eq!(&join, &b.join(a), "commutative");
    if let Some(join) = &join {
        prop_assert!(a <= join && b <= join, "upper bound: {:?}", join);
    }
    for c in others {
        if a <= *c && b <= *c {
            match &join {
                Some(join) => prop_assert!(join <= *c, "least: {:?} vs {:?}", join, c),
                // Upper bounds but no least one: only a MariaDB domain at the same sequence
                // number from two servers (any later sequence number reaches both).
                None => prop_assert!(
                    matches!((&a.0, &b.0), (Repr::MariaDb(_), Repr::MariaDb(_))),
                    "{:?} and {:?} are both below {:?} but have no join",
                    a,
                    b,
                    c
                ),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn text_reads_back_into_the_same_position(p in position()) {
        let text = p.to_string();
        let back: Position = text.parse().map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(&back, &p);
        let hasher = RandomState::new();
        prop_assert_eq!(hasher.hash_one(&back), hasher.hash_one(&p));
        prop_assert_eq!(back.to_string(), text, "canonical");
    }

    #[test]
    fn serde_reads_back_into_the_same_position(p in position()) {
        let json = serde_json::to_string(&p).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Position = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, p);
    }

    #[test]
    fn the_order_is_a_partial_order((a, b, c) in three()) {
        prop_assert_eq!(a.partial_cmp(&a), Some(Ordering::Equal), "reflexive");
        pair_laws(&a, &b)?;
        pair_laws(&b, &c)?;
        pair_laws(&a, &c)?;
        if a <= b && b <= c {
            prop_assert!(a <= c, "transitive");
        }
        if a < b && b < c {
            prop_assert!(a < c, "transitive");
        }
    }

    #[test]
    fn joins_make_chains_and_least_upper_bounds((a, b, c) in three()) {
        join_laws(&a, &b, &[&c, &a, &b])?;
        join_laws(&a, &c, &[&b])?;
        // a <= a ⊔ b <= (a ⊔ b) ⊔ c: a chain, to check transitivity on.
        if let Some(abc) = a.join(&b).and_then(|ab| {
            ab.join(&c).map(|abc| (ab, abc))
        }) {
            let (ab, abc) = abc;
            prop_assert!(a <= ab && ab <= abc && a <= abc);
            pair_laws(&ab, &abc)?;
            if let Some(other_way) = b.join(&c).and_then(|bc| a.join(&bc)) {
                prop_assert_eq!(other_way, abc, "associative");
            }
        }
        prop_assert_eq!(a.join(&a), Some(a.clone()), "idempotent");
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        if let Ok(p) = text.parse::<Position>() {
            prop_assert_eq!(parsed(&p.to_string()), p);
        }
    }

    #[test]
    fn positionish_strings_never_panic_and_read_back(text in positionish()) {
        if let Ok(p) = text.parse::<Position>() {
            prop_assert_eq!(parsed(&p.to_string()), p);
        }
    }
}
