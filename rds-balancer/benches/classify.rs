//! The statement classifier against a full SQL parser (`sqlparser`), on SQL that SeaORM 2.0
//! generates for PostgreSQL and MySQL.
//!
//! `cargo bench -p rds-balancer --bench classify -- --quick` runs the criterion groups
//! (`classify/<statement>`, `sqlparser/<statement>`) and then prints a plain summary: the
//! median nanoseconds per statement of each, and how many times slower the parser is.
//!
//! The classifier allocates nothing by construction (no `Vec`, `String`, `Box` or `format!` on
//! its path; the default classifier holds an empty `Vec`). A counting global allocator would
//! need `unsafe impl GlobalAlloc`, which the workspace's `unsafe_code = "forbid"` rules out.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use rds_balancer::{Target, classify};
use sea_orm::DatabaseBackend;
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;

const PG: DatabaseBackend = DatabaseBackend::Postgres;
const MY: DatabaseBackend = DatabaseBackend::MySql;

/// Typical statements: (name, backend, SQL, where it goes).
const STATEMENTS: &[(&str, DatabaseBackend, &str, Target)] = &[
    (
        "pg_find_by_id",
        PG,
        r#"SELECT "cake"."id", "cake"."name" FROM "cake" WHERE "cake"."id" = $1 LIMIT $2"#,
        Target::Reader,
    ),
    (
        "pg_count",
        PG,
        r#"SELECT COUNT(*) AS num_items FROM (SELECT "cake"."id", "cake"."name" FROM "cake") AS "sub_query""#,
        Target::Reader,
    ),
    (
        "pg_find_also_related",
        PG,
        r#"SELECT "cake"."id" AS "A_id", "cake"."name" AS "A_name", "fruit"."id" AS "B_id", "fruit"."name" AS "B_name", "fruit"."cake_id" AS "B_cake_id" FROM "cake" LEFT JOIN "fruit" ON "cake"."id" = "fruit"."cake_id" ORDER BY "cake"."id" ASC"#,
        Target::Reader,
    ),
    (
        "pg_many_to_many",
        PG,
        r#"SELECT "cake"."id", "cake"."name" FROM "cake" INNER JOIN "cake_filling" ON "cake_filling"."cake_id" = "cake"."id" INNER JOIN "filling" ON "filling"."id" = "cake_filling"."filling_id" WHERE "filling"."id" = $1"#,
        Target::Reader,
    ),
    (
        "pg_in_subquery",
        PG,
        r#"SELECT "cake"."id" FROM "cake" WHERE "cake"."id" IN (SELECT "fruit"."cake_id" FROM "fruit" WHERE "fruit"."name" LIKE $1)"#,
        Target::Reader,
    ),
    (
        "pg_exists",
        PG,
        r#"SELECT "cake"."id" FROM "cake" WHERE EXISTS(SELECT 1 FROM "fruit" WHERE "fruit"."cake_id" = "cake"."id")"#,
        Target::Reader,
    ),
    (
        "pg_paginate",
        PG,
        r#"SELECT "cake"."id", "cake"."name" FROM "cake" WHERE "cake"."name" LIKE $1 ORDER BY "cake"."id" ASC LIMIT $2 OFFSET $3"#,
        Target::Reader,
    ),
    (
        "pg_cte",
        PG,
        r#"WITH "cte" ("id", "name") AS (SELECT "id", "name" FROM "cake") SELECT "id", "name" FROM "cte""#,
        Target::Reader,
    ),
    (
        "pg_insert_returning",
        PG,
        r#"INSERT INTO "cake" ("name") VALUES ($1) RETURNING "id", "name""#,
        Target::Writer,
    ),
    (
        "pg_update_returning",
        PG,
        r#"UPDATE "cake" SET "name" = $1 WHERE "cake"."id" = $2 RETURNING "id", "name""#,
        Target::Writer,
    ),
    (
        "pg_delete",
        PG,
        r#"DELETE FROM "cake" WHERE "cake"."id" = $1"#,
        Target::Writer,
    ),
    (
        "pg_upsert",
        PG,
        r#"INSERT INTO "cake" ("id", "name") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "name" = "excluded"."name""#,
        Target::Writer,
    ),
    (
        "pg_lock_exclusive",
        PG,
        r#"SELECT "cake"."id", "cake"."name" FROM "cake" WHERE "cake"."id" = $1 FOR UPDATE"#,
        Target::Writer,
    ),
    (
        "pg_lock_shared",
        PG,
        r#"SELECT "cake"."id", "cake"."name" FROM "cake" WHERE "cake"."id" = $1 FOR SHARE"#,
        Target::Writer,
    ),
    (
        "my_find_by_id",
        MY,
        "SELECT `cake`.`id`, `cake`.`name` FROM `cake` WHERE `cake`.`id` = ? LIMIT ?",
        Target::Reader,
    ),
    (
        "my_find_also_related",
        MY,
        "SELECT `cake`.`id` AS `A_id`, `cake`.`name` AS `A_name`, `fruit`.`id` AS `B_id`, `fruit`.`name` AS `B_name` FROM `cake` LEFT JOIN `fruit` ON `cake`.`id` = `fruit`.`cake_id` ORDER BY `cake`.`id` ASC",
        Target::Reader,
    ),
    (
        "my_count",
        MY,
        "SELECT COUNT(*) AS num_items FROM (SELECT `cake`.`id`, `cake`.`name` FROM `cake`) AS `sub_query`",
        Target::Reader,
    ),
    (
        "my_insert",
        MY,
        "INSERT INTO `cake` (`name`) VALUES (?)",
        Target::Writer,
    ),
    (
        "my_update",
        MY,
        "UPDATE `cake` SET `name` = ? WHERE `cake`.`id` = ?",
        Target::Writer,
    ),
    (
        "my_lock_exclusive",
        MY,
        "SELECT `cake`.`id`, `cake`.`name` FROM `cake` WHERE `cake`.`id` = ? FOR UPDATE",
        Target::Writer,
    ),
    (
        "my_lock_shared",
        MY,
        "SELECT `cake`.`id`, `cake`.`name` FROM `cake` WHERE `cake`.`id` = ? LOCK IN SHARE MODE",
        Target::Writer,
    ),
];

