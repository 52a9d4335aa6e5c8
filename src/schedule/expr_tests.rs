//! Unit tests of the expression language: parsing, precedence, errors, evaluation.

use super::*;

fn ev(s: &str, v: &Vars) -> f64 {
    parse(s).unwrap().eval(v)
}

#[test]
fn precedence_and_associativity() {
    let v = Vars::default();
    assert_eq!(ev("1 + 2 * 3", &v), 7.0);
    assert_eq!(ev("-2 ^ 2", &v), -4.0);
    assert_eq!(ev("2 ^ 3 ^ 2", &v), 512.0);
    assert_eq!(ev("2 ^ -1", &v), 0.5);
    assert_eq!(ev("8 / 4 / 2", &v), 1.0);
    assert_eq!(ev("1 - 2 - 3", &v), -4.0);
    assert_eq!(ev("if(1 < 2, 10, 20) + (3 >= 3)", &v), 11.0);
    assert_eq!(ev("min(3, max(1, 2)) + 1e-1 * 10", &v), 3.0);
}

#[test]
fn poly_decay_expression() {
    let v = Vars {
        progress: 0.5,
        base: 0.02,
        ..Vars::default()
    };
    let got = ev("base_lr * (1 - progress) ^ 0.9", &v);
    assert_eq!(got, 0.02 * 0.5f64.powf(0.9));
}

#[test]
fn errors_point_at_the_problem() {
    let e = parse("base_lr * (1 - progres)").unwrap_err();
    assert_eq!(e.offset, 15);
    assert!(e.message.contains("unknown variable `progres`"), "{e}");
    let e = parse("1 +").unwrap_err();
    assert_eq!(e.offset, 3);
    let e = parse("(1 + 2").unwrap_err();
    assert!(e.message.contains("expected `)`"));
    let e = parse("time()").unwrap_err();
    assert!(e.message.contains("unknown function `time`"), "{e}");
    let e = parse("min(1)").unwrap_err();
    assert!(e.message.contains("takes 2"), "{e}");
    assert!(parse("1 < 2 < 3").is_err());
    assert!(parse("1 2").is_err());
    assert!(parse(&"(".repeat(10_000)).is_err());
    assert!(parse(&"-".repeat(10_000)).is_err());
}

#[test]
fn display_parses_back() {
    for s in [
        "-2 ^ 2",
        "if(iter < 5, base * iter / 5, base)",
        "min(-0.5, 1e300)",
    ] {
        let e = parse(s).unwrap();
        assert_eq!(
            parse(&e.to_string()).unwrap().eval(&Vars::default()),
            e.eval(&Vars::default())
        );
    }
}