fn dialect(backend: DatabaseBackend) -> &'static dyn Dialect {
    match backend {
        DatabaseBackend::Postgres => &PostgreSqlDialect {},
        _ => &MySqlDialect {},
    }
}

fn parse(backend: DatabaseBackend, sql: &str) -> bool {
    Parser::parse_sql(dialect(backend), sql).is_ok()
}

fn benches(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("classify");
    for &(name, backend, sql, _) in STATEMENTS {
        group.bench_function(name, |b| {
            b.iter(|| classify(black_box(sql), black_box(backend)))
        });
    }
    group.finish();
    let mut group = criterion.benchmark_group("sqlparser");
    for &(name, backend, sql, _) in STATEMENTS {
        group.bench_function(name, |b| {
            b.iter(|| parse(black_box(backend), black_box(sql)))
        });
    }
    group.finish();
}

/// The median of a few timed batches of `f`, in nanoseconds per call.
fn nanos_per_call(mut f: impl FnMut()) -> f64 {
    let batch_time = Duration::from_millis(2);
    let mut iterations = 1u32;
    loop {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        if start.elapsed() >= batch_time || iterations >= 1 << 24 {
            break;
        }
        iterations *= 2;
    }
    let mut samples: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(iterations)
        })
        .collect();
    median(&mut samples)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The plain summary printed after the criterion groups: every statement timed with the
/// classifier, then every statement with the parser.
fn summary() {
    // Warm up (CPU frequency, caches) before the first timed statement.
    let warm_up = Instant::now();
    while warm_up.elapsed() < Duration::from_millis(300) {
        for &(_, backend, sql, _) in STATEMENTS {
            black_box(classify(black_box(sql), black_box(backend)));
        }
    }
    let classify_ns: Vec<f64> = STATEMENTS
        .iter()
        .map(|&(_, backend, sql, _)| {
            nanos_per_call(|| {
                black_box(classify(black_box(sql), black_box(backend)));
            })
        })
        .collect();
    let parse_ns: Vec<f64> = STATEMENTS
        .iter()
        .map(|&(_, backend, sql, _)| {
            nanos_per_call(|| {
                black_box(parse(black_box(backend), black_box(sql)));
            })
        })
        .collect();
    eprintln!(
        "\n{:<24} {:>12} {:>14} {:>8}",
        "statement", "classify ns", "sqlparser ns", "ratio"
    );
    for (i, &(name, backend, sql, _)) in STATEMENTS.iter().enumerate() {
        let (c, p) = (classify_ns[i], parse_ns[i]);
        let note = if parse(backend, sql) {
            ""
        } else {
            "  (sqlparser rejects it)"
        };
        eprintln!("{name:<24} {c:>12.1} {p:>14.1} {:>7.1}x{note}", p / c);
    }
    let c = median(&mut classify_ns.clone());
    let p = median(&mut parse_ns.clone());
    eprintln!(
        "\nmedian per statement over {} statements: classify {c:.1} ns, sqlparser {p:.1} ns, \
         sqlparser/classify = {:.1}x\n",
        STATEMENTS.len(),
        p / c
    );
}

fn main() {
    for &(name, backend, sql, target) in STATEMENTS {
        assert_eq!(classify(sql, backend), target, "{name}");
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(400))
        .sample_size(10)
        .configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    // `cargo test --benches` runs this binary without `--bench`, and `--profile-time` is for
    // profilers: skip the timing there.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time") {
        summary();
    }
}
